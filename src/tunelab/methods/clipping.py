"""Gradient clipping: bound the gradient before the optimizer step.

``clip_gradients`` wraps ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` and always
returns the total gradient norm *before* clipping, the figure to watch when choosing a threshold
(a threshold a little above the typical norm clips only the spikes). ``GradClip`` calls it in the
``after_backward`` event and reports per epoch, in the epoch's record under ``grad_clip``, the
mean and largest pre-clip norm and (norm mode) the fraction of steps that were clipped.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from torch import Tensor
from torch.nn.utils import clip_grad_norm_, clip_grad_value_

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["GradClip", "clip_gradients"]

try:
    from torch.nn.utils import get_total_norm
except ImportError:  # torch < 2.6 (the package accepts torch >= 2.4): the same computation

    def get_total_norm(tensors: list[Tensor], norm_type: float = 2.0) -> Tensor:  # type: ignore[misc]
        norms = [torch.linalg.vector_norm(t, norm_type) for t in tensors]
        return torch.linalg.vector_norm(torch.stack(norms), norm_type) if norms else torch.tensor(0.0)


def clip_gradients(
    params: Iterable[Tensor],
    *,
    max_norm: float | None = None,
    max_value: float | None = None,
    norm_type: float = 2.0,
) -> Tensor:
    """Clip the ``.grad`` of ``params`` in place; return their total norm before clipping.

    Give exactly one of ``max_norm`` (rescale all gradients together so that their total
    ``norm_type``-norm is at most ``max_norm``; the direction is kept) or ``max_value`` (clamp
    every entry to ``[-max_value, max_value]``; the direction may change). Parameters without a
    gradient are skipped. The norm is a 0-dim tensor: reading it (``float``) is left to the caller,
    so a training loop need not synchronize with the device on every batch.

    >>> import torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> w.grad = torch.tensor([3.0, 4.0])
    >>> float(clip_gradients([w], max_norm=1.0)), [round(g, 4) for g in w.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    if (max_norm is None) == (max_value is None):
        raise ValueError("give exactly one of max_norm and max_value")
    params = list(params)  # a generator would be exhausted by the first of two passes
    if max_norm is not None:
        return clip_grad_norm_(params, max_norm, norm_type)
    norm = get_total_norm([p.grad for p in params if p.grad is not None], norm_type)
    clip_grad_value_(params, max_value)
    return norm


@METHODS.register("grad_clip", "Clip gradients by total norm (or by value) before each optimizer step.")
class GradClip(Method):
    """Gradient clipping in the ``after_backward`` event (see ``clip_gradients``).

    ``last_norm`` holds the last pre-clip norm as a tensor (no per-batch sync); per-epoch figures
    are read once per epoch into the epoch's record (``state.history[-1]["grad_clip"]``).
    """

    name = "grad_clip"

    def __init__(
        self,
        *,
        mode: Annotated[
            Literal["norm", "value"], Doc("norm: rescale to a total norm; value: clamp each entry")
        ] = "norm",
        # 1.0 is the common default (e.g. Hugging Face's max_grad_norm); with mean losses the
        # norm of a healthy step is usually below it, so it mostly clips spikes.
        max_norm: Annotated[float, Range(gt=0), Doc("largest total gradient norm (mode: norm)")] = 1.0,
        # Clamping entries changes the gradient's direction, so keep it loose; 1.0 bounds spikes.
        max_value: Annotated[float, Range(gt=0), Doc("largest |gradient entry| (mode: value)")] = 1.0,
        norm_type: Annotated[float, Range(gt=0), Doc("p of the p-norm; inf for the max norm")] = 2.0,
    ) -> None:
        self.mode, self.max_norm, self.max_value, self.norm_type = mode, max_norm, max_value, norm_type
        self.last_norm: Tensor | None = None

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        """A threshold of the mode not chosen would be silently ignored: refuse it.

        Its default value passes, because a resolved recipe (``Recipe.to_dict``) writes every
        default and must load again.
        """
        defaults = {n: p.default for n, p in inspect.signature(cls).parameters.items()}
        mode = spec.params.get("mode", defaults["mode"])
        unused = "max_value" if mode == "norm" else "max_norm"
        if spec.params.get(unused, defaults[unused]) != defaults[unused]:
            raise RecipeError(
                f"methods.grad_clip.{unused}",
                spec.params[unused],
                f"is not used with mode {mode!r}",
                f"set mode: {'value' if mode == 'norm' else 'norm'} or drop {unused}",
            )

    def setup(self, state: TrainState) -> None:
        # Every parameter, not only the trainable ones: a layer unfrozen later (gradual
        # unfreezing) must be clipped too, and parameters without a gradient are skipped anyway.
        self.params = list(state.model.parameters())
        self.kwargs = {"max_norm": self.max_norm} if self.mode == "norm" else {"max_value": self.max_value}
        # Pre-clip norms of this epoch stay on the device and are read once, at epoch_end.
        self._norms = torch.zeros(max(1, state.steps_per_epoch), device=state.device)
        self._count = 0

    def after_backward(self, state: TrainState) -> None:
        norm = clip_gradients(self.params, norm_type=self.norm_type, **self.kwargs)
        self.last_norm = norm
        self._norms[self._count % len(self._norms)] = norm
        self._count += 1

    def state_dict(self) -> dict[str, Any]:
        # This epoch's norms so far: a run resumed mid-epoch reports the whole epoch's figures.
        return {"norms": self._norms.detach().cpu(), "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._norms.copy_(state["norms"])
        self._count = state["count"]

    def epoch_end(self, state: TrainState) -> None:
        n = min(self._count, len(self._norms))
        last = (self._count - 1) % len(self._norms)
        self._count = 0
        if n == 0:
            return
        norms = self._norms[:n]
        mean, top, clipped, last_norm = torch.stack(
            [norms.mean(), norms.max(), (norms > self.max_norm).float().mean(), self._norms[last]]
        ).tolist()  # the one sync of the epoch
        state.info["grad_clip"] = {
            "mode": self.mode,
            "threshold": self.max_norm if self.mode == "norm" else self.max_value,
            "last_norm": last_norm,
        }
        if state.history:  # per-epoch figures go in the epoch's record (metrics.jsonl, TensorBoard)
            state.history[-1]["grad_clip"] = {
                "norm_mean": mean,
                "norm_max": top,
                # In value mode entries are clamped, not the norm: the fraction is not defined.
                **({"clipped_fraction": clipped} if self.mode == "norm" else {}),
            }
