"""The budget of ``tunelab auto``: wall time, parsed from ``30m``, split across the stages by one rule.

``parse_budget("1h30m") == 5400.0``. The rule (what ``--json`` reports as ``budget``):

1. **profile** is not planned: it reads the data once (seconds) and its time is counted.
2. **baseline** is planned ``BASELINE_SHARE`` (10%) of the budget; a deadline stops its training
   there. Its measured seconds per epoch price everything after it.
3. **lr_find** is planned ``LR_FIND_SHARE`` (5%); its ramp is shortened to fit the plan.
4. **search** gets what is left once the estimated cost of the stages after it is set aside
   (``reserve``: ablation + final + compress, priced from the baseline), but never less than
   ``SEARCH_MIN_SHARE`` (35%) of what is left: without a search there is nothing to ablate. It
   stops on time and never starts a trial that the trials so far say cannot finish.
5. **final** is planned first among the rest (its figure is the one the run exists for), at the
   winner's own measured seconds per run; then **compress** its estimate; **ablation** gets the
   rest, which sets how many seeds it runs (``ablation_seeds``): fewer than three detect nothing
   (an interval of 2 pairs is too wide), and the stage is then skipped, saying why.

Time a stage does not spend stays in the budget: each plan is computed from what is left when the
stage starts, so unspent time carries over to the stages after it. Time spent in a session that
was interrupted is kept (a resumed run continues the same budget).

    >>> parse_budget("90s"), parse_budget("30m"), parse_budget("2h"), parse_budget("1h30m")
    (90.0, 1800.0, 7200.0, 5400.0)
    >>> b = Budget(600.0)
    >>> b.start("baseline", b.share("baseline")); b.planned("baseline")
    60.0
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tunelab.errors import RecipeError

STAGES = ("profile", "baseline", "lr_find", "search", "ablation", "final", "compress")
BASELINE_SHARE = 0.10
LR_FIND_SHARE = 0.05
# The search's floor, as a share of what is left after lr-find: with a small budget the reserve for
# ablation, final and compress may claim everything; a search of a third still finds a recipe worth
# ablating (ablation then runs fewer seeds, or is skipped, saying why).
SEARCH_MIN_SHARE = 0.35

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def parse_budget(text: str | float | int) -> float:
    """Seconds in a duration: ``90s``, ``30m``, ``2h``, ``1h30m``, or a bare number of seconds.

    >>> parse_budget("1.5m")
    90.0
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", s):
            seconds = float(s)
        elif s and _PART.sub("", s) == "" and re.fullmatch(r"(\d+(\.\d+)?[smh])+", s):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(s))
        else:
            raise RecipeError("--budget", text, "must be a duration such as 90s, 30m, 2h or 1h30m")
    if not (math.isfinite(seconds) and seconds > 0):
        raise RecipeError("--budget", text, "must be a positive duration such as 90s, 30m or 2h")
    return seconds


@dataclass
class StageTime:
    """What a stage was planned and what it spent (over every session), in seconds."""

    planned_s: float | None = None
    spent_s: float = 0.0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"planned_s": self.planned_s, "spent_s": round(self.spent_s, 3), "note": self.note}


@dataclass
class Budget:
    """The wall-time budget: its total, and each stage's plan and spending.

    ``start(stage, planned)`` opens a stage's clock; ``stop(stage)`` adds the time since to what
    the stage spent (``stop`` also runs on Ctrl-C, so an interrupted session's time is kept).
    """

    total_s: float
    stages: dict[str, StageTime] = field(default_factory=lambda: {s: StageTime() for s in STAGES})
    _open: dict[str, float] = field(default_factory=dict, repr=False)

    # --- reading -------------------------------------------------------------------------------

    def spent(self) -> float:
        """Seconds spent so far, the open stage's running time included."""
        now = time.monotonic()
        return sum(t.spent_s for t in self.stages.values()) + sum(now - s for s in self._open.values())

    def spent_in(self, stage: str) -> float:
        """Seconds ``stage`` spent so far, its running time included when it is open."""
        opened = self._open.get(stage)
        return self.stages[stage].spent_s + (time.monotonic() - opened if opened is not None else 0.0)

    def left(self) -> float:
        return max(0.0, self.total_s - self.spent())

    def planned(self, stage: str) -> float | None:
        return self.stages[stage].planned_s

    def deadline(self, stage: str) -> float:
        """The wall-clock time (``time.time()``) at which ``stage`` has spent its plan."""
        t = self.stages[stage]
        opened = self._open.get(stage, time.monotonic())
        remaining = (t.planned_s if t.planned_s is not None else self.left()) - t.spent_s
        return time.time() + max(0.0, remaining - (time.monotonic() - opened))

    def share(self, stage: str) -> float:
        """The fixed share of the total that ``baseline`` and ``lr_find`` are planned."""
        return {"baseline": BASELINE_SHARE, "lr_find": LR_FIND_SHARE}[stage] * self.total_s

    def search_plan(self, reserve_s: float) -> float:
        """What the search gets: what is left minus ``reserve_s``, at least ``SEARCH_MIN_SHARE`` of it."""
        left = self.left()
        return max(SEARCH_MIN_SHARE * left, left - reserve_s)

    # --- the clock -----------------------------------------------------------------------------

    def start(self, stage: str, planned: float | None, note: str = "") -> None:
        """Open ``stage``'s clock with ``planned`` seconds still to spend (None: unplanned).

        The stage's plan is what it spent in earlier sessions plus ``planned``.
        """
        t = self.stages[stage]
        t.planned_s = None if planned is None else round(t.spent_s + max(0.0, planned), 3)
        if note:
            t.note = note
        self._open[stage] = time.monotonic()

    def stop(self, stage: str) -> None:
        opened = self._open.pop(stage, None)
        if opened is not None:
            self.stages[stage].spent_s += time.monotonic() - opened

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_s": self.total_s,
            "spent_s": round(self.spent(), 3),
            "left_s": round(self.left(), 3),
            "rule": RULE,
            "stages": {name: t.to_dict() for name, t in self.stages.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], total_s: float) -> Budget:
        """A budget resumed from what a session stored, with the total now given."""
        stages = {s: StageTime() for s in STAGES}
        for name, t in (d.get("stages") or {}).items():
            if name in stages:
                stages[name] = StageTime(
                    t.get("planned_s"), float(t.get("spent_s") or 0.0), t.get("note", "")
                )
        return cls(total_s, stages)


RULE = (
    "profile unplanned; baseline 10% and lr-find 5% of the total; the search what is left minus the "
    "estimated cost of ablation + final + compress (priced from the baseline's seconds per epoch), at "
    "least 35% of what is left; then final (1.5 x the winner's seconds per run x seeds), compress, and "
    "ablation the rest (its seeds fit to it, skipped below 3); unspent time carries over"
)
