"""What a search reports, as typed data: its trials, the best one, and the best recipe's final runs.

Renderers (``tunelab.report.search``) only format these; ``to_dict()`` is what ``--json`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.io import finite
from tunelab.redact import redact_text
from tunelab.study.search.objectives import Objective
from tunelab.study.search.options import Direction

if TYPE_CHECKING:
    from tunelab.study.stats import Summary


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a search reports it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    params: dict[str, Any]
    value: float | None  # the (first) objective's value
    values: list[float] | None  # every objective's value
    duration_s: float | None
    epochs: int | None
    message: str  # why pruned / failed; "" otherwise
    retry_of: int | None  # the number of the trial this one retries (a dead worker's)

    @classmethod
    def of(cls, t: FrozenTrial) -> TrialRecord:
        a = t.user_attrs
        # Masked on reading too: a study written by an older tunelab may hold a raw password.
        message = redact_text(a.get("error") or a.get("message") or "")
        if a.get("surplus"):
            message = "dropped: started past the budget"
        elif t.state == TrialState.FAIL and not message:
            message = "its worker stopped (no heartbeat) or was interrupted"
        return cls(
            number=t.number,
            state=t.state.name,
            params=dict(t.params),
            value=t.values[0] if t.values else None,
            values=list(t.values) if t.values else None,
            duration_s=t.duration.total_seconds() if t.duration else None,
            epochs=a.get("epochs"),
            message=message,
            retry_of=t.system_attrs.get("failed_trial"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "value": self.value,
            "values": self.values,
            "duration_s": self.duration_s,
            "epochs": self.epochs,
            "message": self.message,
            "retry_of": self.retry_of,
        }


@dataclass(frozen=True)
class Best:
    """The selected trial: the best one, or for several objectives the Pareto trial best on the first."""

    number: int
    value: float
    values: list[float]
    params: dict[str, Any]
    overrides: list[str]  # the trial's recipe = base recipe + these
    recipe_path: str | None  # best.yaml

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "value": self.value,
            "values": self.values,
            "params": self.params,
            "overrides": self.overrides,
            "recipe_path": self.recipe_path,
        }


@dataclass(frozen=True)
class BestRecipeRun:
    """One retraining of the best recipe on one seed; test was read once, here."""

    seed: int
    status: str
    val: dict[str, float]
    test: dict[str, float]
    costs: dict[str, float]
    run_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MetricSummary:
    """An objective over the final runs: val and test for a metric, ``value`` for a cost."""

    name: str
    val: Summary | None = None
    test: Summary | None = None
    value: Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "val": self.val.to_dict() if self.val else None,
            "test": self.test.to_dict() if self.test else None,
            "value": self.value.to_dict() if self.value else None,
        }


@dataclass(frozen=True)
class FinalReport:
    """The best recipe retrained on several seeds: per-seed results and mean ± CI per objective."""

    trial: int  # the best trial's number
    seeds: list[int]
    runs: list[BestRecipeRun]
    metrics: list[MetricSummary]
    note: str = ""  # e.g. why there is no summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "seeds": self.seeds,
            "runs": [r.to_dict() for r in self.runs],
            "metrics": [m.to_dict() for m in self.metrics],
            "note": self.note,
        }

    @classmethod
    def from_runs(
        cls, trial: int, runs: Sequence[BestRecipeRun], objectives: Sequence[Objective]
    ) -> FinalReport:
        from tunelab.study.stats import summarize  # scipy: only the final phase needs it

        ok = [r for r in runs if r.status in ("completed", "stopped_early")]
        metrics = []
        note = ""
        if not ok:
            note = "no final run finished: " + "; ".join(f"seed {r.seed} {r.status}" for r in runs)
        else:
            for o in objectives:
                if o.metric:
                    metrics.append(
                        MetricSummary(
                            o.name,
                            val=summarize([r.val[o.metric] for r in ok]),
                            test=summarize([r.test[o.metric] for r in ok]),
                        )
                    )
                elif all(o.name in r.costs for r in ok):
                    # Costs are positive and spread multiplicatively: a log-scale interval.
                    costs = [r.costs[o.name] for r in ok]
                    method = "log-t" if all(c > 0 for c in costs) else "t"
                    metrics.append(MetricSummary(o.name, value=summarize(costs, method=method)))
            if len(ok) < len(runs):
                note = f"{len(runs) - len(ok)} of {len(runs)} final runs did not finish and are left out"
        return cls(trial, [r.seed for r in runs], list(runs), metrics, note)


@dataclass(frozen=True)
class SearchResult:
    """What ``run_search`` returns; ``to_dict()`` is what ``tunelab search --json`` prints."""

    study: str
    storage: str  # the URL, password hidden
    objectives: list[Objective]
    trials: list[TrialRecord]
    best: Best | None
    pareto_front: list[TrialRecord]  # several objectives only
    final: FinalReport | None
    out_dir: str
    budget: int

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return finite(
            {
                "study": self.study,
                "storage": self.storage,
                "objectives": [o.name for o in self.objectives],
                "directions": self.directions,
                "budget": self.budget,
                "counts": self.counts(),
                "best": self.best.to_dict() if self.best else None,
                "pareto_front": [t.to_dict() for t in self.pareto_front],
                "trials": [t.to_dict() for t in self.trials],
                "final": self.final.to_dict() if self.final else None,
                "out_dir": self.out_dir,
            }
        )


def select_best(study: optuna.Study, n_objectives: int) -> FrozenTrial | None:
    """The best COMPLETE trial; with several objectives, the Pareto trial best on the first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    if n_objectives == 1:
        return study.best_trial
    front = study.best_trials
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    return min(front, key=lambda t: (sign * t.values[0], t.number))
