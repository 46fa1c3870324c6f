"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): ramp the lr, watch the loss.

``lr_find(recipe)`` builds the data, model, optimizer and methods exactly as ``tunelab.fit`` does,
then trains a copy of the initial weights (a model you pass is left untouched) for ``steps``
optimizer steps on shuffled training batches, the learning rate growing exponentially from
``start_lr`` to ``end_lr`` (one step = one optimizer step of ``fit``: ``train.grad_accum``
micro-batches, in the recipe's precision, through the same ``tunelab.step.TrainStep``; the data is
cycled as often as needed). The recorded loss is smoothed with an exponential moving average
(bias-corrected, as in Adam), and the ramp stops once that ``smoothed`` loss exceeds
``diverge_factor`` times its minimum or the loss becomes NaN/inf: the lr has diverged.

The suggestion follows one rule, ``RULE``: the lr at the minimum of the smoothed loss, divided by
10 (fastai's "minimum" rule). At the minimum the lr is already near the edge of stability, so a
tenth of it is a safe, still fast learning rate. The minimum is read on the ``trend``: the
smoothed loss of the steps before divergence, smoothed again backwards. A moving average lags
by ``smooth / (1 - smooth)`` steps, which on an lr ramp moves its minimum to larger lrs (by two
decades at smooth 0.98 and 25 steps per decade); the backward pass cancels that delay (zero
phase, as scipy's ``filtfilt``). The diverged steps are never part of the trend, so the
suggestion lies more than ten times below any lr that diverged.

What the finder does not run: validation, the epoch hooks of methods (``epoch_start``,
``epoch_end``; gradual unfreezing keeps its initial frozen blocks) and ``torch.compile``. The
methods' per-batch hooks (augmentation, penalties, gradient clipping) run, since they change
the loss and the step. With ``optimizer.layer_decay`` every block keeps its lr ratio to the
output block, whose lr is the one ramped and suggested. A step's loss is known once the step is
taken, so the step whose loss diverged has updated the copy; nothing reads it after.

    >>> result = lr_find({"data": {"name": "iris"}, "model": {"name": "mlp"}}, steps=100)  # doctest: +SKIP
    >>> result.suggested_lr, result.rule  # doctest: +SKIP
    (0.0123, 'lr at the minimum of the smoothed loss / 10')
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import ConstantLR

from tunelab.data import DataBundle
from tunelab.data.stream import StreamSplit
from tunelab.errors import RecipeError, TunelabError
from tunelab.methods import Method
from tunelab.optim import Schedule
from tunelab.recipe import Recipe, load_recipe
from tunelab.step import TrainStep
from tunelab.train import Prepared, prepare

__all__ = ["RULE", "LRFindResult", "apply_suggestion", "ema", "lr_find", "plot_lr_find", "suggest_lr"]

RULE = "lr at the minimum of the smoothed loss (zero-phase trend) / 10"
# The trend must fall at least this much below its first value for the ramp to count as having
# trained at all; a flatter curve has no minimum worth reading (frozen model, labels unrelated to
# the inputs). 5% is above what batch-to-batch noise leaves in the trend (1-2% on small data).
_MIN_DROP = 0.05
# A ramp that went over the training split this many times and brought the loss below this
# fraction of its start has memorized the samples (17 digits images do within a few passes; iris
# at 100 passes does not): the loss then falls up to the edge of divergence and the
# suggestion comes out high, which the result's note says.
_MANY_PASSES = 20
_MEMORIZED = 0.02


@dataclass
class LRFindResult:
    """One range test: the lr and loss of every step, the smoothed loss, and the suggestion.

    ``lrs`` / ``losses`` / ``smoothed`` (the causal moving average the stopping rule reads) have
    one entry per step taken; the last one is the step that diverged when ``stopped_early``.
    ``trend`` covers the steps before it (zero-phase smoothing, read by the suggestion).
    ``diverged_lr`` is the diverged step's lr (None when the ramp reached ``end_lr``);
    ``min_lr`` / ``min_loss`` locate the trend's minimum; ``suggested_lr`` = ``min_lr`` / 10.
    ``note`` warns when the ramp memorized a small training split (empty otherwise).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    trend: list[float]
    suggested_lr: float
    rule: str
    stopped_early: bool
    diverged_lr: float | None
    min_lr: float
    min_loss: float
    steps_per_epoch: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: non-finite losses (a diverged last step) become None."""
        d = asdict(self)
        for key in ("losses", "smoothed", "trend"):
            d[key] = [v if math.isfinite(v) else None for v in d[key]]
        return d


def ema(values: Sequence[float], beta: float) -> list[float]:
    """Exponential moving average ``a <- beta*a + (1 - beta)*v``, bias-corrected (divided by
    ``1 - beta**(i+1)``, as Adam does) so early values are not pulled towards 0.

    >>> [round(v, 3) for v in ema([1.0, 1.0, 4.0], beta=0.5)]
    [1.0, 1.0, 2.714]
    """
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest_lr(lrs: Sequence[float], trend: Sequence[float]) -> tuple[float, int]:
    """(suggested lr, index of the minimum): ``RULE`` on a trend over the non-diverged steps.

    Raises TunelabError when the trend never falls 5% below its start (nothing trained).

    >>> suggest_lr([0.01, 0.1, 1.0], [1.0, 0.5, 0.2])
    (0.1, 2)
    """
    finite = [(v, i) for i, v in enumerate(trend) if math.isfinite(v)]
    if not finite:
        raise TunelabError("lr-find: the loss was not finite from the first step; check the data and model")
    best, i = min(finite)
    first = finite[0][0]
    decreased = best < first * (1 - _MIN_DROP) if first > 0 else best < first
    if not decreased:
        raise TunelabError(
            f"lr-find: the loss did not decrease between lr {lrs[0]:.3g} and {lrs[len(trend) - 1]:.3g} "
            f"(smoothed {first:.4g} at the start, at best {best:.4g}); check that the model has trainable "
            "parameters and the data its labels, or lower --start-lr if it diverges from the first steps"
        )
    return lrs[i] / 10, i


def lr_find(
    recipe: Recipe | str | Path | dict[str, Any],
    *,
    overrides: Sequence[str] = (),
    model: nn.Module | None = None,
    data: DataBundle | tuple[Any, ...] | None = None,
    methods: Sequence[Method] = (),
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    smooth: float = 0.9,
    diverge_factor: float = 4.0,
) -> LRFindResult:
    """Run the learning-rate range test on ``recipe`` (see the module docstring).

    Args:
        recipe, overrides, data, methods: as in ``tunelab.fit`` (only the setup and per-batch
            hooks of the methods run).
        model: your own model; a copy is trained and ``model`` is left as it is.
        start_lr, end_lr: the ramp's first and last lr (of the output block).
        steps: optimizer steps of the ramp (at least 20): 200 gives 25 steps per decade over the
            default 8 decades.
        smooth: weight of the past in the loss's moving average (0: no smoothing). 0.9
            averages ~10 steps, 0.4 of a decade at the default 25 steps per decade: enough to
            see through mini-batch noise, short enough that the stopping rule reacts within
            half a decade (0.98, fastai's value, lets the ramp run two decades past the edge).
        diverge_factor: stop once the smoothed loss exceeds this multiple of its minimum.

    >>> r = lr_find({"data": {"name": "iris"}, "model": {"name": "linear"}, "optimizer": {"name": "sgd"}},
    ...             steps=60, start_lr=1e-4, end_lr=100.0)  # doctest: +SKIP
    >>> r.suggested_lr < r.diverged_lr  # doctest: +SKIP
    True
    """
    _check_args(start_lr, end_lr, steps, smooth, diverge_factor)
    recipe = load_recipe(recipe, overrides) if overrides or not isinstance(recipe, Recipe) else recipe
    t = recipe.train
    if model is not None:
        model = copy.deepcopy(model)  # the range test trains it towards divergence
    prep = prepare(recipe, model=model, data=data, methods=methods)
    state = prep.state
    optimizer = state.optimizer
    n, steps_per_epoch = len(state.data.x_train), state.steps_per_epoch
    scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
    # The finder sets every lr itself; a constant schedule stands in for methods that read one.
    state.schedule = Schedule(optimizer, ConstantLR(optimizer, factor=1.0, total_iters=0), per_batch=False)
    train_step = TrainStep(state, prep.methods)  # after the swap: no per-batch schedule steps

    lrs, losses, smoothed, stopped = _ramp(
        prep, train_step, start_lr, end_lr, steps, smooth, diverge_factor, scales, seed=t.seed
    )
    kept = smoothed[: len(lrs) - 1] if stopped else smoothed  # never the diverged step
    trend = ema(kept[::-1], smooth)[::-1]  # backwards again: cancels the average's delay
    suggested, i_min = suggest_lr(lrs, trend)
    note = _memorized_note(len(lrs) / steps_per_epoch, n, trend, i_min)
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        trend=trend,
        suggested_lr=suggested,
        rule=RULE,
        stopped_early=stopped,
        diverged_lr=lrs[-1] if stopped else None,
        min_lr=lrs[i_min],
        min_loss=trend[i_min],
        steps_per_epoch=steps_per_epoch,
        note=note,
    )


def _ramp(
    prep: Prepared,
    train_step: TrainStep,
    start_lr: float,
    end_lr: float,
    steps: int,
    smooth: float,
    diverge_factor: float,
    scales: list[float],
    *,
    seed: int,
) -> tuple[list[float], list[float], list[float], bool]:
    """The ramp: one step per lr from ``start_lr`` to ``end_lr`` (geometric), until the smoothed
    loss exceeds ``diverge_factor`` x its minimum; (lrs, losses, smoothed losses, stopped early)."""
    state, groups = prep.state, prep.groups
    bundle, device, optimizer = state.data, state.device, state.optimizer
    n, steps_per_epoch = len(bundle.x_train), state.steps_per_epoch
    ratio = end_lr / start_lr
    gen = torch.Generator().manual_seed(seed)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    batches = _epoch_batches(bundle, torch.randperm(n, generator=gen), groups, device)
    state.model.train()
    for i in range(steps):
        lr = start_lr * ratio ** (i / (steps - 1))
        for g, k in zip(optimizer.param_groups, scales, strict=True):
            g["lr"] = lr * k
        b = i % steps_per_epoch
        if b == 0 and i > 0:
            batches = _epoch_batches(bundle, torch.randperm(n, generator=gen), groups, device)
        micro = next(batches)
        value = float(train_step(micro))  # the ramp reads every step's loss: one sync per step
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            smoothed.append(value)
            return lrs, losses, smoothed, True
        avg = smooth * avg + (1 - smooth) * value
        s = avg / (1 - smooth ** (i + 1))  # bias correction: the average starts at 0
        smoothed.append(s)
        if s > diverge_factor * best:
            return lrs, losses, smoothed, True
        best = min(best, s)
    return lrs, losses, smoothed, False


def _epoch_batches(
    bundle: DataBundle, perm: Tensor, groups: list[list[tuple[int, int]]], device: torch.device
) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Each step's micro-batches over one permutation of train: indexed from the tensors in memory,
    or read in the same order through a streamed split's DataLoader (``tunelab.data.stream``)."""
    x, y = bundle.x_train, bundle.y_train
    if isinstance(x, StreamSplit):
        read = x.read([perm[lo:hi].tolist() for group in groups for lo, hi in group])
        for group in groups:
            yield [next(read) for _ in group]
        return
    perm = perm.to(device)
    for group in groups:
        yield [(x[idx], y[idx]) for idx in (perm[lo:hi] for lo, hi in group)]


def _memorized_note(passes: float, n: int, trend: list[float], i_min: int) -> str:
    """A warning when the ramp went over the data many times and the loss fell far: memorization."""
    if passes > _MANY_PASSES and trend[i_min] < _MEMORIZED * trend[0]:
        return (
            f"the ramp went over the {n} training samples {passes:.0f} times and the loss fell to "
            f"{trend[i_min] / trend[0]:.1%} of its start: the model memorized them, so the loss kept "
            "falling up to the edge of divergence and the suggestion is likely too high; run the "
            "finder on more data (e.g. data.train_fraction=1) and reuse its lr"
        )
    return ""


def _check_args(start_lr: float, end_lr: float, steps: int, smooth: float, diverge_factor: float) -> None:
    if not 0 < start_lr < end_lr:
        raise RecipeError("start_lr", start_lr, f"must be > 0 and < end_lr ({end_lr})")
    if steps < 20:
        raise RecipeError("steps", steps, "must be >= 20: fewer steps cannot show where the loss turns")
    if not 0 <= smooth < 1:
        raise RecipeError("smooth", smooth, "must be >= 0 and < 1 (0: no smoothing)")
    if not diverge_factor > 1:
        raise RecipeError("diverge_factor", diverge_factor, "must be > 1: a multiple of the smoothed minimum")


def apply_suggestion(recipe: Recipe, lr: float) -> tuple[Recipe, str]:
    """The recipe with ``lr`` as its learning rate, and the dotted path that was set.

    That is ``optimizer.lr``, which onecycle and cyclic schedules use as their peak when their
    ``max_lr`` is null; when ``schedule.max_lr`` is set, the schedule ignores ``optimizer.lr`` and
    ``schedule.max_lr`` is set instead.

    >>> from tunelab.recipe import load_recipe
    >>> r, path = apply_suggestion(load_recipe({"schedule": {"name": "onecycle", "max_lr": 0.1}}), 0.02)
    >>> path, r.schedule.params["max_lr"]
    ('schedule.max_lr', 0.02)
    """
    lr = float(f"{lr:.2g}")  # two significant digits: the test is not more precise than that
    path = "optimizer.lr"
    if recipe.schedule.name in ("onecycle", "cyclic") and recipe.schedule.params.get("max_lr") is not None:
        path = "schedule.max_lr"
    return load_recipe(recipe, [f"{path}={lr!r}"]), path


def plot_lr_find(result: LRFindResult, path: str | Path) -> Path:
    """Draw loss against lr (log scale) with the suggestion into a PNG; needs matplotlib.

    >>> r = LRFindResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 4.0], [1.0, 0.6, 3.0], [0.9, 0.6], 1e-3, RULE,
    ...                  True, 0.1, 1e-2, 0.6, 1)
    >>> import tempfile; plot_lr_find(r, tempfile.mkdtemp() + "/lr.png").suffix  # doctest: +SKIP
    '.png'
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise TunelabError("--plot needs matplotlib: pip install matplotlib") from None
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise TunelabError(f"--plot {path}: the directory {path.parent} does not exist")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        ax.plot(result.lrs, result.losses, color="0.7", linewidth=0.8, label="loss per step")
        ax.plot(
            result.lrs, result.smoothed, color="C0", linewidth=1, alpha=0.6, label="smoothed (stopping rule)"
        )
        n = len(result.trend)
        ax.plot(result.lrs[:n], result.trend, color="C0", linewidth=2, label="trend (zero-phase, suggestion)")
        ax.axvline(
            result.suggested_lr, color="C2", linestyle="--", label=f"suggested {result.suggested_lr:.2g}"
        )
        ax.plot([result.min_lr], [result.min_loss], "o", color="C1", label=f"minimum at {result.min_lr:.2g}")
        if result.diverged_lr is not None:
            ax.axvspan(result.diverged_lr, result.lrs[-1] * 1.5, color="C3", alpha=0.15, label="diverged")
        ax.set_xscale("log")
        finite = [v for v in result.trend + result.losses[:n] if math.isfinite(v)]
        # The divergence spike would squash the curve: show up to twice the first trend value.
        top = max(result.trend[0] * 2, result.min_loss * 1.5)
        low = min(finite)
        ax.set_ylim(low - 0.05 * (top - low), top)
        ax.set_xlabel("learning rate (output block)")
        ax.set_ylabel("training loss")
        ax.set_title(f"lr range test, {len(result.lrs)} steps; suggested = lr at the trend's minimum / 10")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
