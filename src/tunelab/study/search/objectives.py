"""What a search optimizes: ``val.<metric>`` or a cost read from the run, each with its direction.

>>> [(o.name, o.direction) for o in parse_objectives("val.loss,throughput", "val.accuracy")]
[('val.loss', 'minimize'), ('throughput', 'maximize')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tunelab.errors import RecipeError, TunelabError
from tunelab.spec import MONITOR_METRICS, monitor_mode
from tunelab.study.search.options import COSTS, Direction

# Costs that need the end-of-run efficiency measurement (train.efficiency); train_seconds does not.
MEASURED_COSTS = frozenset(COSTS) - {"train_seconds"}


class Measured(Protocol):
    """What an objective reads: a RunResult, or a trial's outcome (``ddp_trial.TrialOutcome``)."""

    @property
    def val(self) -> Mapping[str, Any]: ...

    @property
    def efficiency(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Objective:
    """One value a search optimizes: ``val.<metric>`` or a cost, with its direction.

    >>> Objective.parse("val.loss")
    Objective(name='val.loss', direction='minimize')
    >>> Objective.parse("throughput").direction
    'maximize'
    """

    name: str
    direction: Direction

    @property
    def metric(self) -> str | None:
        """The val metric ("accuracy"), or None for a cost."""
        return self.name.split(".", 1)[1] if self.name.startswith("val.") else None

    @classmethod
    def parse(cls, text: str) -> Objective:
        name = text.strip()
        if name in COSTS:
            return cls(name, COSTS[name])
        split, _, metric = name.partition(".")
        if split == "val" and metric in MONITOR_METRICS:
            return cls(name, "minimize" if monitor_mode(name) == "min" else "maximize")
        allowed = "val.<metric> with metric one of " + ", ".join(sorted(MONITOR_METRICS))
        allowed += ", or a cost: " + ", ".join(COSTS)
        if split in ("test", "train"):
            allowed += f" (a search never selects on the {split} split)"
        raise RecipeError("--objective", text, f"must be {allowed}")

    def read(self, result: Measured) -> float:
        """The objective's value in a finished run."""
        source = result.val if self.metric else result.efficiency
        key = self.metric or self.name
        if key not in source:
            raise TunelabError(f"objective {self.name}: the run has no {key!r} (has {', '.join(source)})")
        return float(source[key])


def parse_objectives(spec: str | Sequence[str] | None, monitor: str) -> list[Objective]:
    """Objectives from ``"val.accuracy,latency_ms"`` (or a list); ``None`` gives ``[monitor]``.

    >>> [o.name for o in parse_objectives("val.accuracy, latency_ms", "val.accuracy")]
    ['val.accuracy', 'latency_ms']
    """
    if spec is None or spec == "" or spec == []:
        names = [monitor]
    else:
        names = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    objectives = [Objective.parse(n) for n in names]
    seen = [o.name for o in objectives]
    if len(set(seen)) != len(seen):
        raise RecipeError("--objective", ",".join(seen), "each objective may appear once")
    return objectives
