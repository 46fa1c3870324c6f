"""Hyperparameter search on Optuna: ``run_search(recipe) -> SearchResult`` and ``run_worker``.

The package, one module per part, each importing only those listed before it::

    options      names and defaults the command line reads (no torch, no Optuna)
    space        the recipe's ``search:`` section: dimensions, conditions, suggest a trial's recipe
    objectives   what a search optimizes: ``val.<metric>`` or a cost, with its direction
    samplers     the samplers and pruners, as registries
    config       ``StudyConfig``: everything a worker needs, kept in the study's user attributes
    trial_methods  what a trial adds to its fit: ``PruneOnEpoch`` (reports, pruning), ``Deadline``
    ddp_trial    a trial on P DDP processes (``--trial-nproc``) through torch's elastic launcher
    trial        one trial: ``TrialRunner`` (suggest, fit, read the objectives)
    workers      ``run_worker`` and local worker processes; the exact trial budget
    results      the typed results: trials, the best, the final runs, ``SearchResult``
    run          ``prepare_search`` / ``run_search``: the study, its workers, the final runs
    studies      reading studies back: ``list_studies``, ``study_report`` (importances)

A search is an Optuna study in an RDB storage (``tunelab.study.storage``). Each trial samples the
recipe's ``search:`` space (``space``), trains the trial's recipe with ``fit`` and returns the
objective(s) read from the RunResult:

* ``val.<metric>`` (``val.accuracy``, ``val.loss``, ``val.f1``, ...), the direction inferred from
  the metric (``tunelab.spec.monitor_mode``). The default is the recipe's monitored metric. The
  test split is never an objective: it is read once, by the final runs.
* costs from ``RunResult.efficiency``: ``latency_ms``, ``params``, ``size_bytes``, ``flops``,
  ``train_seconds`` (minimized) and ``throughput`` (maximized). Several objectives give a Pareto
  front (e.g. ``val.accuracy,latency_ms``).

A trial that a pruner stops, or whose run diverges, ends PRUNED (``trial``); workers on any
machine share one exact budget (``workers``); running the same search again resumes it, and the
best recipe is retrained on several seeds, each reading the test split once (``run``).

    >>> from tunelab.study.search.run import run_search
    >>> r = run_search({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]},
    ...                 "train": {"epochs": 3},
    ...                 "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}},
    ...                trials=4, storage="sqlite:///runs/doc.db", final_seeds=2)  # doctest: +SKIP
    >>> r.best.value, r.best.params, r.final.metrics[0].test.mean  # doctest: +SKIP
"""
