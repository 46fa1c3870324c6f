"""Stage 4 of ``tunelab auto``: TPE + ASHA over the playbook's space, until the search's deadline.

The search is a ``tunelab search`` study of its own (``auto-search``, in the auto run's storage):
its trials train on the selection seed and read val only (``TrialRunner``: ``evaluate_test``
off). Time, not a trial count, ends it: workers start no trial that the finished ones say cannot
end before the deadline, and a trial still training at the deadline is stopped and counted as
pruned (``tunelab.study.search.workers``). A rerun resumes the study: its finished trials count.
If no trial finished in time, the baseline stays the winner, and the record says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.recipe import Recipe
from tunelab.study.scaffold import study_free_raw
from tunelab.study.search.results import select_best
from tunelab.study.search.run import prepare_search
from tunelab.study.search.space import fixed_params, trial_recipe
from tunelab.study.search.workers import run_local_workers, run_worker, worker_seed
from tunelab.study.storage import open_storage, optuna_quiet

STUDY = "auto-search"
# The trial budget of the study: time ends the search long before it.
MAX_TRIALS = 100_000


def run_search_stage(
    search_raw: Mapping[str, Any],
    *,
    storage: str,
    deadline: float,
    workers: int,
    out_dir: Path,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None = None,
    portfolio: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Run (or resume) the search until ``deadline``; the winner's recipe and the trials' figures.

    The ``portfolio`` points (``tunelab.study.auto.portfolio``) are the first trials, once: a rerun
    finds them enqueued or done. Running trials keep their checkpoints under ``out_dir`` (a killed
    one continues there)."""
    prepared = prepare_search(
        dict(search_raw), trials=MAX_TRIALS, sampler="tpe", pruner="asha", storage=storage, study_name=STUDY
    )
    if portfolio:
        _enqueue(prepared.storage, prepared.config.recipe(), portfolio)
    seed = prepared.config.seed
    if workers == 1:
        run_worker(
            STUDY,
            prepared.storage,
            seed=worker_seed(seed, 0, prepared.existing),
            deadline=deadline,
            on_trial=on_trial,
            out_dir=out_dir,
        )
    else:
        run_local_workers(
            STUDY,
            prepared.storage,
            workers,
            base_seed=seed,
            existing=prepared.existing,
            deadline=deadline,
            out_dir=out_dir,
        )
    with optuna_quiet():
        study = optuna.load_study(study_name=STUDY, storage=open_storage(prepared.storage, heartbeat=False))
    trials = study.get_trials(deepcopy=False)
    counts = {s.name: sum(1 for t in trials if t.state == s) for s in TrialState}
    record: dict[str, Any] = {
        "study": STUDY,
        "objective": prepared.config.objectives[0].name,
        "counts": {k: v for k, v in counts.items() if v},
        "trials": [_trial(t) for t in trials],
        "space": sorted(search_raw.get("search", {})),
    }
    best = select_best(study, 1)
    if best is None:
        record.update(best=None, recipe=None)
        return record
    overrides = list(best.user_attrs.get("overrides", []))
    winner = trial_recipe(prepared.config.recipe(), overrides)
    record["best"] = {
        **_trial(best),
        "params": {
            k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in best.params.items()
        },
        "overrides": overrides,
    }
    record["recipe"] = study_free_raw(winner)
    return record


def _enqueue(storage: str, recipe: Recipe, points: Sequence[Mapping[str, Any]]) -> None:
    with optuna_quiet():
        study = optuna.load_study(study_name=STUDY, storage=open_storage(storage, heartbeat=False))
        for point in points:
            study.enqueue_trial(fixed_params(recipe, point), skip_if_exists=True)


def _trial(t: FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.state == TrialState.COMPLETE else None,
        "epochs": t.user_attrs.get("epochs"),
        "seconds": t.user_attrs.get("train_seconds"),
        "model": _param(t, "model.name"),
        "optimizer": _param(t, "optimizer.name"),
    }


def _param(t: FrozenTrial, name: str) -> Any:
    return t.params.get(name)
