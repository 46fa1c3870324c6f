"""The preprocessing fit on the train split: one object that training and prediction both apply.

``Preprocessing.fit`` learns the statistics from the train split only; ``transform`` applies them to
any split or to new raw inputs, ``transform_y`` / ``inverse_y`` map regression targets to the
model's scale and back. ``make_bundle`` calls exactly these functions when it builds the training
tensors, and ``tunelab.load_run`` calls them again on the inputs it is given, so a prediction sees
what training saw, bit for bit. The fitted object is saved as plain JSON (``preprocess.json`` in a
run directory; never a pickle, so loading a run runs no code)::

    {"format": 1,
     "x": [{"kind": "standardize", "scope": "per_channel", "mean": [...], "std": [...]}],
     "y": {"kind": "standardize", "scope": "per_target", "mean": [...], "std": [...]}}

``x`` is a list of steps applied in order (today at most one, standardization); ``y`` is the
regression targets' scaling, or null. New kinds of step are added to ``STEP_KINDS``; a file naming
a kind this version does not know is refused with a message naming it.

    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], dtype="float32")
    >>> pre = Preprocessing.fit(x)
    >>> pre.transform(x).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> Preprocessing.from_json(pre.to_json()) == pre
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from tunelab.errors import DataError

__all__ = ["CONSTANT_STD", "FORMAT", "STEP_KINDS", "Preprocessing", "Standardize", "StandardizeLayer"]

# A standard deviation below this is a constant column up to float rounding (the threshold
# scikit-learn's StandardScaler uses); dividing by it would blow rounding noise up to unit scale.
CONSTANT_STD = 10 * np.finfo(np.float64).eps
FORMAT = 1  # bumped when a saved preprocess.json changes meaning

Scope = Literal["per_feature", "per_channel", "per_target"]


@dataclass(frozen=True)
class Standardize:
    """``(x - mean) / std`` per feature (tabular ``[N, F]``), per channel (``[N, C, ...]``) or per
    regression target (``[N, T]``); ``mean`` and ``std`` are float64 tuples fit on train."""

    scope: Scope
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, a: np.ndarray, scope: Scope | None = None) -> Standardize:
        """Statistics of ``a`` (the train split): over the samples, and over the positions of a
        channel for ``[N, C, ...]`` inputs.

        >>> Standardize.fit(np.array([[0.0], [2.0]])).mean
        (1.0,)
        """
        scope = scope or ("per_feature" if a.ndim == 2 else "per_channel")
        axes = (0,) if a.ndim == 2 else (0, *range(2, a.ndim))
        mean = a.mean(axis=axes, dtype=np.float64)
        std = a.std(axis=axes, dtype=np.float64)
        # A constant feature or channel (e.g. the always-blank border pixels of digits) has std 0;
        # scaling it by 1 leaves it at 0 after centering instead of dividing by zero.
        std = np.where(std < CONSTANT_STD, 1.0, std)
        return cls(scope, tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def _shape(self, ndim: int) -> tuple[int, ...]:
        return (1, len(self.mean)) + (1,) * (ndim - 2)  # broadcast over samples and positions

    def check(self, a: np.ndarray, what: str) -> None:
        size = a.shape[1] if a.ndim >= 2 else 0
        if size != len(self.mean):
            unit = {"per_feature": "features", "per_channel": "channels", "per_target": "targets"}[self.scope]
            raise DataError(
                f"{what}: has {size} {unit} per sample (shape {list(a.shape)}) but the preprocessing was fit "
                f"on {len(self.mean)}; give inputs shaped like the training data"
            )

    def apply(self, a: np.ndarray) -> np.ndarray:
        """float64 arithmetic on ``a``, as fit (the caller casts)."""
        shape = self._shape(a.ndim)
        return (a - np.asarray(self.mean).reshape(shape)) / np.asarray(self.std).reshape(shape)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "standardize", "scope": self.scope, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Standardize:
        return cls(d["scope"], tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


# kind -> the step class that reads it back (the one place a new kind of step is added).
STEP_KINDS: dict[str, type[Standardize]] = {"standardize": Standardize}


class StandardizeLayer(nn.Module):
    """``Standardize`` as a torch layer, for exported models (ONNX, torch.export, TorchScript).

    The statistics are float32 buffers, so the arithmetic is float32 (the numpy path computes in
    float64 and rounds once): the two agree to about 1e-7 relative.

    >>> layer = StandardizeLayer(Standardize("per_feature", (1.0, 10.0), (2.0, 5.0)))
    >>> layer(torch.tensor([[3.0, 20.0]])).tolist()
    [[1.0, 2.0]]
    """

    def __init__(self, step: Standardize, ndim: int = 2) -> None:
        super().__init__()
        shape = step._shape(ndim)
        self.register_buffer("mean", torch.tensor(step.mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(step.std, dtype=torch.float32).reshape(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class Preprocessing:
    """Input steps (applied in order) and the regression targets' scaling, fit on train only.

    ``Preprocessing()`` is the identity (``data.standardize: false``).
    """

    x: tuple[Standardize, ...] = ()
    y: Standardize | None = None

    @classmethod
    def fit(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray | None = None,
        *,
        task: str = "classification",
        standardize: bool = True,
    ) -> Preprocessing:
        """Fit on the train split: inputs per feature or channel; regression targets per target.

        >>> x, y = np.array([[0.0], [4.0]]), np.array([[10.0], [30.0]])
        >>> pre = Preprocessing.fit(x, y, task="regression")
        >>> pre.transform(x).tolist(), pre.transform_y(y).tolist()
        ([[-1.0], [1.0]], [[-1.0], [1.0]])
        """
        if not standardize:
            return cls()
        y_step = None
        if task == "regression" and y_train is not None:
            y_step = Standardize.fit(np.asarray(y_train).reshape(len(y_train), -1), "per_target")
        return cls((Standardize.fit(np.asarray(x_train)),), y_step)

    def transform(self, x: np.ndarray, what: str = "x") -> np.ndarray:
        """The model's inputs (float32) for raw inputs ``x`` ``[N, *input_shape]``.

        ``what`` names the data in the error raised when ``x`` does not fit the fitted statistics.
        """
        out = np.asarray(x)
        for step in self.x:
            step.check(out, what)
            out = step.apply(out)
        return out.astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        """Regression targets ``[N, T]`` on the model's scale (float64; the identity if unscaled)."""
        return y if self.y is None else self.y.apply(y)

    def y_tensors(self) -> tuple[Tensor | None, Tensor | None]:
        """``(mean, std)`` of the targets as float32 tensors ``[T]``, or ``(None, None)``."""
        if self.y is None:
            return None, None
        return torch.tensor(self.y.mean, dtype=torch.float32), torch.tensor(self.y.std, dtype=torch.float32)

    def inverse_y(self, t: Tensor) -> Tensor:
        """Model outputs ``[N, T]`` back in the targets' units, as the run's evaluation computes them
        (``DataBundle.unscale_y``: float32 ``t * std + mean``).

        >>> pre = Preprocessing(y=Standardize("per_target", (10.0,), (2.0,)))
        >>> pre.inverse_y(torch.tensor([[1.0]])).item()
        12.0
        """
        mean, std = self.y_tensors()
        if mean is None or std is None:
            return t
        return t * std.to(t.device, t.dtype) + mean.to(t.device, t.dtype)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "x": [s.to_json() for s in self.x],
            "y": None if self.y is None else self.y.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "preprocess.json") -> Preprocessing:
        """Read what ``to_json`` wrote; a newer format or an unknown kind of step is refused."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(
                f"{source}: preprocessing format {d.get('format') if isinstance(d, dict) else d!r} is not "
                f"{FORMAT}, the one this tunelab reads; use the tunelab version that trained the run"
            )
        steps = []
        for s in d.get("x") or []:
            kind = s.get("kind")
            if kind not in STEP_KINDS:
                raise DataError(
                    f"{source}: unknown preprocessing step {kind!r} (known: {', '.join(STEP_KINDS)}); "
                    "use the tunelab version that trained the run"
                )
            steps.append(STEP_KINDS[kind].from_json(s))
        y = d.get("y")
        return cls(tuple(steps), None if y is None else Standardize.from_json(y))

    def layers(self, ndim: int) -> nn.Module:
        """The input steps as one torch module (for inputs of ``ndim`` dimensions with the batch)."""
        return nn.Sequential(*(StandardizeLayer(s, ndim) for s in self.x))
