"""The one extension mechanism: a Method overrides some of the loop's events.

The loop, as annotated pseudocode (``tunelab.train.fit`` is exactly this)::

    setup(state)                          model built and initialized, optimizer made; a method may
                                          edit the model (freeze, swap layers) or the criterion
    for epoch in range(epochs):
        epoch_start(state)
        for step in steps(train):         one optimizer step: tunelab.step.TrainStep, shared by
                                          fit, lr_find and the method tests' loop
            for x, y in step:             train.grad_accum micro-batches (1 by default)
                x, y = batch(state, x, y)     augmentation, mixup/cutmix (y may become soft targets)
                out = model(x)                under autocast (train.precision)
                loss = criterion(out, y)
                loss = loss(state, loss, out, y)   L1 / L2 / elastic-net penalties
                (loss * len(x) / samples in step).backward()   (fp16: loss-scaled)
            unscale the gradients         (fp16) so the hooks see their true values
            after_backward(state)         gradient clipping                   (reverse order)
            optimizer.step(); schedule.step_batch(); state.step += 1   (fp16: skipped on overflow)
            after_step(state)             EMA updates, pruning masks          (reverse order)
        state.eval_net = eval_model(state, state.model)   which weights are evaluated/saved
        evaluate eval_net on val; best epoch (BestEpoch, from comparable_since on)
        schedule.step_epoch(monitor value)
        epoch_end(state)                  early stopping sets state.stop; a method may add its
                                          per-epoch figures to state.history[-1] under its name
                                          (logged to metrics.jsonl and TensorBoard) (reverse order)
        if state.stop: break
    fit_end(state)                        restore best weights, finalize      (reverse order)
    evaluate eval_net on val and, once, on test

Hooks do nothing by default, and the loop only calls the methods that override a hook, so a
method that is absent costs nothing per batch. "After" hooks run in reverse order so a method
can undo what it did "before".

**Resume.** ``fit`` writes ``last.pt`` at every epoch end (and every ``train.checkpoint_every``
optimizer steps); a run killed at any point continues from it, bit for bit (``tunelab.resume``).
A resumed run builds fresh methods and runs their ``setup`` as a new run does, then restores the
model, optimizer, schedule, every RNG, the loop's position and history, and each method's
``load_state_dict(state_dict())``. So a method that keeps anything across steps or epochs (an
average, masks, counters, a position in a schedule, the best weights, its own generator) returns
it from ``state_dict`` (tensors, numbers, strings, lists and dicts of them: ``last.pt`` is read
with ``torch.load(weights_only=True)``) and puts it back in ``load_state_dict``, including what
follows from it (hooks, ``requires_grad`` flags). What ``setup`` rebuilds the same way from the
recipe needs no saving. A resume may start mid-epoch, after ``epoch_start`` ran in the killed
process: it is not called again for that epoch. The global torch, NumPy and Python generators are
saved and restored by the loop; draw from them (or save your own), never from an unseeded source.

Each method is a pure function (tested against a reference, usable from any loop) plus a thin
``Method`` adapter that hooks it in here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from tunelab.registry import Registry

if TYPE_CHECKING:
    from tunelab.data import DataBundle
    from tunelab.optim import Schedule
    from tunelab.recipe import Recipe

# Every method a recipe can name; each method module registers its adapters here on import.
METHODS = Registry("method")

# Event names in loop order; the second set runs in reverse method order.
EVENTS = (
    "setup",
    "epoch_start",
    "batch",
    "loss",
    "after_backward",
    "after_step",
    "eval_model",
    "epoch_end",
    "fit_end",
)
REVERSED_EVENTS = frozenset({"after_backward", "after_step", "epoch_end", "fit_end"})


@dataclass
class TrainState:
    """What the loop shares with methods. Methods read it and may set the fields marked (rw)."""

    recipe: Recipe
    data: DataBundle  # tensors already on ``device``
    model: nn.Module  # (rw in setup) the network being trained
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    criterion: Callable[[Tensor, Tensor], Tensor]  # (rw in setup) e.g. label smoothing
    device: torch.device
    monitor: str  # e.g. "val.accuracy"
    mode: str  # "max" or "min": which direction of ``monitor`` is better
    steps_per_epoch: int  # optimizer steps (each of train.grad_accum micro-batches)
    eval_net: nn.Module | None = None  # (rw via eval_model) the weights evaluated and saved
    epoch: int = 0  # 0-based epoch being run
    step: int = 0  # optimizer steps taken so far (not micro-batches)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    stop: bool = False  # (rw in epoch_end) end training after this epoch
    stop_reason: str = ""  # (rw) why training stopped, for the report
    info: dict[str, Any] = field(default_factory=dict)  # (rw) facts a method reports in the result
    # (rw) The first epoch (0-based) whose evaluated model has the run's final form. A method that
    # changes what is evaluated mid-run (channel pruning narrows it) sets it; the best epoch (the
    # loop's best.pt, early stopping's restored weights) is then chosen among epochs from it on,
    # never a dense epoch the final model cannot be.
    comparable_since: int = 0

    def last(self, metric: str | None = None) -> float:
        """Value of ``metric`` (default: the monitor, e.g. "val.accuracy") at the last epoch."""
        split, _, name = (metric or self.monitor).partition(".")
        return float(self.history[-1][split][name])


class Method:
    """Base class of every method. Override only the hooks you need.

    Parameters come from ``__init__``'s keyword arguments (type hints and defaults are the
    recipe schema, see ``tunelab.registry``).
    """

    name: ClassVar[str] = ""
    # Hooks this instance overrides but does not need with its parameters (e.g. L1's proximal
    # step when proximal=False): the loop skips them, keeping per-batch cost at zero.
    skip_hooks: frozenset[str] = frozenset()
    # True for a method that wraps the model every other method chose (tta): it stays last in
    # ``methods``, and a method added by an override goes before it.
    wraps_final: ClassVar[bool] = False
    # Why this method cannot be correct under DDP (several processes), or None when it is: the
    # loop refuses a method that sets it before the first step (tunelab.distributed.wrap_model).
    ddp_refusal: ClassVar[str | None] = None

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        """Check the method against the whole recipe before anything runs; raise RecipeError."""

    def setup(self, state: TrainState) -> None:
        pass

    def epoch_start(self, state: TrainState) -> None:
        pass

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return x, y

    def loss(self, state: TrainState, loss: Tensor, out: Tensor, y: Tensor) -> Tensor:
        return loss

    def after_backward(self, state: TrainState) -> None:
        pass

    def after_step(self, state: TrainState) -> None:
        pass

    def eval_model(self, state: TrainState, model: nn.Module) -> nn.Module:
        return model

    def epoch_end(self, state: TrainState) -> None:
        pass

    def fit_end(self, state: TrainState) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this method (see "Resume" in the module doc); {} for none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s output into an instance whose ``setup`` has run."""


def hooks_of(methods: list[Method], event: str) -> list[Callable[..., Any]]:
    """Bound hooks of the methods that override ``event``, in the order the loop calls them."""
    base = getattr(Method, event)
    bound = [
        getattr(m, event)
        for m in methods
        if getattr(type(m), event) is not base and event not in m.skip_hooks
    ]
    return bound[::-1] if event in REVERSED_EVENTS else bound
