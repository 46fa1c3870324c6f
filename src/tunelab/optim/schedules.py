"""Learning-rate schedules and warmups, built on ``torch.optim.lr_scheduler``.

The ``SCHEDULES`` registry backs the recipe's ``schedule:`` section (and ``WARMUPS`` its
``warmup``); each entry's keyword parameters (type hints and defaults) are the recipe schema.
``build_schedule`` wraps the torch scheduler in a ``Schedule`` that the loop steps once per batch
(``onecycle``, ``cyclic``) or once per epoch (all others; ``plateau`` reads the monitored
validation metric), with an optional warmup chained in front.

Epoch counts in a schedule's own parameters (``step_size``, ``milestones``, ``step_size_up``)
count from the end of warmup: the schedule's clock starts when warmup ends, as torch's
``SequentialLR`` restarts it, and cosine or onecycle span exactly the epochs after warmup.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from tunelab.errors import RecipeError
from tunelab.optim.optimizers import build_optimizer
from tunelab.registry import Registry
from tunelab.schema import Doc, Range
from tunelab.spec import OptimizerSpec, ScheduleSpec

__all__ = [
    "SCHEDULES",
    "WARMUPS",
    "WARMUP_START_FACTOR",
    "Horizon",
    "Schedule",
    "build_schedule",
    "check_schedule",
]

SCHEDULES = Registry("schedule")
WARMUPS = Registry("warmup")

_BETA = Annotated[float, Range(ge=0, lt=1)]  # a momentum (or Adam's beta1) that a cycle moves

# --- schedules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Horizon:
    """What a schedule factory knows about the run it schedules.

    ``epochs`` counts the epochs the schedule itself runs (after warmup); ``mode`` is the direction
    of the monitored metric ("max" for accuracy, "min" for loss), read by ``plateau``.

    >>> Horizon(epochs=10, steps_per_epoch=5).total_steps
    50
    """

    epochs: int
    steps_per_epoch: int
    mode: str = "max"

    def __post_init__(self) -> None:
        # Programming errors (the loop computes these), not recipe errors.
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError(f"Horizon needs epochs >= 1 and steps_per_epoch >= 1, got {self}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"Horizon.mode must be 'min' or 'max', got {self.mode!r}")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


_DECAY_GAMMA = Annotated[float, Range(gt=0, le=1), Doc("factor the LR is multiplied by at each decay")]


@SCHEDULES.register("constant", "Constant learning rate.", skip=2)
def _constant(optimizer: Optimizer, horizon: Horizon) -> LRScheduler:
    # A real scheduler (factor 1, no iterations) rather than None, so warmup can chain in front of
    # it with SequentialLR like any other schedule.
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("step", "Step decay: multiply the LR by gamma every step_size epochs.", skip=2)
def _step(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    step_size: Annotated[
        int | None, Range(ge=1), Doc("epochs between decays; null: a third of the epochs after warmup")
    ] = None,
    gamma: _DECAY_GAMMA = 0.1,  # one decade per drop, the classic ResNet step schedule
) -> LRScheduler:
    if step_size is None:
        # A third of the run: the LR drops at 1/3 and 2/3 of the epochs, as in the ResNet recipe.
        step_size = max(1, math.ceil(horizon.epochs / 3))
    elif step_size >= horizon.epochs:
        raise RecipeError(
            "schedule.step_size",
            step_size,
            f"must be < {horizon.epochs}, the epochs the schedule runs (train.epochs minus "
            "schedule.warmup_epochs); otherwise the LR never decays",
        )
    return StepLR(optimizer, step_size=step_size, gamma=gamma)


def _check_milestones(params: Mapping[str, Any], path: str) -> None:
    """Epoch-independent checks, run when the recipe is loaded (the bound needs train.epochs)."""
    milestones = params.get("milestones")
    if milestones is None:
        return
    if not milestones:
        raise RecipeError(f"{path}.milestones", milestones, "must list at least one epoch")
    if milestones[0] < 1 or any(b <= a for a, b in itertools.pairwise(milestones)):
        raise RecipeError(f"{path}.milestones", milestones, "must be strictly increasing epochs >= 1")


@SCHEDULES.register(
    "multistep",
    "Multi-step decay: multiply the LR by gamma at each milestone epoch.",
    skip=2,
    validate=_check_milestones,
)
def _multistep(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    milestones: Annotated[list[int], Doc("epochs (after warmup) at which the LR is multiplied by gamma")],
    gamma: _DECAY_GAMMA = 0.1,  # one decade per milestone, as in the ResNet recipe
) -> LRScheduler:
    _check_milestones({"milestones": milestones}, "schedule")
    if milestones[-1] >= horizon.epochs:
        raise RecipeError(
            "schedule.milestones",
            milestones,
            f"each must be < {horizon.epochs}, the epochs the schedule runs (train.epochs minus "
            "schedule.warmup_epochs); a later milestone never fires",
        )
    return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)


@SCHEDULES.register("exponential", "Exponential decay: multiply the LR by gamma every epoch.", skip=2)
def _exponential(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    # 0.9 per epoch takes the LR down ~8x over 20 epochs (the default run): about one decade.
    gamma: Annotated[float, Range(gt=0, le=1), Doc("factor the LR is multiplied by each epoch")] = 0.9,
) -> LRScheduler:
    return ExponentialLR(optimizer, gamma=gamma)


@SCHEDULES.register("cosine", "Cosine annealing to eta_min over the epochs after warmup.", skip=2)
def _cosine(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    eta_min: Annotated[float, Range(ge=0), Doc("LR at the end of the cosine")] = 0.0,  # torch's
) -> LRScheduler:
    return CosineAnnealingLR(optimizer, T_max=horizon.epochs, eta_min=eta_min)


def _has_momentum(optimizer: Optimizer) -> bool:
    # torch's cycle_momentum check only looks for a "momentum" key, which plain SGD and RMSprop
    # always have (at 0): cycling it would switch momentum on in an optimizer the recipe made
    # momentum-free. Adam-type optimizers cycle beta1 instead.
    return "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0.0) > 0


_CYCLE_MOMENTUM = Annotated[
    bool,
    Doc(
        "cycle momentum (beta1 for Adam) inversely to the LR, replacing the optimizer's value; "
        "skipped for optimizers without momentum (sgd, gd, rmsprop with momentum 0)"
    ),
]


@SCHEDULES.register(
    "onecycle",
    "One-cycle policy (Smith): LR up to max_lr then annealed far below; per batch.",
    skip=2,
    per_batch=True,
)
def _onecycle(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    max_lr: Annotated[float | None, Range(gt=0), Doc("peak LR; null: the optimizer's lr")] = None,
    pct_start: Annotated[float, Range(gt=0, lt=1), Doc("fraction of the steps spent increasing")] = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: Annotated[float, Range(ge=1), Doc("start LR = max_lr / div_factor")] = 25.0,
    final_div_factor: Annotated[float, Range(ge=1), Doc("final LR = start LR / final_div_factor")] = 1e4,
    three_phase: Annotated[bool, Doc("anneal back to the start LR before the final decay")] = False,
    cycle_momentum: _CYCLE_MOMENTUM = True,
    base_momentum: _BETA = 0.85,  # torch's defaults, from Smith & Topin's super-convergence runs
    max_momentum: _BETA = 0.95,
) -> LRScheduler:
    groups = optimizer.param_groups
    # The recipe's lr becomes the peak: it is the LR the user tuned the optimizer for.
    # An explicit max_lr is the peak of the output block; layer_decay scales the others' peaks.
    peaks = [g["lr"] if max_lr is None else max_lr * g.get("lr_scale", 1.0) for g in groups]
    return OneCycleLR(
        optimizer,
        max_lr=peaks,
        total_steps=horizon.total_steps,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum and _has_momentum(optimizer),
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
    )


@SCHEDULES.register(
    "cyclic",
    "Cyclical LR (Smith 2017): triangle waves between base_lr and max_lr; per batch.",
    skip=2,
    per_batch=True,
)
def _cyclic(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    # Smith (2017, sec. 3.3) sets the bottom of the cycle at 1/3 to 1/4 of the top.
    base_lr: Annotated[float | None, Range(gt=0), Doc("bottom of the cycle; null: max_lr / 4")] = None,
    max_lr: Annotated[float | None, Range(gt=0), Doc("top of the cycle; null: the optimizer's lr")] = None,
    # Smith recommends a half cycle of 2 to 10 epochs; 2 gives several cycles in a short run.
    step_size_up: Annotated[float, Range(gt=0), Doc("epochs from base_lr up to max_lr")] = 2.0,
    step_size_down: Annotated[
        float | None, Range(gt=0), Doc("epochs from max_lr back down; null: step_size_up")
    ] = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    # 1 (torch's default) means no shrinking; exp_range needs a value below 1.
    gamma: Annotated[
        float, Range(gt=0, le=1), Doc("exp_range only: factor the amplitude shrinks by per epoch")
    ] = 1.0,
    cycle_momentum: _CYCLE_MOMENTUM = True,
    base_momentum: _BETA = 0.8,  # torch's defaults (Smith's CLR experiments)
    max_momentum: _BETA = 0.9,
) -> LRScheduler:
    groups = optimizer.param_groups
    # Explicit bounds are those of the output block; layer_decay scales the other blocks' bounds.
    tops = [g["lr"] if max_lr is None else max_lr * g.get("lr_scale", 1.0) for g in groups]
    scales = [g.get("lr_scale", 1.0) for g in groups]
    bottoms = [t / 4 if base_lr is None else base_lr * k for t, k in zip(tops, scales, strict=True)]
    if any(b >= t for b, t in zip(bottoms, tops, strict=True)):
        raise RecipeError("schedule.base_lr", bottoms[0], f"must be < max_lr ({tops[0]})")
    if mode == "exp_range" and gamma == 1.0:
        raise RecipeError("schedule.gamma", gamma, "mode exp_range needs gamma < 1 (its amplitude decay)")
    if mode != "exp_range" and gamma != 1.0:
        raise RecipeError("schedule.gamma", gamma, f"is only used by mode exp_range (mode is {mode})")
    spe = horizon.steps_per_epoch
    # CyclicLR sets the LR to base_lr before recording initial_lr, so a warmup chained in front
    # (SequentialLR restarts from initial_lr) rises to where the cycle starts.
    return CyclicLR(
        optimizer,
        base_lr=bottoms,
        max_lr=tops,
        # CyclicLR counts batches and accepts fractional sizes, so epochs convert exactly.
        step_size_up=step_size_up * spe,
        step_size_down=None if step_size_down is None else step_size_down * spe,
        mode=mode,
        gamma=gamma ** (1.0 / spe),  # exp_range scales by gamma per batch; ours is per epoch
        cycle_momentum=cycle_momentum and _has_momentum(optimizer),
        base_momentum=base_momentum,
        max_momentum=max_momentum,
    )


@SCHEDULES.register(
    "plateau", "Reduce the LR by factor when the monitored val metric stops improving.", skip=2
)
def _plateau(
    optimizer: Optimizer,
    horizon: Horizon,
    *,
    factor: Annotated[float, Range(gt=0, lt=1), Doc("factor the LR is multiplied by at a plateau")] = 0.1,
    # torch's 10 suits runs of 100+ epochs; 5 lets the default 20-epoch run reduce up to 3 times.
    patience: Annotated[int, Range(ge=0), Doc("epochs without improvement tolerated before reducing")] = 5,
    threshold: Annotated[float, Range(ge=0), Doc("smallest change that counts as an improvement")] = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: Annotated[int, Range(ge=0), Doc("epochs to wait after a reduction")] = 0,
    min_lr: Annotated[float, Range(ge=0), Doc("the LR never goes below this")] = 0.0,
) -> ReduceLROnPlateau:
    return ReduceLROnPlateau(
        optimizer,
        mode=horizon.mode,  # type: ignore[arg-type]  # checked in Horizon
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        min_lr=min_lr,
    )


# --- warmup ----------------------------------------------------------------------------------

# Warmup starts at 1/10 of the target LR: small enough that the first updates (large initial
# gradients, Adam's not yet calibrated second moments) cannot blow up, large enough that a short
# warmup stepped per epoch does not waste its first epoch at a negligible LR.
WARMUP_START_FACTOR = 0.1


@dataclass
class _GeometricWarmup:
    """LR factor growing geometrically from ``start`` to 1 over ``steps`` steps, then 1.

    A callable object, not a lambda, so LambdaLR saves its state in ``state_dict``.
    """

    start: float
    steps: int

    def __call__(self, step: int) -> float:
        return self.start ** (1.0 - min(step, self.steps) / self.steps)


@WARMUPS.register("linear", "LR grows linearly from a tenth of its value.", skip=2)
def _linear_warmup(optimizer: Optimizer, steps: int) -> LRScheduler:
    return LinearLR(optimizer, start_factor=WARMUP_START_FACTOR, end_factor=1.0, total_iters=steps)


@WARMUPS.register("exponential", "LR grows geometrically from a tenth of its value.", skip=2)
def _exponential_warmup(optimizer: Optimizer, steps: int) -> LRScheduler:
    # torch has no geometric warmup scheduler; LambdaLR with the closed form is the smallest fit.
    return LambdaLR(optimizer, _GeometricWarmup(WARMUP_START_FACTOR, steps))


class Schedule:
    """A torch LR scheduler (with optional warmup) as the loop steps it.

    ``per_batch`` schedules (onecycle, cyclic) advance in ``step_batch``, called after every
    optimizer step; the others advance in ``step_epoch``, called after each epoch's validation
    with the monitored metric (read only by ``plateau``). Build it with ``build_schedule``.

    >>> import torch
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    >>> s = Schedule(opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5), per_batch=False)
    >>> opt.step(); s.step_epoch(None); s.lr()
    0.5
    """

    def __init__(
        self,
        optimizer: Optimizer,
        scheduler: LRScheduler | None,
        *,
        per_batch: bool,
        plateau: ReduceLROnPlateau | None = None,
        warmup_epochs: int = 0,
    ) -> None:
        """``scheduler`` is stepped without a metric; with ``plateau``, it is the warmup (or None)
        and runs for the first ``warmup_epochs`` epochs, then ``plateau`` takes over."""
        if scheduler is None and plateau is None:
            raise ValueError("Schedule needs a scheduler or a plateau scheduler")
        if plateau is not None and per_batch:
            raise ValueError("a plateau schedule is stepped per epoch")
        self.optimizer = optimizer
        self.per_batch = per_batch
        self._scheduler = scheduler
        self._plateau = plateau
        self._warmup_epochs = warmup_epochs if plateau is not None else 0
        self._epochs = 0  # epochs finished, for the warmup -> plateau hand-over

    def step_batch(self) -> None:
        """Advance a per-batch schedule by one optimizer step (a no-op for epoch schedules)."""
        if self.per_batch:
            self._scheduler.step()  # type: ignore[union-attr]  # per_batch implies a scheduler

    def step_epoch(self, metric: float | None = None) -> None:
        """Advance an epoch schedule after an epoch; ``metric`` is the monitored val value."""
        if self.per_batch:
            return
        self._epochs += 1
        if self._plateau is not None and self._epochs > self._warmup_epochs:
            if metric is None:
                raise ValueError("the plateau schedule needs the monitored metric at every epoch")
            self._plateau.step(metric)
        elif self._scheduler is not None:
            self._scheduler.step()

    def lr(self) -> float:
        """The current learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state; save the optimizer's too (the current LR lives there)."""
        return {
            "epochs": self._epochs,
            "scheduler": None if self._scheduler is None else self._scheduler.state_dict(),
            "plateau": None if self._plateau is None else self._plateau.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output into a schedule built with the same recipe."""
        self._epochs = state["epochs"]
        if self._scheduler is not None:
            self._scheduler.load_state_dict(state["scheduler"])
        if self._plateau is not None:
            self._plateau.load_state_dict(state["plateau"])


def build_schedule(
    optimizer: Optimizer,
    spec: ScheduleSpec,
    epochs: int,
    steps_per_epoch: int,
    mode: str = "max",
) -> Schedule:
    """The schedule named by ``spec`` for a run of ``epochs`` x ``steps_per_epoch`` steps.

    With ``spec.warmup_epochs`` W > 0 a warmup runs first (per batch over W * steps_per_epoch
    steps for per-batch schedules, per epoch otherwise), rising from ``WARMUP_START_FACTOR`` times
    the schedule's starting LR to that LR; the schedule then runs over the remaining epochs.
    ``mode`` is the direction of the monitored metric, used by ``plateau``.

    >>> import torch
    >>> from tunelab.spec import ScheduleSpec
    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
    >>> s = build_schedule(opt, ScheduleSpec("constant", warmup_epochs=2), epochs=5, steps_per_epoch=3)
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(round(s.lr(), 3)); opt.step(); s.step_epoch(None)
    >>> lrs
    [0.1, 0.55, 1.0, 1.0]
    """
    entry = SCHEDULES.get(spec.name, "schedule.name")
    params = entry.check(spec.params, "schedule")
    warmup_epochs = spec.warmup_epochs
    if not 0 <= warmup_epochs < epochs:
        raise RecipeError(
            "schedule.warmup_epochs",
            warmup_epochs,
            f"must be >= 0 and < train.epochs ({epochs}), so the schedule itself gets epochs to run",
        )
    per_batch = bool(entry.tags.get("per_batch"))
    # The main schedule is built first: warmup then rises to the LR it starts from (onecycle starts
    # at max_lr / div_factor, cyclic at base_lr), so the hand-over is continuous.
    main = entry.build(optimizer, Horizon(epochs - warmup_epochs, steps_per_epoch, mode), **params)
    if warmup_epochs == 0:
        if isinstance(main, ReduceLROnPlateau):
            return Schedule(optimizer, None, per_batch=False, plateau=main)
        return Schedule(optimizer, main, per_batch=per_batch)
    warmup_steps = warmup_epochs * steps_per_epoch if per_batch else warmup_epochs
    warmup = WARMUPS.get(spec.warmup, "schedule.warmup").build(optimizer, warmup_steps)
    if isinstance(main, ReduceLROnPlateau):
        # SequentialLR rejects ReduceLROnPlateau (its step needs the metric): Schedule runs the
        # warmup for its epochs, then hands over to the plateau scheduler.
        return Schedule(optimizer, warmup, per_batch=False, plateau=main, warmup_epochs=warmup_epochs)
    return Schedule(
        optimizer, SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps]), per_batch=per_batch
    )


def check_schedule(spec: ScheduleSpec, optimizer: OptimizerSpec, epochs: int) -> None:
    """Raise the RecipeError ``build_schedule`` would raise, before any data or model exists.

    Builds the optimizer and schedule on a one-parameter stand-in, so checks that need
    ``train.epochs`` (warmup length, milestones) or the optimizer's lr (cyclic's base_lr) run at
    recipe-validation time.

    >>> from tunelab.spec import OptimizerSpec, ScheduleSpec
    >>> check_schedule(ScheduleSpec("multistep", params={"milestones": [2, 4]}), OptimizerSpec(), 5)
    >>> try:
    ...     check_schedule(ScheduleSpec("multistep", params={"milestones": [2, 9]}), OptimizerSpec(), 5)
    ... except RecipeError as e:
    ...     print(e.path, e.value)
    schedule.milestones [2, 9]
    """
    stand_in = nn.Linear(1, 1)
    build_schedule(build_optimizer(stand_in, optimizer), spec, epochs, steps_per_epoch=1)
