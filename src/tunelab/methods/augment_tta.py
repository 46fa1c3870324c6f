"""Test-time augmentation (TTA): evaluate a model on its input and a few flipped/shifted copies.

``tta_views`` lists the deterministic views of a batch (the input itself, flips, shifts);
``TTAModel`` wraps a model so that its output is the average over those views:

* classification: the log of the mean of the views' softmax probabilities, which ``argmax`` and
  ``cross_entropy`` read like logits (``softmax`` of it gives back the averaged probabilities);
* regression: the mean of the views' outputs.

The ``tta`` method is an evaluation option: its ``eval_model`` hook returns the wrapper, so the
per-epoch validation, the best-epoch choice, and the final val and test figures are all measured
with TTA (``every_epoch: false`` keeps the epochs plain and wraps only for the final evaluation,
saving the k-fold evaluation cost per epoch). Training never sees it.

**Checkpoints stay plain.** The wrapper holds no weights of its own, and its ``state_dict`` and
``load_state_dict`` are the inner model's, with the same keys: ``best.pt`` and ``final.pt`` load
into the bare model (``build_model(...).load_state_dict(torch.load("best.pt"))``), and a checkpoint
of the bare model loads into the wrapper. Do not nest the wrapper inside another module whose
checkpoint you save (its keys would lack the ``model.`` level that loading expects); use
``TTAModel(model)`` at prediction time instead.

The efficiency figures of a TTA run (latency, throughput) are those of the wrapper: k views cost
k forward passes, which is the real price of TTA.

Order in a recipe: list ``tta`` after the methods that choose the evaluated weights (``ema``), so
that it wraps the weights they choose; the other order is refused before the run starts (and, for
methods passed to ``fit(methods=...)``, at the end of the first epoch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from torch import Tensor, nn

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.methods.augment import ShiftMode, require_rank, shift
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["TTA", "TTAModel", "tta_views"]

View = tuple[str, int, int]  # (kind, axis, amount): ("id", 0, 0), ("flip", -1, 0), ("shift", -2, 3)


def view_plan(
    spatial_dims: int, *, hflip: bool = False, vflip: bool = False, shifts: tuple[int, ...] = ()
) -> list[View]:
    """The views of TTA for data with 1 (signals) or 2 (images) spatial axes; the identity first.

    ``hflip`` mirrors the last axis (width, or time); ``vflip`` the height (images only); each
    shift ``s`` gives ``±s`` along the last axis and, for images, also along the height.

    >>> view_plan(2, hflip=True, shifts=(1,))
    [('id', 0, 0), ('flip', -1, 0), ('shift', -1, 1), ('shift', -1, -1), ('shift', -2, 1), ('shift', -2, -1)]
    """
    if vflip and spatial_dims < 2:
        raise ValueError("vflip needs images (two spatial axes)")
    views: list[View] = [("id", 0, 0)]
    if hflip:
        views.append(("flip", -1, 0))
    if vflip:
        views.append(("flip", -2, 0))
    for s in shifts:
        for axis in (-1, -2)[:spatial_dims]:
            views += [("shift", axis, s), ("shift", axis, -s)]
    return views


def apply_view(x: Tensor, view: View, mode: ShiftMode = "padded") -> Tensor:
    """One view of the batch ``x`` (see ``view_plan``).

    >>> apply_view(torch.tensor([[[1.0, 2.0, 3.0]]]), ("shift", -1, 1))
    tensor([[[0., 1., 2.]]])
    """
    kind, axis, amount = view
    if kind == "id":
        return x
    if kind == "flip":
        return x.flip(axis)
    return shift(x, amount, dim=axis, mode=mode)


def tta_views(
    x: Tensor,
    *,
    hflip: bool = False,
    vflip: bool = False,
    shifts: tuple[int, ...] = (),
    shift_mode: ShiftMode = "padded",
) -> list[Tensor]:
    """The TTA views of a batch of signals ``[B, C, L]`` or images ``[B, C, H, W]``, input first.

    >>> [v.tolist() for v in tta_views(torch.tensor([[[1.0, 2.0]]]), hflip=True)]
    [[[[1.0, 2.0]]], [[[2.0, 1.0]]]]
    """
    plan = view_plan(x.ndim - 2, hflip=hflip, vflip=vflip, shifts=tuple(shifts))
    return [apply_view(x, v, shift_mode) for v in plan]


class TTAModel(nn.Module):
    """``model`` averaged over the views of ``view_plan``; checkpoints are ``model``'s own.

    ``task="classification"`` averages softmax probabilities and returns their log (usable as
    logits); ``"regression"`` averages outputs.

    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    >>> tta = TTAModel(net, [("id", 0, 0), ("flip", -1, 0)])
    >>> tta(torch.randn(2, 1, 6)).shape, list(tta.state_dict()) == list(net.state_dict())
    (torch.Size([2, 3]), True)
    """

    def __init__(
        self,
        model: nn.Module,
        views: list[View],
        task: Literal["classification", "regression"] = "classification",
        shift_mode: ShiftMode = "padded",
    ) -> None:
        super().__init__()
        self.model = model  # registered: parameters(), .to() and train()/eval() reach it
        self.views, self.task, self.shift_mode = list(views), task, shift_mode

    def forward(self, x: Tensor) -> Tensor:
        # One forward pass per view (not one pass on a k-times larger batch): memory stays that of
        # a plain evaluation batch.
        outs = [self.model(apply_view(x, v, self.shift_mode)) for v in self.views]  # k x [B, C]
        if self.task == "regression":
            return torch.stack(outs).mean(dim=0)
        logp = torch.stack([o.float().log_softmax(dim=-1) for o in outs])  # [k, B, C]
        # log(mean_k p_k) computed stably in log space.
        return torch.logsumexp(logp, dim=0) - math.log(len(outs))  # [B, C]

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """The inner model's state dict (same keys): checkpoints load into the bare model."""
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load a bare model's state dict into the inner model."""
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


@METHODS.register("tta", "Test-time augmentation: evaluate on the average over flips/shifts of each input.")
class TTA(Method):
    """Test-time augmentation as an evaluation option (see ``TTAModel``); signals or images."""

    name = "tta"
    wraps_final = True

    def __init__(
        self,
        *,
        # null: on for images, where a mirrored photo is still the same object; off for signals,
        # where reversing time usually changes what the signal is.
        hflip: Annotated[
            bool | None, Doc("mirror the last axis (width, or time); null: images yes, signals no")
        ] = None,
        vflip: Annotated[bool, Doc("mirror upside-down (images only)")] = False,
        shifts: Annotated[
            tuple[Annotated[int, Range(ge=1)], ...],
            Doc("for each s, views shifted by ±s steps/pixels (along both axes for images)"),
        ] = (),
        shift_mode: Annotated[
            ShiftMode, Doc("circular wraps around; padded fills with 0 (the mean)")
        ] = "padded",
        every_epoch: Annotated[
            bool, Doc("evaluate every epoch with TTA (false: only the final val/test evaluation)")
        ] = True,
    ) -> None:
        self.hflip, self.vflip, self.shifts = hflip, vflip, tuple(shifts)
        self.shift_mode, self.every_epoch = shift_mode, every_epoch
        # Only the hooks of the chosen timing run (the others would cost a call per epoch).
        self.skip_hooks = frozenset({"fit_end"} if every_epoch else {"eval_model", "epoch_end"})
        self._wrapper: TTAModel | None = None

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        names = [m.name for m in recipe.methods]
        after = names[names.index(cls.name) + 1 :]
        choosers = [n for n in after if METHODS.get(n).obj.eval_model is not Method.eval_model]
        if choosers:
            # eval_model hooks run in recipe order: a later one would replace the TTA wrapper.
            raise RecipeError(
                "methods",
                names,
                f"tta must come after the methods that choose the evaluated model ({', '.join(choosers)}), "
                "so that it wraps the weights they choose; move tta after them",
            )

    def setup(self, state: TrainState) -> None:
        no_views = "use it on signals or images: tabular features have no flips or shifts"
        shape = require_rank(state, self.name, (2, 3), fix=no_views)
        self.views = self._plan(shape[1:])
        self.task = state.data.task
        state.info[self.name] = {
            "views": [f"{k}{'' if k == 'id' else f'({a},{n})'}" for k, a, n in self.views],
            "every_epoch": self.every_epoch,
        }

    def _plan(self, spatial: tuple[int, ...]) -> list[View]:
        """The views for samples whose spatial axes are ``spatial`` ((L,) or (H, W)), checked."""
        hflip = self.hflip if self.hflip is not None else len(spatial) == 2
        if self.vflip and len(spatial) < 2:
            raise RecipeError("methods.tta.vflip", True, "signals have no vertical axis; set it to false")
        too_far = [s for s in self.shifts if s >= min(spatial)]
        if too_far:
            raise RecipeError(
                "methods.tta.shifts",
                list(self.shifts),
                f"shifts must be smaller than the input's size {spatial}",
            )
        views = view_plan(len(spatial), hflip=hflip, vflip=self.vflip, shifts=self.shifts)
        if len(views) == 1:
            raise RecipeError(
                "methods.tta",
                {"hflip": self.hflip, "vflip": self.vflip, "shifts": list(self.shifts)},
                "no view besides the input itself, so TTA would change nothing; enable hflip or vflip, "
                "or give shifts (e.g. [1, 2])",
            )
        return views

    def model_for(self, model: nn.Module, input_shape: tuple[int, ...], task: str) -> TTAModel:
        """The wrapper a run with this method evaluated ``model`` with, built outside the loop (a
        predictor loading the run): the views ``setup`` chose for samples of ``input_shape``.

        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
        >>> TTA(shifts=(1,)).model_for(net, (1, 8), "classification").views
        [('id', 0, 0), ('shift', -1, 1), ('shift', -1, -1)]
        """
        return TTAModel(model, self._plan(tuple(input_shape[1:])), task, self.shift_mode)  # type: ignore[arg-type]

    def wrap(self, model: nn.Module) -> TTAModel:
        """The wrapper around ``model``, made once per inner model and then reused."""
        if self._wrapper is None or self._wrapper.model is not model:
            self._wrapper = TTAModel(model, self.views, self.task, self.shift_mode)
        return self._wrapper

    def eval_model(self, state: TrainState, model: nn.Module) -> nn.Module:
        return self.wrap(model)

    def epoch_end(self, state: TrainState) -> None:
        # A method listed after tta that picks other weights (ema) replaces the wrapper: TTA would
        # silently not be measured, so refuse.
        if state.eval_net is not self._wrapper:
            raise RecipeError(
                "methods.tta",
                type(state.eval_net).__name__,
                "a method after tta replaced the evaluated model; list tta after it (e.g. after ema) "
                "in methods",
            )

    def fit_end(self, state: TrainState) -> None:
        # every_epoch false: only the final val/test evaluation (and final.pt, same keys) use TTA.
        state.eval_net = self.wrap(state.eval_net if state.eval_net is not None else state.model)
