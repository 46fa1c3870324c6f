"""The methods a search trial adds to its fit: per-epoch reports and pruning, and a time budget.

Both stop a fit at an epoch end on a decision that is not a pure function of the run (the study's
other trials, the clock). Under DDP (a trial on several processes, ``--trial-nproc``) every rank
must stop at the same epoch, or the ranks that go on wait in the next collective for those that
stopped: rank 0 decides and the decision is broadcast (``tunelab.distributed.from_main``), so a
late rank or a storage that changed between two reads cannot split them.
"""

from __future__ import annotations

import time
from typing import Any

import optuna

from tunelab import distributed
from tunelab.methods import Method, TrainState


class PruneOnEpoch(Method):
    """Reports ``metric`` to the Optuna trial after each epoch; stops the fit when it should prune.

    The loop then ends with status ``stopped_early`` and the objective raises
    ``optuna.TrialPruned``. With ``prune=False`` it only reports (learning curves in the storage).
    Under DDP only rank 0 holds the trial (``trial=None`` on the others): it reports, asks the
    pruner, and every rank applies its answer.

    >>> import optuna
    >>> trial = optuna.create_study().ask()
    >>> m = PruneOnEpoch(trial, "val.accuracy")
    >>> m.pruned_at is None
    True
    """

    name = "optuna_pruning"

    def __init__(self, trial: optuna.trial.Trial | None, metric: str, prune: bool = True) -> None:
        self.trial, self.metric, self.prune = trial, metric, prune
        self.pruned_at: int | None = None
        self.reported: list[tuple[int, float]] = []  # (epoch, value) sent to the trial

    def epoch_end(self, state: TrainState) -> None:
        value = state.last(self.metric)  # the same on every rank: val is rank 0's, broadcast
        step = state.epoch + 1  # epochs done: the resource ASHA and Hyperband allocate
        self.reported.append((step, value))
        prune = False
        if self.trial is not None:
            self.trial.report(value, step)
            prune = self.prune and self.trial.should_prune()
        if distributed.from_main(prune, distributed.current()):
            state.stop = True
            state.stop_reason = f"pruned after epoch {step}: {self.metric} {value:.4f}"
            self.pruned_at = step

    def state_dict(self) -> dict[str, Any]:
        return {"reported": self.reported, "pruned_at": self.pruned_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A retried trial is a new Optuna trial without the killed one's learning curve: the
        # epochs it resumes after are reported again, so the pruner compares whole curves.
        self.pruned_at = state["pruned_at"]
        self.reported = [(int(step), float(value)) for step, value in state["reported"]]
        if self.trial is not None:
            for step, value in self.reported:
                self.trial.report(value, step)


class Deadline(Method):
    """Stops the fit at the end of the first epoch that ends after ``at`` (a ``time.time()`` instant).

    What a time budget needs from a run: the loop then ends ``stopped_early`` with the reason, and
    ``stopped_at`` says after which epoch (None: the run ended before the deadline). Under DDP
    rank 0's clock decides for every rank.

    >>> Deadline(at=0.0).stopped_at is None
    True
    """

    name = "deadline"

    def __init__(self, at: float) -> None:
        self.at = at
        self.stopped_at: int | None = None

    def epoch_end(self, state: TrainState) -> None:
        # Every rank takes part in the broadcast, even one an earlier method already stopped.
        late = distributed.from_main(time.time() >= self.at, distributed.current())
        if late and not state.stop:
            state.stop = True
            state.stop_reason = f"the time budget ran out after epoch {state.epoch + 1}"
            self.stopped_at = state.epoch + 1
