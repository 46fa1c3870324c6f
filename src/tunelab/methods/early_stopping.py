"""Early stopping: end training when the monitored metric stops improving, keep the best weights.

``EarlyStopper`` is framework-free (plain floats in, a stop decision out) and follows Keras'
``EarlyStopping`` semantics exactly:

* an epoch *improves* when its value is better than the best so far by **more than**
  ``min_delta``: ``value < best - min_delta`` in ``min`` mode, ``value > best + min_delta`` in
  ``max`` mode (a tie, or a gain of exactly ``min_delta``, is not an improvement; NaN never is);
* the first value always improves on the initial best (±inf);
* every epoch that does not improve adds one to ``bad_epochs``; an improvement resets it to 0;
* ``update`` returns True (stop now) when ``bad_epochs`` reaches ``patience``, so training runs
  ``patience`` epochs past the best one.

The best value and epoch are kept by ``BestEpoch``, the rule the loop also uses for ``best.pt``.
The ``EarlyStopping`` adapter feeds ``EarlyStopper`` the monitored value at every ``epoch_end``,
keeps a CPU copy of the evaluated weights (``state.eval_net``, possibly an EMA average) at each
improvement, and puts them back at ``fit_end``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from torch import Tensor, nn

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range
from tunelab.spec import check_monitor, monitor_mode

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["BestEpoch", "EarlyStopper", "EarlyStopping"]


class BestEpoch:
    """The best value of a monitored metric and its epoch, among the comparable epochs.

    The one best-epoch rule of tunelab: the loop's ``best.pt`` and ``RunResult.best_epoch`` and
    ``EarlyStopper`` all use it. An epoch *improves* when its value beats the best so far by more
    than ``min_delta`` (``value < best - min_delta`` in ``min`` mode, ``value > best + min_delta``
    in ``max`` mode); the first finite value always does, NaN never does.

    Args:
        mode: "min" when lower is better (losses), "max" when higher is better (accuracy).
        min_delta: an improvement must beat the best by more than this (>= 0).

    >>> b = BestEpoch("max")
    >>> [b.update(v, epoch) for epoch, v in enumerate([0.5, 0.7, 0.6], start=1)]
    [True, True, False]
    >>> b.best, b.best_epoch
    (0.7, 2)
    >>> b.forget_before(comparable_since=2), b.best_epoch  # epoch 2 (from 1) is 0-based epoch 1
    (True, None)
    """

    def __init__(self, mode: Literal["min", "max"] = "min", min_delta: float = 0.0) -> None:
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode, self.min_delta = mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record ``epoch``'s value; True when it is the new best."""
        if not self.is_improvement(value):
            return False
        self.best, self.best_epoch = value, epoch
        return True

    def forget_before(self, comparable_since: int) -> bool:
        """Forget a best epoch that precedes ``TrainState.comparable_since``; True when it did.

        Epochs are labelled as in the history (from 1), ``comparable_since`` counts from 0: the
        best epoch e is not comparable when e - 1 < comparable_since. The evaluated model changed
        form since (channel pruning narrows it): its weights cannot be restored into the final
        model, so the best is chosen again among the epochs from the change on.
        """
        if self.best_epoch is None or self.best_epoch > comparable_since:
            return False
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopper:
    """Decide when to stop from a sequence of metric values (Keras semantics, see module doc).

    Args:
        patience: number of epochs without improvement after which to stop (>= 1).
        min_delta: an improvement must beat the best by more than this (>= 0).
        mode: "min" when lower is better (losses), "max" when higher is better (accuracy).

    >>> s = EarlyStopper(patience=2, mode="min")
    >>> [s.update(v) for v in [1.0, 0.8, 0.9, 0.85]]
    [False, False, False, True]
    >>> s.best, s.best_epoch, s.bad_epochs
    (0.8, 1, 2)
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: Literal["min", "max"] = "min") -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.tracker = BestEpoch(mode, min_delta)  # the best value and epoch (shared with the loop)
        self.bad_epochs = 0
        self._seen = 0

    @property
    def mode(self) -> Literal["min", "max"]:
        return self.tracker.mode

    @property
    def min_delta(self) -> float:
        return self.tracker.min_delta

    @property
    def best(self) -> float:
        return self.tracker.best

    @property
    def best_epoch(self) -> int | None:
        return self.tracker.best_epoch

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        return self.tracker.is_improvement(value)

    def update(self, value: float, epoch: int | None = None) -> bool:
        """Record one epoch's value; True when training should stop now.

        ``epoch`` labels the value in ``best_epoch``; by default the 0-based count of updates.
        """
        epoch = self._seen if epoch is None else epoch
        self._seen += 1
        if self.tracker.update(value, epoch):
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def forget_before(self, comparable_since: int) -> bool:
        """``BestEpoch.forget_before``; patience then counts from the change."""
        forgot = self.tracker.forget_before(comparable_since)
        if forgot:
            self.bad_epochs = 0
        return forgot

    def state_dict(self) -> dict[str, Any]:
        return {**self.tracker.state_dict(), "bad_epochs": self.bad_epochs, "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        self.bad_epochs, self._seen = state["bad_epochs"], state["seen"]


@METHODS.register(
    "early_stopping", "Stop when the monitored metric stops improving; restore the best weights."
)
class EarlyStopping(Method):
    """Early stopping in the ``epoch_end`` event (see ``EarlyStopper``).

    Reports ``{"monitor", "best_epoch", "best_value", "stopped_epoch", "restored"}`` in
    ``state.info["early_stopping"]``; ``stopped_epoch`` is None when the run used every epoch.
    Epochs are numbered as in the history (from 1).
    """

    name = "early_stopping"

    def __init__(
        self,
        *,
        monitor: Annotated[
            str | None, Doc("metric to watch, e.g. val.loss; null follows train.monitor")
        ] = None,
        mode: Annotated[
            Literal["auto", "min", "max"], Doc("auto: min for losses and errors, max for scores")
        ] = "auto",
        # Validation metrics of small datasets are noisy from epoch to epoch: 5 epochs rides out
        # a few unlucky ones yet still ends a 20-epoch run (the default) once it plateaus.
        patience: Annotated[int, Range(ge=1), Doc("epochs without improvement before stopping")] = 5,
        # 0: any strict improvement counts; raise it to ignore gains within the noise.
        min_delta: Annotated[float, Range(ge=0), Doc("an improvement must exceed this")] = 0.0,
        restore_best: Annotated[bool, Doc("end with the weights of the best epoch")] = True,
    ) -> None:
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        monitor = spec.params.get("monitor")
        if monitor is not None:
            check_monitor(monitor, "methods.early_stopping.monitor")

    def setup(self, state: TrainState) -> None:
        self._monitor = self.monitor or state.monitor
        if self.mode != "auto":
            mode = self.mode
        elif self.monitor is None:
            mode = state.mode  # the loop already resolved train.monitor's direction
        else:
            mode = monitor_mode(self.monitor)
        self.stopper = EarlyStopper(self.patience, self.min_delta, mode)  # type: ignore[arg-type]
        self.best_state: dict[str, Tensor] | None = None
        self.stopped_epoch: int | None = None

    @staticmethod
    def _net(state: TrainState) -> nn.Module:
        return state.eval_net if state.eval_net is not None else state.model

    def epoch_end(self, state: TrainState) -> None:
        try:
            value = state.last(self._monitor)
        except KeyError:
            record = state.history[-1]
            known = [f"{s}.{m}" for s in ("train", "val") for m in record.get(s, {})]
            raise RecipeError(
                "methods.early_stopping.monitor",
                self._monitor,
                "is not recorded by this run; recorded: " + ", ".join(known),
            ) from None
        epoch = state.history[-1].get("epoch", len(state.history))
        if self.stopper.forget_before(state.comparable_since):
            self.best_state = None  # weights of a form the evaluated model no longer has
        stop = self.stopper.update(value, epoch)
        if self.stopper.bad_epochs == 0 and self.restore_best:
            # A CPU copy: device memory stays free, and later steps cannot modify it in place.
            weights = self._net(state).state_dict()
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
        if stop:
            self.stopped_epoch = epoch
            state.stop = True
            state.stop_reason = (
                f"early stopping: {self._monitor} did not improve by more than {self.min_delta} for "
                f"{self.patience} epoch(s); best {self.stopper.best:.6g} at epoch {self.stopper.best_epoch}"
            )

    def state_dict(self) -> dict[str, Any]:
        # best_state: the CPU copy of the best weights, restored at fit_end.
        return {
            "stopper": self.stopper.state_dict(),
            "best_state": self.best_state,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopper.load_state_dict(state["stopper"])
        self.best_state, self.stopped_epoch = state["best_state"], state["stopped_epoch"]

    def fit_end(self, state: TrainState) -> None:
        restored = self.restore_best and self.best_state is not None
        if restored:
            self._net(state).load_state_dict(self.best_state)  # type: ignore[arg-type]
        best = self.stopper.best
        state.info["early_stopping"] = {
            "monitor": self._monitor,
            "best_epoch": self.stopper.best_epoch,
            "best_value": best if math.isfinite(best) else None,
            "stopped_epoch": self.stopped_epoch,
            "restored": restored,
        }
