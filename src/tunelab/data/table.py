"""Tables: column types, and the table step of preprocessing (impute, clip, scale, encode).

A table is ``[N, F]``: the text cells of a CSV file (an object array, ``None`` for a missing
cell) or the numbers of a 2-D array. ``TableStep.fit`` reads the train rows only:

1. **Column types** (``detect_columns``, tables read from text only; an array's columns are all
   numbers): numbers are *numeric*; text, booleans and integers with few distinct values are
   *categorical*; a column with one value is *constant* and one with a different value on every
   row (text, or consecutive integers) is *ID-like*: both are dropped, with the reason.
   ``preprocess.categorical`` / ``numeric`` / ``drop`` override the detection.
2. **Numeric columns**: scikit-learn's ``SimpleImputer`` (mean, median or constant, with an
   optional missing-indicator column), then clipping to train quantiles or a z-score bound,
   then ``StandardScaler`` / ``MinMaxScaler`` / ``RobustScaler``.
3. **Categorical columns**: ``SimpleImputer`` (most frequent, or a constant category), then
   ``OneHotEncoder(handle_unknown="ignore")`` (an unseen category is all zeros),
   ``OrdinalEncoder`` (unseen: -1), or codes for an embedding (unseen: 0, the categories 1..K).

The fitted step is plain data (``to_json``: fills, bounds, centers, scales, category lists), and
``apply`` computes from that data alone, with numpy: the same formulas as the transformers'
``transform`` (tests check it equals them on random data with NaNs and unseen categories). It is
written out rather than kept as fitted scikit-learn objects because those only travel as pickles,
and loading a run must not run code.

    >>> import numpy as np
    >>> cells = np.array([["a", "1.5"], ["b", None], ["a", "3.5"], ["b", "2.5"]], dtype=object)
    >>> step, notes = TableStep.fit(cells, ["colour", "size"], text=True)
    >>> step.output_names
    ['size', 'colour=a', 'colour=b']
    >>> step.apply(np.array([["c", None]], dtype=object)).round(3).tolist()  # unseen, missing
    [[0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from tunelab.errors import DataError, RecipeError, did_you_mean
from tunelab.spec import PreprocessSpec

__all__ = [
    "MISSING_TEXT",
    "ColumnPlan",
    "TableStep",
    "cell_text",
    "cell_texts",
    "detect_columns",
    "is_missing",
    "to_numbers",
]

# Cells read as missing: pandas' default na_values, so a file reads here as it reads there
# (penguins.csv writes "NA").
MISSING_TEXT = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"}
    | {"N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
BOOLEAN_TEXT = {"true": "true", "false": "false", "yes": "true", "no": "false"}
_SHOW = 5


def is_missing(v: Any) -> bool:
    """Whether a cell is missing: None, NaN, or a text pandas reads as missing (``MISSING_TEXT``).

    >>> is_missing(None), is_missing(" NA "), is_missing(float("nan")), is_missing("0")
    (True, True, True, False)
    """
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() in MISSING_TEXT
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def cell_text(v: Any) -> str | None:
    """The category a cell stands for: its stripped text, numbers written one way (``3`` for
    ``3.0``), booleans as ``true``/``false``; None for a missing cell.

    >>> cell_text(" red "), cell_text(3.0), cell_text("2007"), cell_text("Yes"), cell_text("NA")
    ('red', '3', '2007', 'true', None)
    """
    if is_missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(v).strip()
    if text.lower() in BOOLEAN_TEXT:
        return BOOLEAN_TEXT[text.lower()]
    try:
        f = float(text)
    except ValueError:
        return text
    return (str(int(f)) if f.is_integer() else repr(f)) if math.isfinite(f) else text


def cell_texts(column: np.ndarray) -> list[str | None]:
    """``cell_text`` of every cell of a column, computed once per distinct value: a categorical
    column repeats a few values, and a streamed CSV's millions of cells made this the table's
    hot spot (10 million calls: 40 s of 75 under the profiler).

    >>> cell_texts(np.array(["a", 1.0, True, "a", None], dtype=object))
    ['a', '1', 'true', 'a', None]
    """
    keys = [(type(v), v) for v in column.tolist()]  # by type too: True == 1 == 1.0, their texts differ
    memo = {key: cell_text(key[1]) for key in set(keys)}
    return [memo[key] for key in keys]


def to_numbers(column: np.ndarray, name: str, where: str) -> np.ndarray:
    """float64 values of one column, NaN for a missing cell; a DataError names a cell that is not a
    number, or an infinite one.

    >>> to_numbers(np.array(["1", "", "2.5"], dtype=object), "a", "data").tolist()
    [1.0, nan, 2.5]
    """
    if column.dtype.kind in "biuf":
        out = column.astype(np.float64)
    else:
        out = np.empty(len(column), dtype=np.float64)
        for i, v in enumerate(column):
            if is_missing(v):
                out[i] = np.nan
                continue
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise DataError(
                    f"{where}: column {name!r} is numeric but holds {v!r} (row {i + 1}); fix that value, or "
                    f"list the column in preprocess.categorical"
                ) from None
    if np.isinf(out).any():
        i = int(np.flatnonzero(np.isinf(out))[0])
        raise DataError(f"{where}: column {name!r} holds an infinite value (row {i + 1}); fix or drop it")
    return out


@dataclass(frozen=True)
class ColumnPlan:
    """What the detection decided for each column: ``kinds[name]`` is numeric, categorical or
    dropped; ``why[name]`` says why (shown in the run's info)."""

    kinds: dict[str, str]
    why: dict[str, str]


def _detect_one(cells: np.ndarray, spec: PreprocessSpec) -> tuple[str, str]:
    present = [v for v in cells if not is_missing(v)]
    n_missing = len(cells) - len(present)
    texts = [cell_text(v) for v in present]
    distinct = set(texts)
    if len(distinct) + (1 if n_missing else 0) <= 1:
        return "drop", "constant: a single value in train"
    numbers = []
    for v in present:
        try:
            numbers.append(float(v))
        except (TypeError, ValueError):
            numbers = None
            break
    if numbers is None or any(t in ("true", "false") for t in texts):
        if n_missing == 0 and len(distinct) == len(present) and len(present) > 2:
            return "drop", "ID-like: a different text on every row"
        kind = "booleans" if distinct <= {"true", "false"} else "text"
        return "categorical", kind
    a = np.array(numbers)
    if np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        k = len(np.unique(a))
        # Row numbers: a different integer on every row, densely packed (the train rows of ids
        # 1..N are a random subset of them, so the span is at most about N, not N - 1).
        if k == len(a) and n_missing == 0 and len(a) > 2 and np.ptp(a) + 1 <= 2 * len(a):
            return "drop", "ID-like: a different integer on every row, densely numbered"
        if k <= spec.max_int_categories and 2 * k <= len(a):
            return "categorical", f"integers with {k} distinct values"
    return "numeric", "numbers"


def detect_columns(x: np.ndarray, names: Sequence[str], spec: PreprocessSpec, text: bool) -> ColumnPlan:
    """Each column's kind, from the train rows ``x`` ``[N, F]`` (see the module docstring).

    ``text``: the table was read from text (a CSV), so its types are detected; otherwise every
    column is numeric. The recipe's lists win over the detection; a name they give that is not a
    column is a RecipeError.

    >>> x = np.array([["1", "a", "7"], ["2", "b", "7"], ["3", "a", "7"]], dtype=object)
    >>> detect_columns(x, ["id", "c", "k"], PreprocessSpec(), text=True).kinds
    {'id': 'drop', 'c': 'categorical', 'k': 'drop'}
    """
    for kind in ("categorical", "numeric", "drop"):
        for column in getattr(spec, kind):
            if column not in names:
                hint = did_you_mean(column, names)
                raise RecipeError(
                    f"preprocess.{kind}",
                    column,
                    f"is not a feature column; the columns are: {', '.join(names)}",
                    hint,
                )
    kinds, why = {}, {}
    for j, name in enumerate(names):
        if name in spec.drop:
            kinds[name], why[name] = "drop", "listed in preprocess.drop"
        elif name in spec.categorical:
            kinds[name], why[name] = "categorical", "listed in preprocess.categorical"
        elif name in spec.numeric:
            kinds[name], why[name] = "numeric", "listed in preprocess.numeric"
        elif not text:
            kinds[name], why[name] = "numeric", "numbers"
        else:
            kinds[name], why[name] = _detect_one(x[:, j], spec)
    if all(k == "drop" for k in kinds.values()):
        raise DataError(
            "every feature column was dropped ("
            + "; ".join(f"{n}: {why[n]}" for n in list(names)[:_SHOW])
            + "); list the columns to keep in preprocess.numeric or preprocess.categorical"
        )
    return ColumnPlan(kinds, why)


def _scaler(spec: PreprocessSpec) -> Any:
    if spec.scaling == "standard":
        return StandardScaler()
    if spec.scaling == "minmax":
        return MinMaxScaler(feature_range=tuple(spec.minmax_range))
    if spec.scaling == "robust":
        return RobustScaler()
    return None


def _bounds(a: np.ndarray, spec: PreprocessSpec) -> tuple[list[float], list[float]] | None:
    """Clip bounds per column from the observed train values (NaNs ignored), or None."""
    if spec.outliers == "quantile":
        q = np.nanquantile(a, list(spec.outlier_quantiles), axis=0)
        return q[0].tolist(), q[1].tolist()
    if spec.outliers == "zscore":
        mean, std = np.nanmean(a, axis=0), np.nanstd(a, axis=0)
        return (mean - spec.outlier_z * std).tolist(), (mean + spec.outlier_z * std).tolist()
    return None


@dataclass(frozen=True)
class TableStep:
    """The fitted table step, as plain data (see the module docstring for what each part does).

    ``columns``: the input columns in order (a predictor's CSV must hold them); ``numeric`` and
    ``categorical``: indices into them; ``output_names``: the model's input features, numeric
    first, then missing indicators, then the encoded categories.
    """

    columns: list[str]
    numeric: list[int]
    fill: list[float]  # per numeric column
    indicator: list[int]  # numeric columns (indices into ``numeric``) with a 0/1 missing column
    clip: tuple[list[float], list[float]] | None
    scaler: dict[str, Any]  # {"kind": ..., and its arrays}
    categorical: list[int]
    category_fill: list[str]
    categories: list[list[str]]
    encoding: str
    dropped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, x: np.ndarray, names: Sequence[str], spec: PreprocessSpec | None = None, *, text: bool
    ) -> tuple[TableStep, dict[str, Any]]:
        """Fit on the train rows ``x`` ``[N, F]``; returns the step and notes for the run's info."""
        spec = spec or PreprocessSpec()
        plan = detect_columns(x, names, spec, text)
        num = [j for j, n in enumerate(names) if plan.kinds[n] == "numeric"]
        cat = [j for j, n in enumerate(names) if plan.kinds[n] == "categorical"]
        notes: dict[str, Any] = {}
        fill: list[float] = []
        indicator: list[int] = []
        clip = None
        scaler: dict[str, Any] = {"kind": "none"}
        if num:
            a = np.stack([to_numbers(x[:, j], names[j], "train") for j in num], axis=1)
            missing = np.isnan(a).sum(axis=0)
            clip = _bounds(a, spec)
            strategy = spec.impute
            imputer = SimpleImputer(
                strategy=strategy,
                fill_value=spec.impute_value,
                add_indicator=spec.missing_indicator,
                keep_empty_features=True,
            ).fit(a)
            fill = imputer.statistics_.astype(float).tolist()
            if spec.missing_indicator and imputer.indicator_ is not None:
                indicator = [int(k) for k in imputer.indicator_.features_]
            filled = np.where(np.isnan(a), np.asarray(fill), a)
            if clip is not None:
                filled = np.clip(filled, clip[0], clip[1])
            sk = _scaler(spec)
            if sk is not None:
                sk.fit(filled)
                scaler = _scaler_data(spec.scaling, sk)
            imputed = {k: int(m) for k, m in enumerate(missing) if m}
            if imputed:
                notes["imputed"] = {
                    names[num[k]]: f"{m} missing in train, filled with {spec.impute} {fill[k]:.4g}"
                    for k, m in imputed.items()
                }
        cat_fill: list[str] = []
        categories: list[list[str]] = []
        if cat:
            texts = np.array([cell_texts(x[:, j]) for j in cat], dtype=object).T
            texts = np.where(texts == None, np.nan, texts)  # noqa: E711 (elementwise)
            imputer = SimpleImputer(
                strategy=spec.categorical_impute, fill_value=spec.categorical_fill, missing_values=np.nan
            ).fit(texts)
            cat_fill = [str(v) for v in imputer.statistics_]
            filled = imputer.transform(texts)
            encoder = OrdinalEncoder() if spec.encoding != "onehot" else OneHotEncoder()
            encoder.fit(filled)
            categories = [[str(c) for c in cats] for cats in encoder.categories_]
            missing_cat = {names[j]: int(np.sum(texts[:, k] != texts[:, k])) for k, j in enumerate(cat)}
            for k, j in enumerate(cat):
                if missing_cat[names[j]]:
                    notes.setdefault("imputed", {})[names[j]] = (
                        f"{missing_cat[names[j]]} missing in train, filled with {cat_fill[k]!r}"
                    )
            notes["encoded"] = {
                names[j]: f"{spec.encoding}, {len(categories[k])} categories ({plan.why[names[j]]})"
                for k, j in enumerate(cat)
            }
        dropped = {n: plan.why[n] for n in names if plan.kinds[n] == "drop"}
        if dropped:
            notes["dropped_columns"] = dropped
        step = cls(
            list(names), num, fill, indicator, clip, scaler, cat, cat_fill, categories, spec.encoding, dropped
        )
        return step, notes

    # --- applying the saved data ---------------------------------------------------------------

    @property
    def output_names(self) -> list[str]:
        out = [self.columns[j] for j in self.numeric]
        out += [f"{self.columns[self.numeric[k]]}_missing" for k in self.indicator]
        for k, j in enumerate(self.categorical):
            if self.encoding == "onehot":
                out += [f"{self.columns[j]}={c}" for c in self.categories[k]]
            else:
                out.append(self.columns[j])
        return out

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes per categorical column: its categories plus code 0 for unseen ones."""
        return [len(c) + 1 for c in self.categories]

    def check(self, x: np.ndarray, what: str) -> None:
        if x.ndim != 2 or x.shape[1] != len(self.columns):
            raise DataError(
                f"{what}: has shape {list(x.shape)} but the preprocessing was fit on a table of "
                f"{len(self.columns)} columns ({', '.join(self.columns[:8])}"
                f"{', ...' if len(self.columns) > 8 else ''}); "
                "give rows with those columns, in that order"
            )

    def apply(self, x: np.ndarray, what: str = "x") -> np.ndarray:
        """float64 ``[N, len(output_names)]`` for rows ``x`` ``[N, F]`` (numbers or text cells)."""
        parts: list[np.ndarray] = []
        n = len(x)
        if self.numeric:
            a = np.stack([to_numbers(x[:, j], self.columns[j], what) for j in self.numeric], axis=1)
            nan = np.isnan(a)
            a = np.where(nan, np.asarray(self.fill), a)  # SimpleImputer.transform
            if self.clip is not None:
                a = np.clip(a, self.clip[0], self.clip[1])
            parts.append(_scale(a, self.scaler))
            if self.indicator:
                parts.append(nan[:, self.indicator].astype(np.float64))  # MissingIndicator
        for k, j in enumerate(self.categorical):
            texts = cell_texts(x[:, j])
            texts = [self.category_fill[k] if t is None else t for t in texts]
            index = {c: i for i, c in enumerate(self.categories[k])}
            codes = np.array([index.get(t, -1) for t in texts], dtype=np.int64)
            if self.encoding == "onehot":  # OneHotEncoder(handle_unknown="ignore"): unseen is all zeros
                hot = np.zeros((n, len(index)))
                rows = np.flatnonzero(codes >= 0)
                hot[rows, codes[rows]] = 1.0
                parts.append(hot)
            elif self.encoding == "ordinal":  # OrdinalEncoder(unknown_value=-1)
                parts.append(codes[:, None].astype(np.float64))
            else:  # embedding rows: 0 for an unseen category, 1..K for the known ones
                parts.append((codes + 1)[:, None].astype(np.float64))
        return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))

    # --- plain data ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "table",
            "columns": self.columns,
            "numeric": self.numeric,
            "fill": self.fill,
            "indicator": self.indicator,
            "clip": None if self.clip is None else [self.clip[0], self.clip[1]],
            "scaler": self.scaler,
            "categorical": self.categorical,
            "category_fill": self.category_fill,
            "categories": self.categories,
            "encoding": self.encoding,
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableStep:
        clip = d.get("clip")
        return cls(
            [str(c) for c in d["columns"]],
            [int(j) for j in d["numeric"]],
            [float(v) for v in d["fill"]],
            [int(k) for k in d["indicator"]],
            None if clip is None else ([float(v) for v in clip[0]], [float(v) for v in clip[1]]),
            {k: (v if isinstance(v, str) else [float(f) for f in v]) for k, v in d["scaler"].items()},
            [int(j) for j in d["categorical"]],
            [str(v) for v in d["category_fill"]],
            [[str(c) for c in cats] for cats in d["categories"]],
            str(d["encoding"]),
            {str(k): str(v) for k, v in (d.get("dropped") or {}).items()},
        )


def _scaler_data(kind: str, sk: Any) -> dict[str, Any]:
    """The fitted scaler's arrays that its ``transform`` uses."""
    if kind == "minmax":
        return {"kind": kind, "scale": sk.scale_.tolist(), "min": sk.min_.tolist()}
    if kind == "standard":
        return {"kind": kind, "center": sk.mean_.tolist(), "scale": sk.scale_.tolist()}
    return {"kind": kind, "center": sk.center_.tolist(), "scale": sk.scale_.tolist()}


def _scale(a: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """The transform of StandardScaler / RobustScaler (``(x - center) / scale``) or MinMaxScaler
    (``x * scale + min``), written as they compute it, so the results are equal bit for bit."""
    kind = scaler["kind"]
    if kind == "none":
        return a
    if kind == "minmax":
        return a * np.asarray(scaler["scale"]) + np.asarray(scaler["min"])
    return (a - np.asarray(scaler["center"])) / np.asarray(scaler["scale"])
