"""Running a search: ``prepare_search`` creates (or resumes) the study, ``run_search`` runs its
workers, then retrains the best recipe on several seeds.

Running the same search again resumes it: trials that ended count toward the budget and are never
recomputed. At the end, the best trial's recipe is written fully resolved (no ``search:`` section)
to ``<out_dir>/<study>/best.yaml``, retrained on ``final_seeds`` seeds (``train.seed`` ..
``train.seed + S - 1``), and each final run reads the test split once; the objective's val and
test values are summarized as mean ± 95% CI (``tunelab.study.stats.summarize``). Final runs that
were made for the same best trial are kept in the study and never made again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial

from tunelab.errors import RecipeError, TunelabError
from tunelab.io import atomic_write_text, finite, finite_scalars
from tunelab.recipe import Recipe, load_recipe
from tunelab.redact import mask_url
from tunelab.study.scaffold import compared_metric
from tunelab.study.search.config import CONFIG_ATTR, FINAL_ATTR, StudyConfig
from tunelab.study.search.ddp_trial import check_batch_splits
from tunelab.study.search.objectives import parse_objectives
from tunelab.study.search.options import DEFAULT_FINAL_SEEDS, DEFAULT_OUT, DEFAULT_TRIALS
from tunelab.study.search.results import (
    Best,
    BestRecipeRun,
    FinalReport,
    SearchResult,
    TrialRecord,
    select_best,
)
from tunelab.study.search.samplers import PRUNERS, make_pruner, make_sampler
from tunelab.study.search.space import check_space, trial_recipe
from tunelab.study.search.workers import (
    check_gpu_share,
    check_trial_nproc,
    count_trials,
    default_workers,
    run_local_workers,
    run_worker,
    trial_gpus,
    worker_seed,
)
from tunelab.study.storage import KIND_ATTR, heartbeat_settings, open_storage, optuna_quiet, storage_url


def default_objective(recipe: Recipe) -> str:
    """The recipe's monitored metric, read on val (loads the data only to resolve ``auto``)."""
    task = None
    if recipe.train.monitor == "auto":
        from tunelab.train import load_bundle  # as a trial loads it: streamed data is not read whole

        task = load_bundle(recipe).task
    return compared_metric(recipe, task).objective


def default_study_name(source: str | Path | Mapping[str, Any] | Recipe, recipe: Recipe) -> str:
    """The recipe file's stem (``mnist1d_search``), else ``<dataset>-<model>``."""
    if isinstance(source, (str, Path)):
        return Path(source).stem
    return f"{recipe.data.name}-{recipe.model.name}"


def _open_study(store: Any, name: str, config: StudyConfig, trials_given: bool) -> optuna.Study:
    """Create the study, or resume it when its recipe and objectives are the same."""
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        study = optuna.create_study(storage=store, study_name=name, directions=config.directions)
        study.set_user_attr(CONFIG_ATTR, config.to_attrs())
        study.set_user_attr(KIND_ATTR, "search")
        return study
    old = StudyConfig.from_attrs(study.user_attrs, name)
    if old.recipe_yaml != config.recipe_yaml:
        raise TunelabError(
            f"study {name!r} exists with another recipe or search space; resume it with the same "
            "recipe and --set options, or start a new study with --study OTHER_NAME"
        )
    if [o.name for o in old.objectives] != [o.name for o in config.objectives]:
        raise TunelabError(
            f"study {name!r} exists with objectives {','.join(o.name for o in old.objectives)}; "
            "resume it with the same --objective, or start a new study with --study OTHER_NAME"
        )
    # The sampler and pruner may change between sessions; the budget only when given again.
    updated = StudyConfig(
        config.recipe_yaml,
        config.objectives,
        config.sampler,
        config.pruner,
        config.trials if trials_given else old.trials,
        config.seed,
    )
    study.set_user_attr(CONFIG_ATTR, updated.to_attrs())
    return study


@dataclass(frozen=True)
class PreparedSearch:
    """A search study created (or found, to resume) in its storage, ready for workers."""

    study: str
    storage: str  # the URL workers open
    config: StudyConfig
    existing: int  # trials the study had before this session


def prepare_search(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    *,
    trials: int | None = None,
    sampler: str = "tpe",
    pruner: str = "none",
    objectives: str | Sequence[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
) -> PreparedSearch:
    """Check everything, then create the study (or resume it) with what its workers need.

    ``run_search`` calls this, then runs workers. Call it yourself to start a study that workers
    on other machines (``tunelab worker --study NAME --storage URL``) or ``run_worker`` run.

    >>> s = prepare_search("examples/mnist1d_search.yaml", trials=50,
    ...                    storage="postgresql://tunelab@db/studies")  # doctest: +SKIP
    >>> s.study  # doctest: +SKIP
    'mnist1d_search'
    """
    base = load_recipe(recipe, overrides)
    if not base.search:
        raise RecipeError(
            "search",
            {},
            "the recipe has no search space; add e.g. search: {optimizer.lr: "
            "{type: loguniform, low: 1.0e-4, high: 1.0e-1}}",
        )
    check_space(base)
    if trials is not None and trials < 1:
        raise RecipeError("--trials", trials, "must be >= 1")
    objs = parse_objectives(objectives, default_objective(base))
    if pruner != "none" and pruner in PRUNERS:
        if len(objs) > 1:
            raise TunelabError(
                f"--pruner {pruner}: pruning compares one value per epoch, so it needs a single "
                "objective; drop --pruner or keep one --objective"
            )
        if objs[0].metric is None:
            raise TunelabError(
                f"--pruner {pruner}: {objs[0].name} is only known after training; "
                "prune on a val.<metric> objective"
            )
    make_sampler(sampler, 0, len(objs))  # reject an unknown or unfit sampler before creating anything
    make_pruner(pruner, base.train.epochs)
    heartbeat_settings()  # a bad TUNELAB_* setting fails here, not in each worker

    url = storage_url(storage)
    name = study_name or default_study_name(recipe, base)
    config = StudyConfig(
        recipe_yaml=base.to_yaml(),
        objectives=tuple(objs),
        sampler=sampler,
        pruner=pruner,
        trials=trials if trials is not None else DEFAULT_TRIALS,
        seed=base.train.seed,
    )
    with optuna_quiet():  # Optuna would log "A new study created"
        study = _open_study(open_storage(url), name, config, trials is not None)
    existing = len(study.get_trials(deepcopy=False))
    return PreparedSearch(name, url, StudyConfig.from_attrs(study.user_attrs, name), existing)


def run_search(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    sampler: str = "tpe",
    pruner: str = "none",
    objectives: str | Sequence[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int | None = 1,
    final_seeds: int = DEFAULT_FINAL_SEEDS,
    out_dir: str | Path = DEFAULT_OUT,
    overrides: Sequence[str] = (),
    quiet: bool = True,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None = None,
    trial_nproc: int = 1,
) -> SearchResult:
    """Search the recipe's ``search:`` space, then retrain the best recipe on ``final_seeds`` seeds.

    Args:
        recipe: a YAML path, a mapping or a Recipe, with a ``search:`` section.
        trials: the budget of COMPLETE + PRUNED trials (default 20; when resuming, the stored one).
        timeout: seconds after which workers start no new trial.
        sampler: tpe, random, cmaes, gp or nsga2 (seeded from ``train.seed``).
        pruner: none, median, asha or hyperband (one ``val.*`` objective only).
        objectives: ``"val.accuracy"`` (default: the monitored metric), or several for a Pareto
            front: ``"val.accuracy,latency_ms"``.
        storage: an SQLAlchemy URL (default ``sqlite:///runs/studies.db``).
        study_name: default the recipe file's stem; an existing study of that name is resumed.
        workers: local worker processes (1: this process; None: one per visible GPU, each on its
            own GPU, else 1; with ``trial_nproc`` P, one per P GPUs).
        final_seeds: retrain the best recipe on this many seeds (0: skip).
        out_dir: ``<out_dir>/<study>/best.yaml`` and ``final/seed-<s>/`` run directories.
        overrides: ``--set`` overrides applied to the recipe before anything else.
        quiet: local worker processes print nothing per trial.
        on_trial: ``on_trial(trial, objective_names)`` for each trial this process ends (workers=1).
        trial_nproc: processes each trial trains on (DDP through torch's elastic launcher: each
            worker's own ``trial_nproc`` GPUs, or its share of the CPU's cores without GPUs;
            ``tunelab.study.search.ddp_trial``). Needs a storage other processes can open.

    >>> r = run_search("examples/mnist1d_search.yaml", trials=20, workers=2)  # doctest: +SKIP
    >>> r.best.recipe_path, r.final.metrics[0].test  # doctest: +SKIP
    """
    if workers is not None and workers < 1:
        raise RecipeError("--workers", workers, "must be >= 1")
    if final_seeds < 0:
        raise RecipeError("--final-seeds", final_seeds, "must be >= 0")
    if timeout is not None and timeout <= 0:
        raise RecipeError("--timeout", timeout, "must be > 0 seconds")
    check_trial_nproc(trial_nproc, storage_url(storage))
    loaded = load_recipe(recipe, overrides)
    check_batch_splits(loaded, trial_nproc)
    gpus = trial_gpus(loaded.train.device)
    if workers is None:
        workers = default_workers(gpus, trial_nproc)
    check_gpu_share(workers, trial_nproc, gpus)
    prepared = prepare_search(
        recipe,
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        objectives=objectives,
        storage=storage,
        study_name=study_name,
        overrides=overrides,
    )
    study = _run_workers(
        prepared,
        workers,
        gpus=gpus,
        timeout=timeout,
        quiet=quiet,
        on_trial=on_trial,
        out_dir=out_dir,
        trial_nproc=trial_nproc,
    )
    return _finish(study, prepared.study, prepared.storage, Path(out_dir), final_seeds)


def _run_workers(
    prepared: PreparedSearch,
    workers: int,
    *,
    gpus: Sequence[str],
    timeout: float | None,
    quiet: bool,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None,
    out_dir: str | Path,
    trial_nproc: int,
) -> optuna.Study:
    """Run the study's trials in this process (one worker) or in ``workers`` local processes; the
    study once they stopped."""
    name, url, seed = prepared.study, prepared.storage, prepared.config.seed
    codes: list[int] = []
    if workers == 1:
        run_worker(
            name,
            url,
            seed=worker_seed(seed, 0, prepared.existing),
            timeout=timeout,
            on_trial=on_trial,
            out_dir=out_dir,
            trial_nproc=trial_nproc,
        )
    else:
        codes = run_local_workers(
            name,
            url,
            workers,
            base_seed=seed,
            existing=prepared.existing,
            timeout=timeout,
            quiet=quiet,
            out_dir=out_dir,
            gpus=gpus,
            trial_nproc=trial_nproc,
        )
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    if workers > 1 and any(codes):
        # A worker that died is covered by the others (its trial is retried); only a budget left
        # unspent makes it an error.
        done = count_trials(study).done
        if done < prepared.config.trials and timeout is None:
            raise TunelabError(
                f"study {name}: local workers exited with codes {codes} after {done} of "
                f"{prepared.config.trials} trials; their messages are above. Running the same "
                "command again resumes the study"
            )
        print(f"warning: study {name}: local worker exit codes {codes}", file=sys.stderr)
    return study


def _finish(study: optuna.Study, name: str, url: str, out_dir: Path, final_seeds: int) -> SearchResult:
    config = StudyConfig.from_attrs(study.user_attrs, name)
    base = config.recipe()
    all_trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.of(t) for t in all_trials]
    best_trial = select_best(study, len(config.objectives))
    pareto = (
        [TrialRecord.of(t) for t in sorted(study.best_trials, key=lambda t: t.number)]
        if len(config.objectives) > 1 and best_trial is not None
        else []
    )
    best = None
    final = None
    if best_trial is not None:
        overrides = list(best_trial.user_attrs.get("overrides", []))
        best_recipe = trial_recipe(base, overrides)
        study_dir = out_dir / name
        study_dir.mkdir(parents=True, exist_ok=True)
        path = study_dir / "best.yaml"
        atomic_write_text(path, best_recipe.to_yaml())
        best = Best(
            number=best_trial.number,
            value=best_trial.values[0],
            values=list(best_trial.values),
            params=dict(best_trial.params),
            overrides=overrides,
            recipe_path=str(path),
        )
        if final_seeds > 0:
            final = _final_runs(study, best_recipe, best_trial.number, final_seeds, study_dir, config)
    return SearchResult(
        study=name,
        storage=mask_url(url),
        objectives=list(config.objectives),
        trials=records,
        best=best,
        pareto_front=pareto,
        final=final,
        out_dir=str(out_dir / name),
        budget=config.trials,
    )


def _final_runs(
    study: optuna.Study, recipe: Recipe, trial: int, n: int, study_dir: Path, config: StudyConfig
) -> FinalReport:
    """Retrain ``recipe`` on seeds train.seed .. +n-1 (reusing runs already made for this trial)."""
    from tunelab.train import fit

    seeds = [recipe.train.seed + i for i in range(n)]
    recipe_yaml = recipe.to_yaml()
    stored = study.user_attrs.get(FINAL_ATTR) or {}
    done: dict[int, BestRecipeRun] = {}
    if stored.get("trial") == trial and stored.get("recipe") == recipe_yaml:
        for r in stored.get("runs", []):
            done[int(r["seed"])] = BestRecipeRun(**r)
    runs = []
    for seed in seeds:
        if seed in done:  # a resumed search with the same best trial: nothing to recompute
            runs.append(done[seed])
            continue
        # overwrite: a final run a killed session left half done is made again (its recipe may be
        # another best trial's).
        out = study_dir / "final" / f"seed-{seed}"
        result = fit(recipe, overrides=[f"train.seed={seed}"], out=out, overwrite=True)
        runs.append(
            BestRecipeRun(
                seed=seed,
                status=result.status,
                val=finite_scalars(result.val),
                test=finite_scalars(result.test),
                costs=finite_scalars(result.efficiency),
                run_dir=result.run_dir,
            )
        )
    report = FinalReport.from_runs(trial, runs, config.objectives)
    merged = {**done, **{r.seed: r for r in runs}}
    study.set_user_attr(
        FINAL_ATTR,
        finite(
            {
                "trial": trial,
                "recipe": recipe_yaml,
                "runs": [r.to_dict() for r in sorted(merged.values(), key=lambda r: r.seed)],
                "report": report.to_dict(),
            }
        ),
    )
    atomic_write_text(study_dir / "final.json", yaml.safe_dump(finite(report.to_dict()), sort_keys=False))
    return report
