"""The preprocessing fit on the train split: one object that training and prediction both apply.

What is fit follows the recipe's ``preprocess:`` section (``tunelab.spec.PreprocessSpec``): a
table (a CSV's columns, or a 2-D array) gets the table step of ``tunelab.data.table`` (column
types, imputation, outlier clipping, scaling, encoding, fit with scikit-learn's transformers);
signals and images ``[N, C, ...]`` are standardized or min-max scaled per channel.

``Preprocessing.fit`` learns the statistics from the train split only; ``transform`` applies them to
any split or to new raw inputs, ``transform_y`` / ``inverse_y`` map regression targets to the
model's scale and back. ``make_bundle`` calls exactly these functions when it builds the training
tensors, and ``tunelab.load_run`` calls them again on the inputs it is given, so a prediction sees
what training saw, bit for bit. The fitted object is saved as plain JSON (``preprocess.json`` in a
run directory; never a pickle, so loading a run runs no code)::

    {"format": 1,
     "x": [{"kind": "standardize", "scope": "per_channel", "mean": [...], "std": [...]}],
     "y": {"kind": "standardize", "scope": "per_target", "mean": [...], "std": [...]}}

``x`` is a list of steps applied in order (one of: ``standardize`` or ``minmax`` per channel,
``table``; for text documents ``text``, the tokenizer, whose ``tokenizer.json`` sits beside the
file, then optionally ``features`` of a frozen encoder and their scaling); ``y`` is the
regression targets' scaling, or null; ``notes`` says what the fit did
(imputed, encoded and dropped columns), as the run's info shows it. New kinds of step are added
to ``STEP_KINDS``; a file naming
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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from tunelab.data.features import FeatureStep
from tunelab.data.table import TableStep
from tunelab.data.tokenize import TextStep, is_documents
from tunelab.errors import DataError
from tunelab.spec import PreprocessSpec

__all__ = [
    "CONSTANT_STD",
    "FORMAT",
    "STEP_KINDS",
    "MinMax",
    "Preprocessing",
    "Standardize",
    "StandardizeLayer",
]

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
        mean, std = _moments(a)
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

    def apply(self, a: np.ndarray, what: str = "x") -> np.ndarray:
        """float64 arithmetic on ``a``, as fit (the caller casts)."""
        shape = self._shape(a.ndim)
        return (a - np.asarray(self.mean).reshape(shape)) / np.asarray(self.std).reshape(shape)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "standardize", "scope": self.scope, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Standardize:
        return cls(d["scope"], tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


@dataclass(frozen=True)
class MinMax:
    """``x * scale + min`` per channel of ``[N, C, ...]`` (or per feature of ``[N, F]``): the
    train minimum goes to ``low`` and the maximum to ``high``, as scikit-learn's ``MinMaxScaler``
    computes it over the samples and positions of each channel."""

    scope: Scope
    scale: tuple[float, ...]
    min: tuple[float, ...]

    @classmethod
    def fit(cls, a: np.ndarray, feature_range: tuple[float, float] = (0.0, 1.0)) -> MinMax:
        """
        >>> m = MinMax.fit(np.array([[[0.0, 2.0]], [[4.0, 1.0]]]), (0.0, 1.0))
        >>> m.apply(np.array([[[0.0, 4.0]]])).tolist()
        [[[0.0, 1.0]]]
        """
        scope: Scope = "per_feature" if a.ndim == 2 else "per_channel"
        axes = (0,) if a.ndim == 2 else (0, *range(2, a.ndim))
        lo, hi = a.min(axis=axes).astype(np.float64), a.max(axis=axes).astype(np.float64)
        span = hi - lo
        # A constant channel has no range: scale 1, as MinMaxScaler's _handle_zeros_in_scale does.
        span = np.where(span < CONSTANT_STD, 1.0, span)
        scale = (feature_range[1] - feature_range[0]) / span
        minimum = feature_range[0] - lo * scale
        return cls(scope, tuple(float(v) for v in scale), tuple(float(v) for v in minimum))

    def _shape(self, ndim: int) -> tuple[int, ...]:
        return (1, len(self.scale)) + (1,) * (ndim - 2)

    def check(self, a: np.ndarray, what: str) -> None:
        Standardize(self.scope, self.min, self.scale).check(a, what)

    def apply(self, a: np.ndarray, what: str = "x") -> np.ndarray:
        shape = self._shape(a.ndim)
        return a * np.asarray(self.scale).reshape(shape) + np.asarray(self.min).reshape(shape)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "minmax", "scope": self.scope, "scale": list(self.scale), "min": list(self.min)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MinMax:
        return cls(d["scope"], tuple(float(v) for v in d["scale"]), tuple(float(v) for v in d["min"]))


# Elements of a chunk of rows that the fit and the transform of signals and images turn into float64 at
# once: 8 MiB of float64 (a chunk's arithmetic holds two such temporaries). An array that fits in one
# chunk (every built-in dataset) is computed exactly as NumPy computes it on the whole array, bit for
# bit as before; a larger one never has a float64 copy of itself in memory.
CHUNK_ELEMENTS = 2**20


def _row_chunks(a: np.ndarray) -> Iterator[slice]:
    """Slices of whole rows (samples) of ``a``, about ``CHUNK_ELEMENTS`` elements each."""
    rows = max(1, CHUNK_ELEMENTS // max(1, a[0].size)) if len(a) else 1
    return (slice(lo, lo + rows) for lo in range(0, len(a), rows))


def _moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation in float64, over the samples (and over the positions of a channel
    for ``[N, C, ...]``), in two passes over chunks of rows. One chunk is NumPy's own ``mean`` and
    ``std`` arithmetic (the same float64 sums, the same result bit for bit); more chunks add their
    float64 sums, so no float64 copy of ``a`` is ever made (it would be twice a float32 image set).

    >>> m, s = _moments(np.array([[1.0, 10.0], [3.0, 30.0]], dtype="float32"))
    >>> m.tolist(), s.tolist()
    ([2.0, 20.0], [1.0, 10.0])
    """
    axes = (0,) if a.ndim <= 2 else (0, *range(2, a.ndim))
    count = a.size // max(1, a.shape[1] if a.ndim >= 2 else 1)
    keep = (1, -1) + (1,) * (a.ndim - 2) if a.ndim >= 2 else (1,)
    total = sum(a[c].sum(axis=axes, dtype=np.float64) for c in _row_chunks(a))
    mean = np.asarray(total, dtype=np.float64) / count
    squares = 0.0
    for c in _row_chunks(a):
        d = a[c] - mean.reshape(keep)  # float64 [rows, C, ...] of one chunk
        np.multiply(d, d, out=d)
        squares = squares + d.sum(axis=axes, dtype=np.float64)
    return mean, np.sqrt(np.asarray(squares, dtype=np.float64) / count)


def _elementwise(steps: tuple[Any, ...], a: np.ndarray, in_place: bool) -> np.ndarray:
    """``steps`` (per-channel ``Standardize`` / ``MinMax``) applied to ``a`` a chunk of rows at a
    time: each chunk in float64 as the whole array was, then rounded once to float32 into the
    result, which is ``a`` itself with ``in_place`` (a float32 array the caller owns) or a new
    float32 array. The figures are the same bit for bit as on the whole array; the memory is one
    float32 result instead of two float64 temporaries of the whole set."""
    writable = in_place and a.dtype == np.float32 and a.flags.writeable
    out = a if writable else np.empty(a.shape, dtype=np.float32)
    for c in _row_chunks(a):
        part = a[c]
        for step in steps:
            part = step.apply(part)
        out[c] = part
    return out


Step = Standardize | MinMax | TableStep | TextStep | FeatureStep
# kind -> the step class that reads it back (the one place a new kind of step is added).
STEP_KINDS: dict[str, Any] = {
    "standardize": Standardize,
    "minmax": MinMax,
    "table": TableStep,
    "text": TextStep,
    "features": FeatureStep,
}


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


class TableLayer(nn.Module):
    """A table step of numeric columns as a torch layer (exports): impute, clip, scale, indicators.

    Categories arrive as text, which a tensor cannot hold: a step with categorical columns has no
    layer (``DataError``), and its run exports without the preprocessing inside.
    """

    def __init__(self, step: TableStep) -> None:
        super().__init__()
        if step.categorical:
            names = ", ".join(step.columns[j] for j in step.categorical)
            raise DataError(
                f"the preprocessing encodes the text columns {names}, which a tensor cannot carry; an "
                "exported model takes numbers: encode those columns yourself (preprocess.encoding: ordinal "
                "codes, listed in preprocess.numeric) or use tunelab.load_run for raw rows"
            )
        f32 = torch.float32
        self.register_buffer("index", torch.tensor(step.numeric, dtype=torch.long))
        self.register_buffer("fill", torch.tensor(step.fill, dtype=f32))
        self.register_buffer("indicator", torch.tensor(step.indicator, dtype=torch.long))
        self.clip = step.clip is not None
        low, high = step.clip if step.clip is not None else ([], [])
        self.register_buffer("low", torch.tensor(low, dtype=f32))
        self.register_buffer("high", torch.tensor(high, dtype=f32))
        kind = step.scaler["kind"]
        n = len(step.numeric)
        # One affine form for every scaler: (x - center) / scale, with minmax's x * s + m written
        # as (x - (-m / s)) / (1 / s).
        if kind == "none":
            center, scale = [0.0] * n, [1.0] * n
        elif kind == "minmax":
            s, m = np.asarray(step.scaler["scale"]), np.asarray(step.scaler["min"])
            center, scale = (-m / s).tolist(), (1.0 / s).tolist()
        else:
            center, scale = step.scaler["center"], step.scaler["scale"]
        self.register_buffer("center", torch.tensor(center, dtype=f32))
        self.register_buffer("scale", torch.tensor(scale, dtype=f32))

    def forward(self, x: Tensor) -> Tensor:
        a = x.index_select(1, self.index)  # [N, F] -> [N, numeric]
        nan = torch.isnan(a)
        a = torch.where(nan, self.fill, a)
        if self.clip:
            a = torch.minimum(torch.maximum(a, self.low), self.high)
        a = (a - self.center) / self.scale
        if self.indicator.numel():
            a = torch.cat([a, nan.index_select(1, self.indicator).to(a.dtype)], dim=1)
        return a


class MinMaxLayer(nn.Module):
    """``MinMax`` as a torch layer (exports): ``x * scale + min`` per channel, float32."""

    def __init__(self, step: MinMax, ndim: int = 2) -> None:
        super().__init__()
        shape = step._shape(ndim)
        self.register_buffer("scale", torch.tensor(step.scale, dtype=torch.float32).reshape(shape))
        self.register_buffer("min", torch.tensor(step.min, dtype=torch.float32).reshape(shape))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.min


def _channel_steps(x: np.ndarray, spec: PreprocessSpec) -> tuple[Step, ...]:
    """Per-channel scaling of signals and images ``[N, C, ...]``; table settings refused here."""
    if spec.outliers != "none":
        raise DataError(
            f"preprocess.outliers: {spec.outliers} clips table columns; this data is "
            f"{'signals' if x.ndim == 3 else 'images'} of shape {list(x.shape[1:])}: set it to none"
        )
    if spec.scaling == "robust":
        raise DataError(
            "preprocess.scaling: robust scales table columns; for signals and images use standard, minmax "
            "or none"
        )
    if spec.scaling == "standard":
        return (Standardize.fit(x),)
    if spec.scaling == "minmax":
        return (MinMax.fit(x, tuple(spec.minmax_range)),)
    return ()


def _text_steps(docs: np.ndarray, spec: PreprocessSpec) -> tuple[tuple[Step, ...], dict[str, Any]]:
    """Documents: the tokenizer; with ``preprocess.features``, the frozen encoder's features and
    their scaling (``scaling``: standard or minmax per feature, or none) after it."""
    text, notes = TextStep.fit(docs, spec)
    if spec.features is None:
        return (text,), notes
    if spec.scaling == "robust":
        raise DataError(
            "preprocess.scaling: robust scales table columns; for text features use standard, minmax or none"
        )
    features, train = FeatureStep.fit(text.apply(docs), spec.features, text.pad_id)
    steps: list[Step] = [text, features]
    if spec.scaling == "standard":
        steps.append(Standardize.fit(train))
    elif spec.scaling == "minmax":
        steps.append(MinMax.fit(train, tuple(spec.minmax_range)))
    notes["text"]["features"] = {"encoder": spec.features, "size": features.size}
    return tuple(steps), notes


@dataclass(frozen=True)
class Preprocessing:
    """Input steps (applied in order) and the regression targets' scaling, fit on train only.

    ``Preprocessing()`` is the identity. ``notes``: what the fit did, for the run's info.
    """

    x: tuple[Step, ...] = ()
    y: Standardize | None = None
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def fit(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray | None = None,
        *,
        task: str = "classification",
        spec: PreprocessSpec | None = None,
        names: list[str] | None = None,
        text: bool = False,
    ) -> Preprocessing:
        """Fit on the train split as ``spec`` says (default: ``PreprocessSpec()``).

        ``x_train`` is a table ``[N, F]`` (numbers, or text cells when ``text``: a CSV's, whose
        column types are then detected; ``names`` are its columns), signals / images
        ``[N, C, ...]``, or text documents ``[N]`` (``tunelab.data.tokenize``). Regression targets
        are standardized per target (``target_scaling``).

        >>> x, y = np.array([[0.0], [4.0]]), np.array([[10.0], [30.0]])
        >>> pre = Preprocessing.fit(x, y, task="regression")
        >>> pre.transform(x).tolist(), pre.transform_y(y).tolist()
        ([[-1.0], [1.0]], [[-1.0], [1.0]])
        """
        spec = spec or PreprocessSpec()
        x_train = np.asarray(x_train)
        notes: dict[str, Any] = {}
        if is_documents(x_train):
            steps, notes = _text_steps(x_train, spec)
        elif x_train.ndim == 2:
            names = names or [f"x{i}" for i in range(x_train.shape[1])]
            step, notes = TableStep.fit(x_train, names, spec, text=text)
            steps: tuple[Step, ...] = (step,)
        else:
            steps = _channel_steps(x_train, spec)
        y_step = None
        if task == "regression" and y_train is not None and spec.target_scaling == "standard":
            y_step = Standardize.fit(
                np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1), "per_target"
            )
        return cls(steps, y_step, notes)

    @property
    def table(self) -> TableStep | None:
        """The table step, when the inputs are a table (its columns, encoding, categories)."""
        return next((s for s in self.x if isinstance(s, TableStep)), None)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The model's input shape for raw samples of ``input_shape``."""
        table = self.table
        if table is not None:
            return (len(table.output_names),)
        features = next((s for s in self.x if isinstance(s, FeatureStep)), None)
        if features is not None:
            return (features.size,)
        text = self.text
        return (text.max_length,) if text is not None else input_shape

    @property
    def text(self) -> TextStep | None:
        """The tokenizer step, when the inputs are text documents."""
        return next((s for s in self.x if isinstance(s, TextStep)), None)

    def text_info(self) -> dict[str, Any] | None:
        """What a text model reads (vocabulary size, padding and special ids) when the model's
        inputs are token ids; None otherwise (no text, or frozen features in their place)."""
        text = self.text
        if text is None or any(isinstance(s, FeatureStep) for s in self.x):
            return None
        return text.info()

    def files(self) -> dict[str, str]:
        """Files saved beside ``preprocess.json`` (a text run's ``tokenizer.json``): name -> text."""
        return self.text.files() if self.text is not None else {}

    def embeddings(self) -> dict[str, Any] | None:
        """``{"numeric": n, "cardinalities": [...]}`` when categories are codes for embeddings: the
        model's first ``n`` inputs are numbers, then one code per categorical column."""
        table = self.table
        if table is None or table.encoding != "embedding" or not table.categorical:
            return None
        n = len(table.output_names) - len(table.categorical)
        return {"numeric": n, "cardinalities": table.cardinalities}

    def transform(self, x: np.ndarray, what: str = "x", *, in_place: bool = False) -> np.ndarray:
        """The model's inputs for raw inputs ``x`` ``[N, *input_shape]``: float32, or int64 token
        ids ``[N, max_length]`` for text documents ``[N]``.

        ``what`` names the data in the error raised when ``x`` does not fit the fitted statistics.
        ``in_place``: a float32 ``x`` of signals or images that the caller owns is overwritten and
        returned, instead of a new array (``make_bundle``'s own copies of the splits).
        """
        out = np.asarray(x)
        if not self.x and in_place and out.dtype == np.float32:
            return out
        per_channel = all(isinstance(s, (Standardize, MinMax)) for s in self.x)
        if self.x and per_channel and out.ndim >= 2 and out.dtype.kind in "biuf":
            for step in self.x:  # per-channel steps keep the shape: each checks the input's
                step.check(out, what)
            return _elementwise(self.x, out, in_place)
        for step in self.x:
            step.check(out, what)
            out = step.apply(out, what)
        return out if out.dtype == np.int64 else out.astype(np.float32)

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
            "notes": self.notes,
        }

    @classmethod
    def from_json(
        cls, d: dict[str, Any], source: str = "preprocess.json", files: Mapping[str, str] | None = None
    ) -> Preprocessing:
        """Read what ``to_json`` wrote; a newer format or an unknown kind of step is refused.

        A step's files (a tokenizer) come from ``files`` (what ``files()`` returned) when given,
        else from the directory of the file ``source``.
        """
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
            if kind == "text":
                name = s.get("file")
                text = files.get(name) if files is not None else None
                steps.append(TextStep.from_json(s, Path(source).parent, text))
            else:
                steps.append(STEP_KINDS[kind].from_json(s))
        y = d.get("y")
        return cls(tuple(steps), None if y is None else Standardize.from_json(y), dict(d.get("notes") or {}))

    def layers(self, ndim: int) -> nn.Module:
        """The input steps as one torch module (for inputs of ``ndim`` dimensions with the batch)."""
        layers: list[nn.Module] = []
        for s in self.x:
            if isinstance(s, (TextStep, FeatureStep)):
                raise DataError(
                    "this run reads text, which its preprocessing tokenizes with Hugging Face tokenizers: a "
                    "tensor graph cannot hold that step, so text runs are not exported; use tunelab.load_run "
                    "(or tunelab predict), which takes raw text"
                )
            if isinstance(s, TableStep):
                layers.append(TableLayer(s))
            elif isinstance(s, MinMax):
                layers.append(MinMaxLayer(s, ndim))
            else:
                layers.append(StandardizeLayer(s, ndim))
        return nn.Sequential(*layers)

    def typical_inputs(self, shape: tuple[int, ...], n: int, seed: int = 0) -> Tensor:
        """``n`` raw inputs drawn around the train data's center and spread, to check an export."""
        gen = torch.Generator().manual_seed(seed)
        table = self.table
        if table is not None:
            z = torch.randn((n, len(table.columns)), generator=gen, dtype=torch.float64)
            scaler = table.scaler
            for k, j in enumerate(table.numeric):
                if scaler["kind"] in ("standard", "robust"):
                    z[:, j] = z[:, j] * scaler["scale"][k] + scaler["center"][k]
                elif scaler["kind"] == "minmax":
                    z[:, j] = (z[:, j] - scaler["min"][k]) / scaler["scale"][k]
                else:
                    z[:, j] = z[:, j] + table.fill[k]
            return z.float()
        x = torch.randn((n, *shape), generator=gen)
        for step in self.x:
            s = step._shape(x.dim())
            if isinstance(step, Standardize):
                x = x * torch.tensor(step.std).reshape(s) + torch.tensor(step.mean).reshape(s)
            elif isinstance(step, MinMax):
                x = (x - torch.tensor(step.min).reshape(s)) / torch.tensor(step.scale).reshape(s)
        return x.float()
