"""Label smoothing: train against ``(1 − eps)·onehot + eps/num_classes`` instead of one-hot targets.

``smooth_labels`` builds the smoothed targets (PyTorch's definition, the one
``F.cross_entropy(label_smoothing=eps)`` uses). The ``LabelSmoothing`` adapter does not touch
the batches: in setup it swaps the training criterion for ``F.cross_entropy`` with
``label_smoothing=eps``, which costs nothing per batch.

Soft targets (from mixup or cutmix, in the ``batch`` event) combine correctly: PyTorch applies the
same formula to a probability target, so mixed targets are smoothed exactly once, the same as
``cross_entropy(out, smooth_labels(mixed, C, eps))``. Validation loss stays the plain cross
entropy, so runs with and without smoothing remain comparable.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

import torch.nn.functional as F
from torch import Tensor

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["LabelSmoothing", "smooth_labels"]


def smooth_labels(y: Tensor, num_classes: int, eps: float) -> Tensor:
    """Smoothed target distribution ``(1 − eps)·p + eps/num_classes``.

    ``y`` holds class indices, shape (N,), or probabilities, shape (N, num_classes) (used as ``p``
    directly); the result has shape (N, num_classes) and a floating dtype.

    >>> import torch
    >>> smooth_labels(torch.tensor([0, 2]), num_classes=3, eps=0.3)
    tensor([[0.8000, 0.1000, 0.1000],
            [0.1000, 0.1000, 0.8000]])
    """
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    if y.is_floating_point():
        if y.shape[-1] != num_classes:
            raise ValueError(f"probability targets need {num_classes} columns, got shape {tuple(y.shape)}")
        p = y
    else:
        p = F.one_hot(y.long(), num_classes).float()  # (N,) -> (N, C)
    return p * (1 - eps) + eps / num_classes


@METHODS.register("label_smoothing", "Cross entropy against smoothed targets (1−eps)·onehot + eps/C.")
class LabelSmoothing(Method):
    """Label smoothing through ``F.cross_entropy(label_smoothing=eps)`` (see ``smooth_labels``)."""

    name = "label_smoothing"

    def __init__(
        self,
        *,
        # 0.1: the value of the Inception-v3 paper that introduced it, still the usual default.
        eps: Annotated[float, Range(ge=0, lt=1), Doc("probability mass spread over all classes")] = 0.1,
    ) -> None:
        self.eps = eps

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        if recipe.train.loss not in ("auto", "cross_entropy"):
            raise RecipeError(
                "methods.label_smoothing",
                recipe.train.loss,
                "label smoothing applies to classification (cross entropy) only, not to train.loss "
                f"{recipe.train.loss!r}",
            )

    def setup(self, state: TrainState) -> None:
        if state.data.task == "regression":
            raise RecipeError(
                "methods.label_smoothing",
                state.data.task,
                "label smoothing applies to classification only; remove it for regression data",
            )
        state.criterion = functools.partial(F.cross_entropy, label_smoothing=self.eps)
