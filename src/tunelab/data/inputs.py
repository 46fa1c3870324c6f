"""New raw inputs for a trained model, read as its training data was read.

``read_inputs(x, card)`` turns what a user hands a predictor into float32 ``[N, *input_shape]``
raw (not yet preprocessed) values and a name for each row. ``card`` is the run's ``data.json``
(``DataBundle.card``): it says which feature columns a CSV or DataFrame must have, which column
names the rows, and how image files were decoded. Accepted:

* a numpy array, a torch tensor or a nested list, ``[N, *input_shape]`` or flattened
  ``[N, prod(input_shape)]``;
* a pandas DataFrame (pandas is not required otherwise) or a ``.csv`` path with the training
  feature columns, in any order; other columns are ignored. Data without named features (built-in
  signals and images) uses the columns ``x0 .. x{D-1}``: the flattened values, row-major;
* a ``.npz`` path holding the array ``x``;
* an image file or a folder of images (any depth), for runs trained on an ``image_folder``;
* for a text run (``data.json``'s ``documents``): strings, a ``.txt`` file (one document per
  line), a CSV or DataFrame with the text column, or a folder of ``.txt`` files
  (``tunelab.data.text.read_documents``).

A run trained on a table (``data.json``'s ``table``: a CSV, penguins, a 2-D array) reads its
feature columns as cells, text or numbers, with missing values allowed: its preprocessing imputes
and encodes them as in training, and an unseen category is handled as the encoder was told.

Bad inputs get the one-line DataErrors of the training data: a missing column, a non-numeric or
NaN value, a wrong shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.data.files import read_feature_csv
from tunelab.data.image_folder import IMAGE_SUFFIXES, read_images
from tunelab.data.npz import read_npz
from tunelab.data.splits import check_finite
from tunelab.data.text import read_documents
from tunelab.errors import DataError

__all__ = ["feature_columns", "read_inputs"]


def feature_columns(card: dict[str, Any]) -> list[str]:
    """The columns a CSV or DataFrame must hold: the training features, else ``x0 .. x{D-1}``.

    >>> feature_columns({"feature_names": None, "input_shape": [1, 3]})
    ['x0', 'x1', 'x2']
    """
    if card.get("feature_names"):
        return list(card["feature_names"])
    return [f"x{i}" for i in range(math.prod(card["input_shape"]))]


def read_inputs(x: Any, card: dict[str, Any], source: str = "input") -> tuple[np.ndarray, list[str]]:
    """Raw float32 inputs ``[N, *input_shape]`` and each row's name (its id column, its index, or
    its file name); see the module docstring for what ``x`` may be.

    >>> card = {"input_shape": [2], "feature_names": ["a", "b"], "id_column": None, "image": None}
    >>> a, rows = read_inputs([[1, 2], [3, 4]], card)
    >>> a.dtype, a.shape, rows
    (dtype('float32'), (2, 2), ['0', '1'])
    """
    if card.get("documents"):
        return read_documents(x, card, source)
    if card.get("table"):
        return _read_table(x, card, source)
    ids: list[str] | None = None
    if isinstance(x, (str, Path)):
        a, ids, source = _read_path(Path(x), card)
    elif _is_dataframe(x):
        a, ids = _from_dataframe(x, card, source)
    else:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise DataError(f"{source}: inputs must be numeric, got values of type {a.dtype}")
    a = _conform(a, tuple(card["input_shape"]), source)
    check_finite(a, "x", source)
    return a, ids if ids is not None else [str(i) for i in range(len(a))]


def _read_table(x: Any, card: dict[str, Any], source: str) -> tuple[np.ndarray, list[str]]:
    """The raw cells ``[N, F]`` of a table run's feature columns (text or numbers; missing allowed:
    the preprocessing imputes them as in training) and each row's name."""
    ids: list[str] | None = None
    if isinstance(x, (str, Path)):
        p = Path(x)
        if not p.is_file() or p.suffix.lower() != ".csv":
            if p.suffix.lower() == ".npz" and p.is_file():
                a, _, _ = _read_path(p, card)
                return _table_array(a, card, str(p)), [str(i) for i in range(len(a))]
            raise DataError(
                f"{p}: this run was trained on a table ({_data_name(card)}); give a CSV file with its "
                f"columns ({_first(feature_columns(card))}), a DataFrame, or an array of rows"
            )
        a, ids = read_feature_csv(
            p, feature_columns(card), card.get("id_column"), card.get("delimiter") or ",", cells=True
        )
    elif _is_dataframe(x):
        features = feature_columns(card)
        _check_columns([str(c) for c in x.columns], features, source)
        a = x[features].to_numpy(dtype=object)
        id_column = card.get("id_column")
        index = x[id_column] if id_column is not None and id_column in x.columns else x.index
        ids = [str(v) for v in index]
    else:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        a = _table_array(np.asarray(x, dtype=None), card, source)
    return a, ids if ids is not None else [str(i) for i in range(len(a))]


def _table_array(a: np.ndarray, card: dict[str, Any], source: str) -> np.ndarray:
    features = feature_columns(card)
    if a.ndim == 1 and len(features) == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != len(features):
        raise DataError(
            f"{source}: rows of shape {list(a.shape)} do not fit this model, which reads tables of "
            f"{len(features)} columns ({_first(features)}); give one row per sample"
        )
    return a


def _check_columns(columns: list[str], features: list[str], source: str) -> None:
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(
            f"{source}: the DataFrame lacks the feature column(s) {_first(missing)}; the model was trained "
            f"on {len(features)} columns: {_first(features)}"
        )


def _read_path(p: Path, card: dict[str, Any]) -> tuple[np.ndarray, list[str] | None, str]:
    source = str(p)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; give a CSV, an NPZ, an image or a folder of images")
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        image = card.get("image")
        if image is None:
            raise DataError(
                f"{p}: images, but this run was trained on {_data_name(card)}, not an image folder; give a "
                "CSV file, an NPZ file with the array x, or an array"
            )
        a, names = read_images(p, image.get("size"), bool(image.get("grayscale")))
        return a, names, source
    suffix = p.suffix.lower()
    if suffix == ".csv":
        delimiter = card.get("delimiter") or ","
        a, ids = read_feature_csv(p, feature_columns(card), card.get("id_column"), delimiter)
        return a, ids, source
    if suffix == ".npz":
        arrays = read_npz(p)
        if "x" not in arrays:
            raise DataError(
                f"{p}: no array x (the file holds {sorted(arrays) or 'no arrays'}); save the inputs with "
                "np.savez(path, x=inputs)"
            )
        a = arrays["x"]
        if a.dtype.kind not in "biuf":
            raise DataError(f"{p}: x must be numeric, got values of type {a.dtype}")
        return a, None, source
    raise DataError(
        f"{p}: unknown kind of input file {suffix or '(no extension)'!r}; give a .csv, a .npz with the "
        "array x, an image file (.png, .jpg) or a folder of images"
    )


def _data_name(card: dict[str, Any]) -> str:
    return repr((card.get("dataset") or {}).get("name") or "its data")


def _is_dataframe(x: Any) -> bool:
    # Duck-typed on the class's module: pandas is optional, and never imported here.
    return type(x).__module__.startswith("pandas") and hasattr(x, "columns") and hasattr(x, "to_numpy")


def _from_dataframe(df: Any, card: dict[str, Any], source: str) -> tuple[np.ndarray, list[str]]:
    features = feature_columns(card)
    columns = [str(c) for c in df.columns]
    _check_columns(columns, features, source)
    try:
        a = df[features].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{source}: the feature columns must be numeric ({e}); encode them as numbers as in training"
        ) from None
    id_column = card.get("id_column")
    ids = df[id_column] if id_column is not None and id_column in columns else df.index
    return a, [str(v) for v in ids]


def _first(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _conform(a: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """``a`` as float32 ``[N, *shape]``: given so, or flattened ``[N, prod(shape)]``."""
    flat = math.prod(shape)
    if a.ndim == 1 and shape == (1,):
        a = a[:, None]  # N samples of the one feature
    if a.ndim >= 1 and tuple(a.shape[1:]) == shape:
        return a.astype(np.float32)
    if a.ndim == 2 and a.shape[1] == flat:
        return a.reshape(len(a), *shape).astype(np.float32)
    dims = ", ".join(str(s) for s in shape)
    raise DataError(
        f"{source}: inputs of shape {list(a.shape)} do not fit this model, which takes [N, {dims}] "
        f"(or flattened [N, {flat}]); give one row per sample with the training data's shape"
    )
