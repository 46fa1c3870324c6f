"""Reading studies back: ``tunelab studies`` (every study in a storage) and ``tunelab show STUDY``
(counts, the best trials or the Pareto front, parameter importances, the final runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.io import finite
from tunelab.redact import mask_url
from tunelab.study.search.config import FINAL_ATTR, StudyConfig
from tunelab.study.search.results import TrialRecord
from tunelab.study.storage import KIND_ATTR, load_named_study, open_storage, storage_url


@dataclass(frozen=True)
class StudyInfo:
    """One line of `tunelab studies`."""

    name: str
    kind: str  # "search", "ablation", ... ("-" for a study tunelab did not make)
    directions: list[str]
    counts: dict[str, int]
    best_value: float | None
    started: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_studies(storage: str | None = None) -> list[StudyInfo]:
    """Every study in the storage, with trial counts by state.

    >>> [s.name for s in list_studies("sqlite:///runs/studies.db")]  # doctest: +SKIP
    ['mnist1d_search']
    """
    store = open_storage(storage, heartbeat=False)
    out = []
    for s in optuna.study.get_all_study_summaries(store, include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=store)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        kind = s.user_attrs.get(KIND_ATTR, "-")
        best = s.best_trial.values[0] if s.best_trial is not None and s.best_trial.values else None
        out.append(
            StudyInfo(
                name=s.study_name,
                kind=str(kind),
                directions=[d.name.lower() for d in s.directions],
                counts=counts,
                best_value=best,
                started=s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None,
            )
        )
    return out


@dataclass(frozen=True)
class StudyReport:
    """What `tunelab show STUDY` prints: counts, best trials, parameter importances, final runs."""

    name: str
    storage: str
    objectives: list[str]
    directions: list[str]
    budget: int | None
    counts: dict[str, int]
    best: list[TrialRecord]  # the top trials, or the Pareto front for several objectives
    importances: dict[str, dict[str, float]]  # objective -> parameter -> share (sums to 1)
    importance_note: str  # why importances are missing (for some objective), if they are
    final: dict[str, Any] | None  # FinalReport.to_dict() of the last search

    def to_dict(self) -> dict[str, Any]:
        return finite(
            {
                "name": self.name,
                "storage": self.storage,
                "objectives": self.objectives,
                "directions": self.directions,
                "budget": self.budget,
                "counts": self.counts,
                "best": [t.to_dict() for t in self.best],
                "importances": self.importances,
                "importance_note": self.importance_note,
                "final": self.final,
            }
        )


# fANOVA fits a random forest over the trials; below this it mostly describes noise.
MIN_IMPORTANCE_TRIALS = 4


def study_report(study_name: str, storage: str | None = None, top: int = 5) -> StudyReport:
    """Summarize a study: counts by state, the ``top`` trials (or the Pareto front), and each
    parameter's importance for each objective (fANOVA, seeded).

    >>> study_report("mnist1d_search").importances  # doctest: +SKIP
    {'val.accuracy': {'optimizer.lr': 0.71, 'model.dropout': 0.18, ...}}
    """
    url = storage_url(storage)
    store = open_storage(url, heartbeat=False)
    study = load_named_study(study_name, store, url)
    config = (
        StudyConfig.from_attrs(study.user_attrs, study_name)
        if study.user_attrs.get(KIND_ATTR) == "search"
        else None
    )
    directions = [d.name.lower() for d in study.directions]
    names = (
        [o.name for o in config.objectives] if config else [f"objective {i}" for i in range(len(directions))]
    )
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(directions) > 1:
        best = (
            [TrialRecord.of(t) for t in sorted(study.best_trials, key=lambda t: t.number)] if complete else []
        )
    else:
        reverse = directions[0] == "maximize"
        best = [TrialRecord.of(t) for t in sorted(complete, key=lambda t: t.values[0], reverse=reverse)[:top]]
    importances, note = _importances(study, complete, names)
    final = study.user_attrs.get(FINAL_ATTR, {}).get("report")
    return StudyReport(
        name=study_name,
        storage=mask_url(url),
        objectives=names,
        directions=directions,
        budget=config.trials if config else None,
        counts=counts,
        best=best,
        importances=importances,
        importance_note=note,
        final=final,
    )


def _importances(
    study: optuna.Study, complete: list[FrozenTrial], names: list[str]
) -> tuple[dict[str, dict[str, float]], str]:
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {}, (
            f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} complete trials "
            f"(this study has {len(complete)})"
        )
    # fANOVA reads the parameters every complete trial has; conditional ones (an optimizer's
    # momentum) are left out of the importances.
    out: dict[str, dict[str, float]] = {}
    notes = []
    for i, name in enumerate(names):
        try:
            imp = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=lambda t, i=i: t.values[i],
            )
        except (RuntimeError, ValueError) as e:
            # e.g. "zero total variance": the objective is the same in every trial.
            notes.append(f"{name}: parameter importances could not be computed ({e})")
            continue
        if imp:
            out[name] = imp
        else:
            notes.append(f"{name}: no parameter appears in every complete trial, so none can be ranked")
    return out, "; ".join(notes)
