"""Mixup and CutMix: train on blends of two samples against the same blend of their labels.

Both pair each sample ``i`` of a batch with a partner ``perm[i]`` (a random permutation of the
batch) and draw a weight ``λ_i ~ Beta(alpha, alpha)`` per sample:

* ``mixup`` (Zhang et al. 2018): ``x̃_i = λ_i·x_i + (1 − λ_i)·x_perm[i]``, any input shape;
* ``cutmix`` (Yun et al. 2019): a region of sample ``i`` is replaced by the same region of its
  partner, and ``λ_i`` becomes the share of sample ``i`` that is left:

  ===========================  ========================================================
  images ``[B, C, H, W]``      a box of area ``(1 − λ)·H·W`` centred at a uniform random
                               pixel, clipped at the border (the paper's rule)
  signals ``[B, C, L]``        a segment of length ``(1 − λ)·L`` centred at a uniform
                               random step, clipped at the ends
  tabular ``[B, F]``           a random subset of ``round((1 − λ)·F)`` features
  ===========================  ========================================================

  All channels of a sample are cut together. After clipping, ``λ_i`` is recomputed from the
  region actually cut, so the target matches the input exactly.

The targets become probabilities ``ỹ_i = λ_i·onehot(y_i) + (1 − λ_i)·onehot(y_perm[i])``, shape
``[B, C]``, each row summing to 1; ``F.cross_entropy`` (the training criterion) reads them
directly. Classification only: a regression target has no one-hot to mix.

**With label smoothing** (``label_smoothing`` in the same recipe), the two combine correctly and
the smoothing is applied exactly once: label smoothing sets the criterion to
``F.cross_entropy(label_smoothing=eps)``, which turns a probability target ``p`` into
``(1 − eps)·p + eps/C``, the same formula as for a class index. The loss is therefore
``cross_entropy(out, smooth_labels(ỹ, C, eps))``: mixing, then smoothing once, whatever the order
of the two methods in the recipe (``tests/methods/test_augment_mix.py`` checks it numerically).

**Mixup and CutMix together** are refused (a RecipeError before anything runs): applying both to
one batch would mix already-mixed targets, and no choice between them per batch is made silently.
Pick one of the two, or compare them in an ablation.

Random numbers come from torch's global generator (seeded by ``tunelab.fit`` from ``train.seed``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.methods.augment import require_rank
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["CutMix", "Mixup", "cutmix", "cutmix_mask", "mix_targets", "mixup"]


def _targets(y: Tensor, num_classes: int) -> Tensor:
    """Class indices [B] -> one-hot floats [B, C]; probabilities [B, C] pass through."""
    if y.is_floating_point():
        if y.ndim != 2 or y.shape[1] != num_classes:
            raise ValueError(f"probability targets need shape [B, {num_classes}], got {tuple(y.shape)}")
        return y
    return F.one_hot(y.long(), num_classes).float()  # [B] -> [B, C]


def mix_targets(y: Tensor, perm: Tensor, lam: Tensor, num_classes: int) -> Tensor:
    """``λ_i·t_i + (1 − λ_i)·t_perm[i]`` with ``t`` the one-hot (or probability) targets: [B, C].

    >>> mix_targets(torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([0.75, 1.0]), 3)
    tensor([[0.7500, 0.0000, 0.2500],
            [0.0000, 0.0000, 1.0000]])
    """
    t = _targets(y, num_classes)  # [B, C]
    return torch.lerp(t[perm], t, lam.to(t.dtype).view(-1, 1))  # λ·t + (1 − λ)·t[perm]


@functools.lru_cache(maxsize=16)
def _beta(alpha: float, device: torch.device) -> torch.distributions.Beta:
    # Built once per (alpha, device): constructing and validating a distribution costs more than
    # drawing a batch of weights from it.
    a = torch.tensor(float(alpha), device=device)
    return torch.distributions.Beta(a, a, validate_args=False)


def _pairs_and_weights(b: int, alpha: float, p: float, like: Tensor) -> tuple[Tensor, Tensor]:
    """A random partner for each sample ([B] long) and ``λ ~ Beta(alpha, alpha)`` ([B] float).

    With probability ``1 − p`` a sample keeps ``λ = 1`` (left unmixed).
    """
    perm = torch.randperm(b, device=like.device)
    lam = _beta(alpha, like.device).sample((b,))  # [B], one draw per sample
    if p < 1:
        lam = torch.where(torch.rand(b, device=like.device) < p, lam, torch.ones_like(lam))
    return perm, lam


def mixup(
    x: Tensor, y: Tensor, num_classes: int, alpha: float = 0.2, p: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Mixup of a batch: blended inputs (same shape as ``x``) and soft targets ``[B, num_classes]``.

    ``y`` holds class indices ``[B]`` (or probabilities ``[B, C]``); each sample is blended with a
    random partner by its own ``λ ~ Beta(alpha, alpha)``; with probability ``1 − p`` it is left as it
    is (``λ = 1``).

    >>> x, y = torch.randn(8, 1, 40), torch.randint(0, 10, (8,))
    >>> xm, ym = mixup(x, y, num_classes=10, alpha=0.4)
    >>> xm.shape, ym.shape, torch.allclose(ym.sum(1), torch.ones(8))
    (torch.Size([8, 1, 40]), torch.Size([8, 10]), True)
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    b = x.shape[0]
    perm, lam = _pairs_and_weights(b, alpha, p, x)
    lam_x = lam.to(x.dtype).view(b, *[1] * (x.ndim - 1))  # [B, 1, ...] broadcasts over a sample
    return torch.lerp(x[perm], x, lam_x), mix_targets(y, perm, lam, num_classes)


def _interval(n: int, frac: Tensor, like: Tensor) -> Tensor:
    """Per sample, a mask [B, n] of a run of ``frac·n`` positions centred at a uniform position, clipped."""
    b = frac.shape[0]
    centre = torch.rand(b, device=like.device) * n  # [B]
    half = frac * n / 2  # [B]
    lo = (centre - half).round().clamp(0, n).view(b, 1)
    hi = (centre + half).round().clamp(0, n).view(b, 1)
    pos = torch.arange(n, device=like.device).view(1, n)  # [1, n]
    return (pos >= lo) & (pos < hi)  # [B, n]


def cutmix_mask(
    shape: torch.Size | tuple[int, ...], lam: Tensor, device: torch.device | None = None
) -> Tensor:
    """The region taken from the partner, True where cut, broadcastable to a batch of ``shape``.

    ``lam`` ([B]) is each sample's share to keep: images ``[B, C, H, W]`` get a box of area
    ``(1 − λ)·H·W`` (side ratio ``√(1 − λ)``), signals ``[B, C, L]`` a segment of ``(1 − λ)·L``
    steps, both centred at a uniform random position and clipped; tabular ``[B, F]`` a random set
    of ``round((1 − λ)·F)`` features. Masks are ``[B, 1, H, W]``, ``[B, 1, L]`` or ``[B, F]``.

    >>> m = cutmix_mask((4, 3, 8, 8), torch.full((4,), 0.75))
    >>> m.shape, m.dtype
    (torch.Size([4, 1, 8, 8]), torch.bool)
    """
    b = shape[0]
    like = lam.to(device) if device is not None else lam
    cut = (1 - like).clamp(0, 1)  # [B] share to replace
    if len(shape) == 4:
        side = cut.sqrt()  # a box of area cut·H·W keeps the image's aspect ratio
        rows = _interval(shape[2], side, like)  # [B, H]
        cols = _interval(shape[3], side, like)  # [B, W]
        return rows[:, None, :, None] & cols[:, None, None, :]  # [B, 1, H, W]
    if len(shape) == 3:
        return _interval(shape[2], cut, like).view(b, 1, shape[2])
    if len(shape) == 2:
        f = shape[1]
        k = (cut * f).round().view(b, 1)  # [B, 1] features to take from the partner
        # The rank of a uniform key is a uniform random permutation of the features, per sample.
        rank = torch.rand(b, f, device=like.device).argsort(dim=1).argsort(dim=1)  # [B, F]
        return rank < k
    raise ValueError(f"cutmix needs [B, F], [B, C, L] or [B, C, H, W] inputs, got shape {tuple(shape)}")


def cutmix(
    x: Tensor, y: Tensor, num_classes: int, alpha: float = 1.0, p: float = 1.0
) -> tuple[Tensor, Tensor]:
    """CutMix of a batch: inputs with a region from a partner, and soft targets ``[B, num_classes]``.

    The region is a box (images), a segment (signals) or a feature subset (tabular), see
    ``cutmix_mask``; each target weights the two labels by the share of the sample each one owns.

    >>> x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 4, (6,))
    >>> xm, ym = cutmix(x, y, num_classes=4)
    >>> xm.shape, torch.allclose(ym.sum(1), torch.ones(6))
    (torch.Size([6, 3, 8, 8]), True)
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    b = x.shape[0]
    perm, lam = _pairs_and_weights(b, alpha, p, x)
    mask = cutmix_mask(x.shape, lam)  # [B, 1, ...] True where the partner shows
    # The share actually cut after clipping at the borders: the target follows the input exactly.
    kept = 1 - mask.flatten(1).float().mean(dim=1)  # [B]
    return torch.where(mask, x[perm], x), mix_targets(y, perm, kept, num_classes)


# --- adapters ------------------------------------------------------------------------------------


class _Mix(Method):
    """Shared checks and batch hook of mixup and cutmix (``self.fn`` does the mixing)."""

    alpha: float
    p: float
    other: str  # the method that may not share the recipe

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        path = f"methods.{cls.name}"
        if recipe.train.loss not in ("auto", "cross_entropy"):
            raise RecipeError(
                path,
                recipe.train.loss,
                f"{cls.name} makes soft class targets, for cross entropy only; not for train.loss "
                f"{recipe.train.loss!r}",
            )
        if recipe.method(cls.other) is not None:
            raise RecipeError(
                path,
                [m.name for m in recipe.methods],
                f"{cls.name} and {cls.other} cannot both be in a recipe: one batch would be mixed twice. "
                "Keep one of them (compare them with an ablation)",
            )

    def setup(self, state: TrainState) -> None:
        if state.data.task != "classification":
            raise RecipeError(
                f"methods.{self.name}",
                state.data.task,
                f"{self.name} mixes class labels, so it applies to classification only; remove it",
            )
        require_rank(state, self.name, (1, 2, 3), fix="flatten the samples to features (F,)")
        if state.data.meta.get("embeddings"):  # a blend of two category codes is no category
            raise RecipeError(
                f"methods.{self.name}",
                "preprocess.encoding: embedding",
                f"{self.name} blends inputs, and category codes for embeddings cannot be blended; use "
                "preprocess.encoding: onehot (whose columns blend), or remove the method",
            )
        self.num_classes = int(state.data.num_classes)
        state.info[self.name] = {"alpha": self.alpha, "p": self.p}

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if y.is_floating_point():  # a dtype check: no device sync
            raise RecipeError(
                f"methods.{self.name}",
                "soft targets",
                "this batch's targets were already mixed by another method (mixup or cutmix); use only one",
            )
        return self.fn(x, y, self.num_classes, self.alpha, self.p)

    @staticmethod
    def fn(x: Tensor, y: Tensor, num_classes: int, alpha: float, p: float) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


Probability = Annotated[float, Range(ge=0, le=1), Doc("share of samples mixed; the rest stay as they are")]


@METHODS.register("mixup", "Blend random pairs of samples and their labels (soft targets); classification.")
class Mixup(_Mix):
    """Mixup on every training batch (see ``mixup``)."""

    name = "mixup"
    other = "cutmix"

    def __init__(
        self,
        *,
        # 0.2: the paper's ImageNet setting; most λ fall near 0 or 1, so samples stay mostly
        # themselves. Larger alphas (up to 1, uniform λ) regularize more and suit smaller data.
        alpha: Annotated[float, Range(gt=0), Doc("λ ~ Beta(alpha, alpha): larger mixes more")] = 0.2,
        p: Probability = 1.0,
    ) -> None:
        self.alpha, self.p = alpha, p

    fn = staticmethod(mixup)


@METHODS.register(
    "cutmix", "Paste a box/segment/feature subset of a partner sample, labels mixed by area; classification."
)
class CutMix(_Mix):
    """CutMix on every training batch (see ``cutmix`` and ``cutmix_mask``)."""

    name = "cutmix"
    other = "mixup"

    def __init__(
        self,
        *,
        # 1.0: the paper's setting, a uniform share; its regions are large enough to matter.
        alpha: Annotated[float, Range(gt=0), Doc("cut share 1 − λ with λ ~ Beta(alpha, alpha)")] = 1.0,
        p: Probability = 1.0,
    ) -> None:
        self.alpha, self.p = alpha, p

    fn = staticmethod(cutmix)
