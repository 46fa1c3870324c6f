"""Data augmentation of training batches on the device: images, 1-D signals and tabular features.

Three methods hook the ``batch`` event, which the loop fires only while training: validation, the
best-epoch choice and the final val/test figures always see the clean data.

=================  ==============  ==========================================================
method             input           transforms (each drawn independently for every sample)
=================  ==============  ==========================================================
``image_augment``  [B, C, H, W]    crop with padding, flips, rotation, zoom, brightness,
                                   contrast, random erasing (``kornia.augmentation``)
``signal_augment`` [B, C, L]       time stretch, shift (circular or zero-padded), amplitude
                                   scaling, gaussian noise (written here: kornia has no 1-D
                                   transforms)
``feature_noise``  [B, F]          gaussian noise added to every feature
=================  ==============  ==========================================================

Every transform works on the whole batch at once, with one random parameter per sample drawn as a
tensor (no Python loop over samples). The random numbers come from torch's global generator, which
``tunelab.fit`` seeds from ``train.seed``, so a run is repeatable; on CUDA they come from the CUDA
generator, seeded by the same call.

The pure functions (``augment_images``, ``augment_signals``, ``add_feature_noise``) can be called
from any loop; with every strength at 0 they return the input unchanged. The adapters refuse a
recipe where every strength is 0 (a method that does nothing must not look as if it ran) and data
of the wrong rank (``image_augment`` on tabular data).

Inputs are standardized by default (``preprocess.scaling: standard``), so the zero used for padding and
erasing is the channel mean, and ``noise`` / ``std`` are in units of the data's standard deviation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = [
    "FeatureNoise",
    "ImageAugment",
    "SignalAugment",
    "add_feature_noise",
    "augment_images",
    "augment_signals",
    "image_augmentation",
    "require_rank",
    "shift",
]

ShiftMode = Literal["circular", "padded"]
# Rank of one sample (without the batch axis) -> what the data is, for error messages.
KINDS = {1: "tabular features (F,)", 2: "signals (C, L)", 3: "images (C, H, W)"}


def require_rank(
    state: TrainState,
    method: str,
    ranks: tuple[int, ...],
    fix: str = "use the augmentation of this data's kind (image_augment, signal_augment, feature_noise)",
) -> tuple[int, ...]:
    """The per-sample input shape, or a RecipeError when its rank is not one of ``ranks``.

    ``ranks`` counts the axes of one sample: 1 tabular ``(F,)``, 2 signals ``(C, L)``, 3 images
    ``(C, H, W)``; ``fix`` ends the error message (what to do instead).
    """
    shape = tuple(state.data.input_shape)
    if len(shape) not in ranks:
        wanted = " or ".join(KINDS.get(r, f"rank {r}") for r in ranks)
        got = KINDS.get(len(shape), f"samples of shape {shape}")
        raise RecipeError(
            f"methods.{method}",
            list(shape),
            f"{method} needs {wanted}, but this data has {got} of shape {shape}; remove it or {fix}",
        )
    return shape


def _check_range(value: tuple[float, float] | None, path: str, low: float = 0.0) -> None:
    """A (min, max) pair must be ordered and above ``low``; raise RecipeError naming ``path``."""
    if value is None:
        return
    lo, hi = value
    if not low < lo <= hi:
        raise RecipeError(path, list(value), f"must be [min, max] with {low} < min <= max")


# --- shifting (shared with test-time augmentation) ---------------------------------------------


def shift(x: Tensor, steps: Tensor | int, dim: int = -1, mode: ShiftMode = "padded") -> Tensor:
    """Shift ``x`` by ``steps`` along ``dim``: ``out[..., t] = x[..., t − steps]``.

    ``steps`` is an int (the same for the whole batch) or an integer tensor of shape ``[B]`` (one
    shift per sample). ``circular`` wraps what leaves one end around to the other; ``padded`` fills
    the vacated positions with 0 (the mean of standardized data).

    >>> x = torch.arange(1.0, 6.0).view(1, 1, 5)
    >>> shift(x, 2), shift(x, -1, mode="circular")
    (tensor([[[0., 0., 1., 2., 3.]]]), tensor([[[2., 3., 4., 5., 1.]]]))
    """
    dim = dim % x.ndim
    n = x.shape[dim]
    # One gather with per-sample source indices: a shift of each sample by its own amount is a
    # single vectorized op, whatever the batch size.
    view = [1] * x.ndim
    view[dim] = n
    pos = torch.arange(n, device=x.device).view(view)  # [1, .., L, .., 1]
    if isinstance(steps, Tensor):
        steps = steps.to(x.device).view(-1, *[1] * (x.ndim - 1))  # [B] -> [B, 1, ...]
    src = pos - steps  # [B or 1, .., L, .., 1]: where each output position reads from
    if mode == "circular":
        return x.gather(dim, (src % n).expand_as(x))
    if mode != "padded":
        raise ValueError(f"mode must be 'circular' or 'padded', got {mode!r}")
    inside = (src >= 0) & (src < n)
    out = x.gather(dim, src.clamp(0, n - 1).expand_as(x))
    return out * inside  # zero where the source fell outside the signal


# --- images (kornia) -----------------------------------------------------------------------------


def image_augmentation(
    size: tuple[int, int],
    *,
    crop_padding: int = 0,
    hflip: bool = False,
    vflip: bool = False,
    rotation: float = 0.0,
    scale: tuple[float, float] | None = None,
    brightness: float = 0.0,
    contrast: float = 0.0,
    erasing: float = 0.0,
) -> nn.Sequential:
    """A kornia pipeline for image batches ``[B, C, H, W]`` of spatial ``size`` (H, W).

    Build it once and call it on every batch; each sample draws its own parameters. The steps, in
    order (each left out when its strength is 0 / None / False):

    * ``crop_padding``: pad every side by this many pixels (with 0) and crop ``size`` back at a
      random integer offset, the CIFAR recipe's random translation;
    * ``hflip`` / ``vflip``: mirror half of the samples left-right / upside-down;
    * ``rotation`` (degrees) and ``scale`` (zoom factor range, e.g. ``(0.9, 1.1)``): one affine
      warp, angle uniform in ``[-rotation, rotation]``, zoom uniform in ``scale``;
    * ``brightness``: add a uniform offset in ``[-brightness, brightness]``; ``contrast``:
      multiply by a uniform factor in ``[1 - contrast, 1 + contrast]`` (neither clips the values,
      which are standardized, not in [0, 1]);
    * ``erasing``: with this probability, fill a random rectangle (2-33% of the area) with 0.

    >>> aug = image_augmentation((8, 8), crop_padding=1, hflip=True)
    >>> aug(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 1, 8, 8])
    """
    h, w = size
    steps: list[nn.Module] = []
    if crop_padding:
        # "resample" warps the whole batch with one grid_sample (exact at integer offsets); kornia's
        # default "slice" mode slices each sample in a Python loop.
        steps.append(K.RandomCrop((h, w), padding=crop_padding, p=1.0, cropping_mode="resample"))
    if hflip:
        steps.append(K.RandomHorizontalFlip(p=0.5))
    if vflip:
        steps.append(K.RandomVerticalFlip(p=0.5))
    if rotation or scale is not None:
        # Rotation and zoom share one warp: one interpolation of the pixels instead of two.
        steps.append(K.RandomAffine(degrees=rotation, scale=scale, p=1.0))
    if brightness:
        # kornia's brightness factor f adds f − 1, so (1 − b, 1 + b) is an offset in [−b, b].
        steps.append(K.RandomBrightness((1 - brightness, 1 + brightness), clip_output=False, p=1.0))
    if contrast:
        steps.append(K.RandomContrast((1 - contrast, 1 + contrast), clip_output=False, p=1.0))
    if erasing:
        steps.append(K.RandomErasing(p=erasing, value=0.0))
    return nn.Sequential(*steps)


def augment_images(x: Tensor, **strengths: Any) -> Tensor:
    """Augment an image batch ``[B, C, H, W]`` once (see ``image_augmentation`` for the strengths).

    Convenient for a single call; in a loop, build ``image_augmentation`` once instead.

    >>> torch.equal(augment_images(torch.ones(2, 3, 4, 4)), torch.ones(2, 3, 4, 4))  # nothing on
    True
    >>> augment_images(torch.ones(2, 3, 4, 4), crop_padding=1, rotation=10).shape
    torch.Size([2, 3, 4, 4])
    """
    if x.ndim != 4:
        raise ValueError(f"augment_images needs a batch [B, C, H, W], got shape {tuple(x.shape)}")
    return image_augmentation((x.shape[-2], x.shape[-1]), **strengths)(x)


# --- 1-D signals (written here: kornia's transforms are 2-D and 3-D only) -------------------------


def _uniform(n: int, low: float, high: float, like: Tensor) -> Tensor:
    """``n`` samples uniform in ``[low, high)`` on ``like``'s device, shape [n]."""
    return torch.empty(n, device=like.device, dtype=like.dtype).uniform_(low, high)


def stretch(x: Tensor, factor: Tensor) -> Tensor:
    """Stretch each signal of ``x`` ``[B, C, L]`` in time about its centre by ``factor[b]``.

    ``out(t) = x(c + (t − c) / factor)`` with ``c`` the centre, linearly interpolated: a factor
    above 1 slows the signal down (its ends leave the window), below 1 speeds it up (zeros fill
    the ends, blended linearly over the step next to the signal). The length stays ``L``.

    >>> stretch(torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0]]]), torch.tensor([2.0]))
    tensor([[[1.0000, 1.5000, 2.0000, 2.5000, 3.0000]]])
    """
    b, _, n = x.shape
    # grid_sample resamples every sample on its own grid in one call: a [B, C, 1, L] image read
    # along x at positions t/factor (normalized coordinates, -1..1 = first..last step).
    t = torch.linspace(-1.0, 1.0, n, device=x.device, dtype=x.dtype)  # [L]
    gx = t.view(1, n) / factor.to(x.dtype).view(b, 1)  # [B, L]
    grid = torch.stack((gx, torch.zeros_like(gx)), dim=-1).view(b, 1, n, 2)  # [B, 1, L, (x, y)]
    out = F.grid_sample(x.unsqueeze(2), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.squeeze(2)  # [B, C, 1, L] -> [B, C, L]


def augment_signals(
    x: Tensor,
    *,
    shift_max: int = 0,
    shift_mode: ShiftMode = "circular",
    scale: tuple[float, float] | None = None,
    noise: float = 0.0,
    time_stretch: tuple[float, float] | None = None,
) -> Tensor:
    """Augment a batch of 1-D signals ``[B, C, L]``; every sample draws its own parameters.

    In order (each skipped when off): ``time_stretch`` by a factor uniform in the range (see
    ``stretch``); ``shift`` by an integer uniform in ``[-shift_max, shift_max]`` steps, ``circular``
    or zero-``padded`` (see ``shift``); amplitude ``scale`` by a factor uniform in the range;
    additive gaussian ``noise`` of this standard deviation. All channels of a sample move together.

    >>> x = torch.randn(8, 1, 40)
    >>> augment_signals(x, shift_max=3, noise=0.1).shape
    torch.Size([8, 1, 40])
    >>> torch.equal(augment_signals(x), x)  # every strength off: the identity
    True
    """
    if x.ndim != 3:
        raise ValueError(f"augment_signals needs a batch [B, C, L], got shape {tuple(x.shape)}")
    b = x.shape[0]
    if time_stretch is not None:
        x = stretch(x, _uniform(b, time_stretch[0], time_stretch[1], x))
    if shift_max:
        steps = torch.randint(-shift_max, shift_max + 1, (b,), device=x.device)  # [B]
        x = shift(x, steps, dim=-1, mode=shift_mode)
    if scale is not None:
        x = x * _uniform(b, scale[0], scale[1], x).view(b, 1, 1)
    if noise:
        x = x + noise * torch.randn_like(x)
    return x


# --- tabular -------------------------------------------------------------------------------------


def add_feature_noise(x: Tensor, std: float) -> Tensor:
    """``x + std · N(0, 1)``, an independent draw for every sample and feature of ``x`` ``[B, F]``.

    Written here because it is one line: kornia's gaussian noise is for images.

    >>> add_feature_noise(torch.zeros(2, 3), 0.5).shape
    torch.Size([2, 3])
    >>> torch.equal(add_feature_noise(torch.ones(2, 3), 0.0), torch.ones(2, 3))
    True
    """
    if not std:
        return x
    return x + std * torch.randn_like(x)


# --- adapters ------------------------------------------------------------------------------------


class _Augment(Method):
    """Shared checks: a RecipeError when every strength is off (``active`` is False)."""

    @property
    def active(self) -> bool:
        raise NotImplementedError

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        method = cls(**spec.params)
        if not method.active:
            raise RecipeError(
                f"methods.{cls.name}",
                spec.params,
                "every strength is 0 or off, so the method would do nothing; set at least one, or "
                "remove the method",
            )


@METHODS.register(
    "image_augment", "Random crop/flip/rotate/zoom/brightness/contrast/erasing of image batches (kornia)."
)
class ImageAugment(_Augment):
    """Image augmentation of every training batch (see ``image_augmentation``).

    Needs image data ``(C, H, W)``; each strength at 0 / null / false turns its transform off.
    """

    name = "image_augment"

    def __init__(
        self,
        *,
        # 2 px moves a 32x32 image by up to 6% and an 8x8 digit by 25%: a shift any object survives
        # (the CIFAR recipe pads 4 on 32x32); the other transforms are off because they change
        # meaning for some data (a mirrored digit, a rotated 6).
        crop_padding: Annotated[
            int, Range(ge=0), Doc("pad by this many pixels, then crop back at a random offset")
        ] = 2,
        hflip: Annotated[bool, Doc("mirror half of the images left-right")] = False,
        vflip: Annotated[bool, Doc("mirror half of the images upside-down")] = False,
        rotation: Annotated[float, Range(ge=0, le=180), Doc("rotate by up to this many degrees")] = 0.0,
        scale: Annotated[
            tuple[Annotated[float, Range(gt=0)], Annotated[float, Range(gt=0)]] | None,
            Doc("zoom by a factor from min to max, e.g. [0.9, 1.1]"),
        ] = None,
        brightness: Annotated[float, Range(ge=0), Doc("add an offset in [-b, b] (standardized units)")] = 0.0,
        contrast: Annotated[float, Range(ge=0, lt=1), Doc("multiply by a factor in [1 - c, 1 + c]")] = 0.0,
        erasing: Annotated[
            float, Range(ge=0, le=1), Doc("probability of erasing a random rectangle (cutout)")
        ] = 0.0,
    ) -> None:
        self.strengths: dict[str, Any] = dict(
            crop_padding=crop_padding,
            hflip=hflip,
            vflip=vflip,
            rotation=rotation,
            scale=tuple(scale) if scale is not None else None,
            brightness=brightness,
            contrast=contrast,
            erasing=erasing,
        )
        self.pipeline: nn.Module | None = None

    @property
    def active(self) -> bool:
        return any(v not in (0, False, None) for v in self.strengths.values())

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        _check_range(spec.params.get("scale"), "methods.image_augment.scale")
        super().validate_recipe(recipe, spec)

    def setup(self, state: TrainState) -> None:
        _, h, w = require_rank(state, self.name, (3,))
        pad = self.strengths["crop_padding"]
        if pad >= min(h, w):
            raise RecipeError(
                "methods.image_augment.crop_padding",
                pad,
                f"must be smaller than the images' side ({h}x{w}), or the crop could hold no image",
            )
        self.pipeline = image_augmentation((h, w), **self.strengths).to(state.device)
        state.info[self.name] = {k: v for k, v in self.strengths.items() if v not in (0, False, None)}

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.pipeline(x), y  # type: ignore[misc]


@METHODS.register(
    "signal_augment", "Random shift, amplitude scaling, gaussian noise and time stretch of 1-D signals."
)
class SignalAugment(_Augment):
    """1-D signal augmentation of every training batch (see ``augment_signals``).

    Needs signal data ``(C, L)``, e.g. MNIST-1D; each strength at 0 / null turns its transform off.
    """

    name = "signal_augment"

    def __init__(
        self,
        *,
        # 8 of MNIST-1D's 40 steps: its digits are generated with circular shifts, and on its val
        # split 8 and 12 scored alike, above 20 (benchmarks/augmentation.py has the figures).
        shift: Annotated[int, Range(ge=0), Doc("shift by up to this many steps either way")] = 8,
        shift_mode: Annotated[
            ShiftMode, Doc("circular wraps the signal around; padded fills with 0 (the mean)")
        ] = "circular",
        scale: Annotated[
            tuple[Annotated[float, Range(gt=0)], Annotated[float, Range(gt=0)]] | None,
            Doc("multiply the amplitude by a factor from min to max, e.g. [0.8, 1.2]"),
        ] = None,
        noise: Annotated[float, Range(ge=0), Doc("std of added gaussian noise (standardized units)")] = 0.0,
        time_stretch: Annotated[
            tuple[Annotated[float, Range(gt=0)], Annotated[float, Range(gt=0)]] | None,
            Doc("stretch time about the centre by a factor from min to max, e.g. [0.9, 1.1]"),
        ] = None,
    ) -> None:
        self.strengths: dict[str, Any] = dict(
            shift_max=shift,
            shift_mode=shift_mode,
            scale=tuple(scale) if scale is not None else None,
            noise=noise,
            time_stretch=tuple(time_stretch) if time_stretch is not None else None,
        )

    @property
    def active(self) -> bool:
        return any(v not in (0, None) for k, v in self.strengths.items() if k != "shift_mode")

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        _check_range(spec.params.get("scale"), "methods.signal_augment.scale")
        _check_range(spec.params.get("time_stretch"), "methods.signal_augment.time_stretch")
        super().validate_recipe(recipe, spec)

    def setup(self, state: TrainState) -> None:
        _, length = require_rank(state, self.name, (2,))
        if self.strengths["shift_max"] >= length:
            raise RecipeError(
                "methods.signal_augment.shift",
                self.strengths["shift_max"],
                f"must be smaller than the signals' length {length}",
            )
        info = {k: v for k, v in self.strengths.items() if v not in (0, None)}
        if not self.strengths["shift_max"]:
            info.pop("shift_mode")  # the mode of a shift that is off says nothing
        state.info[self.name] = info

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return augment_signals(x, **self.strengths), y


@METHODS.register("feature_noise", "Gaussian noise added to every feature of tabular training batches.")
class FeatureNoise(_Augment):
    """Gaussian feature noise on every training batch (see ``add_feature_noise``); tabular data ``(F,)``."""

    name = "feature_noise"

    def __init__(
        self,
        *,
        # 0.1 standard deviations: enough to blur the decision boundary a little (a mild
        # regularizer, like a small L2 penalty) without swamping the signal.
        std: Annotated[float, Range(ge=0), Doc("noise std, in units of each feature's std")] = 0.1,
    ) -> None:
        self.std = std

    @property
    def active(self) -> bool:
        return self.std > 0

    def setup(self, state: TrainState) -> None:
        require_rank(state, self.name, (1,))
        # With preprocess.encoding: embedding, the columns after the numbers are category codes
        # (looked up by the model): noise there would change the category, so only numbers get it.
        embeddings = state.data.meta.get("embeddings")
        self.numeric = int(embeddings["numeric"]) if embeddings else None
        state.info[self.name] = {"std": self.std}
        if self.numeric is not None:
            state.info[self.name]["columns"] = f"the {self.numeric} numeric columns (not the category codes)"

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.numeric is None:
            return add_feature_noise(x, self.std), y
        n = self.numeric
        return torch.cat([add_feature_noise(x[:, :n], self.std), x[:, n:]], dim=1), y
