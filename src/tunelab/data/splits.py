"""Split once, by seed, stratified; fit preprocessing on train only.

Every run of a study shares one split (``data.split_seed``, not ``train.seed``), so runs on
different training seeds are paired on the same samples. Selection reads val; test is read once.

    >>> import numpy as np
    >>> from tunelab.spec import DataSpec
    >>> x, y = np.random.default_rng(0).normal(size=(200, 3)), np.arange(200) % 4
    >>> b = bundle_from_arrays(x, y, DataSpec(val_fraction=0.25, test_fraction=0.2))
    >>> b.summary()["sizes"], b.num_classes
    ({'train': 120, 'val': 40, 'test': 40}, 4)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from tunelab.data.bundle import DATASETS, DataBundle, RawData, RawPool
from tunelab.data.dedupe import drop_duplicates
from tunelab.data.files import TaskOption, arrays_to_raw
from tunelab.data.preprocess import Preprocessing
from tunelab.data.tokenize import is_documents
from tunelab.errors import DataError
from tunelab.schema import check, field_hints
from tunelab.spec import DataSpec, PreprocessSpec

__all__ = [
    "bundle_from_arrays",
    "check_finite",
    "load_data",
    "make_bundle",
    "preprocessed_bundle",
    "refit_fold",
    "split_index",
    "subsample_train",
]


def _check_spec(spec: DataSpec) -> None:
    """Re-check a DataSpec built in Python (a recipe's was checked on load): fractions in range."""
    hints = field_hints(DataSpec)
    for f in dataclasses.fields(DataSpec):
        if f.name not in ("name", "params"):
            check(getattr(spec, f.name), hints[f.name], f"data.{f.name}")


def check_finite(a: np.ndarray, what: str, source: str) -> None:
    """A DataError naming how many samples of ``a`` hold NaN or inf, and the first of them.

    >>> try:
    ...     check_finite(np.array([[1.0], [np.nan]]), "x", "data")
    ... except DataError as e:
    ...     print(str(e)[:55])
    data: x has NaN or inf values in 1 of 2 samples (first:
    """
    if a.dtype.kind != "f":
        return
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: {what} has NaN or inf values in {int(bad.sum())} of {len(a)} samples (first: sample "
            f"{first}); impute them (e.g. with a train median) or drop those samples"
        )


def _split(
    y: np.ndarray,
    fraction: float,
    seed: int,
    stratify: bool,
    part: str,
    field: str,
    class_names: list[str],
    source: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, split-off) index arrays; ``fraction`` of the samples go to ``part``."""
    n = len(y)
    where = "the data" if part == "test" else "train (after test was split off)"
    # train_test_split rounds the held-out part up: ceil(fraction * n), the rest is kept.
    n_out = math.ceil(fraction * n)
    n_in = n - n_out
    if n_in < 1 or n_out < 1:
        raise DataError(
            f"{source}: {n} samples in {where} are too few to split: data.{field}={fraction} leaves "
            f"{n_in} to keep and {n_out} for {part}; each split needs at least one. Use more data or "
            f"change data.{field}"
        )
    if stratify:
        present, counts = np.unique(y, return_counts=True)
        rare = [
            (class_names[c] if c < len(class_names) else str(c), int(k))
            for c, k in zip(present, counts, strict=True)
            if k < 2
        ]
        if rare:
            name, k = rare[0]
            others = f" (also {', '.join(repr(r) for r, _ in rare[1:])})" if len(rare) > 1 else ""
            raise DataError(
                f"{source}: class {name!r} has only {k} sample in {where}{others}; a stratified split into "
                f"{part} needs at least 2 samples per class. Fix: drop or merge rare classes (for digits, "
                f"data.classes), add samples of that class, or change data.{field}"
            )
        if n_out < len(present) or n_in < len(present):
            raise DataError(
                f"{source}: a stratified split needs a sample of each of the {len(present)} classes on both "
                f"sides, but data.{field}={fraction} of {n} samples leaves {n_in} to keep and {n_out} for "
                f"{part}. Fix: change data.{field}, add samples, or use fewer classes"
            )
    try:
        kept, out = train_test_split(
            np.arange(n), test_size=fraction, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as e:  # a case the checks above missed: still a message, never a traceback
        raise DataError(f"{source}: cannot split off {part} with data.{field}={fraction}: {e}") from None
    return kept, out


def split_index(
    y: np.ndarray,
    spec: DataSpec,
    classification: bool,
    class_names: list[str],
    source: str,
    *,
    has_test: bool = False,
) -> dict[str, np.ndarray]:
    """Row indices of test (unless the data publishes one: ``has_test``), then val and train, as
    ``make_bundle`` cuts them from the targets ``y`` alone (``data.split_seed``, stratified for
    classification): what the streamed path splits by, reading the labels but not the inputs.

    >>> idx = split_index(np.arange(20) % 2, DataSpec(test_fraction=0.2, val_fraction=0.25), True, [], "d")
    >>> {k: len(v) for k, v in idx.items()}
    {'test': 4, 'train': 12, 'val': 4}
    """
    rest, names = np.arange(len(y)), class_names
    out: dict[str, np.ndarray] = {}
    if not has_test:
        kept, test = _split(
            y, spec.test_fraction, spec.split_seed, classification, "test", "test_fraction", names, source
        )
        rest, out["test"] = kept, test
    kept, val = _split(
        y[rest], spec.val_fraction, spec.split_seed, classification, "val", "val_fraction", names, source
    )
    out["train"], out["val"] = rest[kept], rest[val]
    return out


def subsample_train(
    y: np.ndarray,
    fraction: float,
    seed: int,
    stratify: bool,
    class_names: list[str] | None = None,
    source: str = "data",
) -> np.ndarray:
    """Sorted indices of a ``fraction`` of the train samples, stratified for classification.

    Keeps ``floor(fraction * n)`` samples (scikit-learn's ``train_size`` rounding), drawn with
    ``seed``; every class must keep at least one sample, or a DataError says how large
    ``data.train_fraction`` must be. ``fraction=1`` keeps everything.

    >>> import numpy as np
    >>> y = np.repeat([0, 1], [80, 20])
    >>> keep = subsample_train(y, 0.1, seed=0, stratify=True)
    >>> len(keep), np.bincount(y[keep]).tolist()
    (10, [8, 2])
    """
    n = len(y)
    if not 0 < fraction <= 1:
        raise DataError(f"{source}: data.train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(n)
    n_keep = math.floor(fraction * n)
    if n_keep < 1:
        raise DataError(
            f"{source}: data.train_fraction={fraction} of {n} train samples keeps none; "
            f"use at least {1 / n:.3g}"
        )
    names = class_names or []
    if stratify:
        present, counts = np.unique(y, return_counts=True)
        rarest = int(np.argmin(counts))
        rare_name = names[present[rarest]] if present[rarest] < len(names) else str(present[rarest])
        # Enough for the rarest class to expect one sample; a stratified draw rounds to the nearest.
        needed = f"{1 / counts[rarest]:.3g}"
        if n_keep < len(present) or counts[rarest] < 2:
            raise DataError(
                f"{source}: data.train_fraction={fraction} keeps {n_keep} of {n} train samples, but the "
                f"{len(present)} classes each need at least one (class {rare_name!r} has "
                f"{int(counts[rarest])} in train); raise data.train_fraction to about {needed} or more"
            )
    if n_keep == n:  # a fraction just below 1 on few samples rounds back to all of them
        return np.arange(n)
    try:
        keep, _ = train_test_split(
            np.arange(n), train_size=n_keep, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as e:  # a case the checks above missed: still a message, never a traceback
        raise DataError(f"{source}: cannot keep data.train_fraction={fraction} of train: {e}") from None
    if stratify:
        kept_classes = np.unique(y[keep])
        lost = [c for c in np.unique(y) if c not in kept_classes]
        if lost:
            lost_names = [names[c] if c < len(names) else str(c) for c in lost]
            raise DataError(
                f"{source}: data.train_fraction={fraction} keeps {n_keep} of {n} train samples and none of "
                f"class {', '.join(repr(c) for c in lost_names)}; every class needs at least one sample: "
                f"raise data.train_fraction to about {needed} or more"
            )
    return np.sort(keep)


def _tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def _float32_rows(a: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``a[rows]`` (all of ``a`` when None) as float32, in memory that torch allocates: its CPU
    allocator aligns every buffer to 64 bytes, where NumPy's malloc gives 16. The bundle's tensors
    share this memory, so they start at the same alignment in every process, and so do the BLAS
    kernels' vectorized sums over them (an evaluated loss otherwise moved in its 7th digit between
    a run and its resume, in another process's heap)."""
    n = len(a) if rows is None else len(rows)
    out = torch.empty((n, *a.shape[1:]), dtype=torch.float32).numpy()
    if rows is not None and a.dtype == np.float32:
        # mode="clip": the rows are valid indices, and the default mode ("raise") buffers a whole copy.
        np.take(a, rows, axis=0, out=out, mode="clip")
    else:
        out[...] = a if rows is None else a[rows]  # cast as astype casts (unsafe: int64 -> float32)
    return out


def _checked_arrays(
    raw: RawData, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``raw``'s x, y (and published test split) as arrays, checked for shape and values."""
    x, y = np.asarray(raw.x), np.asarray(raw.y)
    if x.ndim == 1 and not is_documents(x):
        x = x[:, None]  # N samples of one feature
    if len(x) != len(y):
        raise DataError(f"{source}: x has {len(x)} samples but y has {len(y)}; they must match")
    if len(x) == 0:
        raise DataError(f"{source}: the dataset has no samples")
    has_test = raw.x_test is not None
    if has_test != (raw.y_test is not None):
        raise DataError(f"{source}: a published test split needs both x_test and y_test")
    xt = yt = None
    if has_test:
        xt, yt = np.asarray(raw.x_test), np.asarray(raw.y_test)
        if xt.ndim == 1 and not is_documents(xt):
            xt = xt[:, None]
        if xt.shape[1:] != x.shape[1:] or len(xt) != len(yt) or yt.shape[1:] != y.shape[1:]:
            raise DataError(
                f"{source}: the test split (x_test {xt.shape}, y_test {yt.shape}) does not match the data "
                f"(x {x.shape}, y {y.shape}) in sample shape or length"
            )
        if len(xt) == 0:
            raise DataError(f"{source}: the published test split is empty")
    for arr, what in ((x, "x"), (y, "y"), (xt, "x_test"), (yt, "y_test")):
        if arr is None:
            continue
        table = what.startswith("x") and arr.ndim == 2
        if (table or what.startswith("x")) and arr.dtype == object:
            continue  # text cells of a table, or documents: read (and checked) by their step
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{source}: {what} must be numeric, got {arr.dtype}")
        if table:  # a table's missing values are imputed; infinities are not values
            if arr.dtype.kind == "f" and np.isinf(arr).any():
                raise DataError(f"{source}: {what} holds inf values; replace them or drop those samples")
        else:
            check_finite(arr, what, source)
    return x, y, xt, yt


def _classes(raw: RawData, y: np.ndarray, yt: np.ndarray | None, source: str) -> tuple[int, list[str]]:
    """Number of classes and their names; a DataError for labels that are not 0..C-1."""
    labels = y if yt is None else np.concatenate([y, yt])
    if y.ndim != 1 or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise DataError(
            f"{source}: classification labels must be integers 0..C-1 of shape [N] (got {y.dtype} "
            f"{y.shape}); pass raw labels through tunelab.data.bundle_from_arrays to encode them"
        )
    class_names = raw.class_names
    num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1
    if labels.max() >= num_classes:
        raise DataError(
            f"{source}: label {int(labels.max())} is out of range for the {num_classes} class names "
            f"{class_names}"
        )
    if len(np.unique(y)) < 2:
        raise DataError(
            f"{source}: the training data holds a single class; classification needs at least two"
        )
    return num_classes, list(class_names or [str(i) for i in range(num_classes)])


def make_bundle(
    raw: RawData, spec: DataSpec, preprocess: PreprocessSpec | None = None, *, keep_raw: bool = False
) -> DataBundle:
    """Split ``raw`` into train / val / test, clean it, and preprocess it as fit on train only.

    Without a published test split, ``spec.test_fraction`` is split off first; then
    ``spec.val_fraction`` of the remaining train becomes val. Both splits use ``spec.split_seed``
    and are stratified for classification. Exact duplicate rows (and, with
    ``preprocess.near_duplicates``, near copies) are then counted within and across the splits and
    dropped or kept (``preprocess.duplicates``). ``spec.train_fraction`` < 1
    keeps a stratified subsample of train only (see ``subsample_train``): val and test are the
    samples of the full-data run. The preprocessing (``preprocess``, default
    ``PreprocessSpec()``) is fit on the kept train samples and applied to every split; regression
    targets are standardized too (kept in ``y_mean``/``y_std`` for ``DataBundle.unscale_y``).
    ``keep_raw`` keeps train and val before preprocessing, for cross-validation's refits.

    >>> import numpy as np
    >>> raw = RawData(np.arange(40, dtype="float32")[:, None], np.arange(40, dtype="float32"), "regression")
    >>> b = make_bundle(raw, DataSpec(test_fraction=0.25, val_fraction=0.2))
    >>> [len(b.split(s)[0]) for s in ("train", "val", "test")], b.y_train.shape
    ([24, 6, 10], torch.Size([24, 1]))
    """
    _check_spec(spec)
    preprocess = preprocess or PreprocessSpec()
    source = raw.name or spec.name or "data"
    if raw.task not in ("classification", "regression"):
        raise DataError(f"{source}: task must be classification or regression, got {raw.task!r}")
    x, y, xt, yt = _checked_arrays(raw, source)
    classification = raw.task == "classification"
    num_classes: int | None = None
    names: list[str] = []
    if classification:
        num_classes, names = _classes(raw, y, yt, source)
    else:
        y = y.reshape(len(y), -1)  # regression targets are always [N, T]
        yt = None if yt is None else yt.reshape(len(yt), -1)

    # Each split is cut, cleaned and subsampled as row indices first, then copied out of x once: the
    # copies (one float32 set) are what the preprocessing then scales in place.
    has_test = xt is not None and yt is not None
    index = split_index(y, spec, classification, names, source, has_test=has_test)
    test_source = (xt, yt) if xt is not None and yt is not None else (x, y)
    if has_test:
        index["test"] = np.arange(len(test_source[1]))
    sources = {"train": (x, y), "val": (x, y), "test": test_source}
    text = x.dtype == object
    index, duplicates = drop_duplicates(sources, index, preprocess, text, classification)
    if spec.train_fraction < 1.0:
        # After val and test are cut: they stay the same samples as in the full-data run.
        keep = subsample_train(
            y[index["train"]], spec.train_fraction, spec.split_seed, classification, names, source
        )
        index["train"] = index["train"][keep]
    pooled = None
    if keep_raw:  # before the preprocessing scales the splits' copies in place
        rows = np.concatenate([index["train"], index["val"]])
        (tx, ty), test_rows = test_source, index["test"]
        pooled = RawPool(
            x[rows], y[rows], len(index["train"]), preprocess, text, tx[test_rows], ty[test_rows]
        )
    # Copies of the rows (fancy indexing copies), which preprocessed_bundle may overwrite.
    take = _float32_rows if x.dtype.kind in "biuf" else (lambda a, rows: a[rows])
    parts = {n: (take(sx, index[n]), sy[index[n]]) for n, (sx, sy) in sources.items()}

    report = dict(raw.meta.get("cleaning") or {})
    report["duplicates"] = duplicates
    bundle = preprocessed_bundle(
        raw,
        parts["train"],
        parts["val"],
        parts["test"],
        preprocess,
        num_classes=num_classes,
        class_names=names,
        report=report,
        private=True,
    )
    bundle.raw = pooled
    return bundle


def preprocessed_bundle(
    raw: RawData,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    preprocess: PreprocessSpec,
    *,
    num_classes: int | None,
    class_names: list[str],
    report: dict[str, Any] | None = None,
    private: bool = False,
) -> DataBundle:
    """The bundle of three cut splits, with the preprocessing fit on ``train`` only and applied to
    all three; ``report`` (the cleaning so far) and the fit's notes become ``DataBundle.report``.

    ``private``: the split arrays are the caller's own copies, which the preprocessing of signals
    and images may overwrite (scaled in place: no second float32 set in memory). ``test is val``
    (a cross-validation fold) is transformed once."""
    (x, y), (xv, yv), (xt, yt) = train, val, test
    same = test is val  # a cross-validation fold: its held-out part fills both slots
    classification = raw.task == "classification"
    text = x.dtype == object
    if not text and x.dtype != np.float32:
        x, xv, xt = (_float32_rows(a) for a in (x, xv, xt))
        private = True  # the float32 copies are ours
    # Fit on the train samples only; the same object is saved with a run and applied by its predictor.
    pre = Preprocessing.fit(x, y, task=raw.task, spec=preprocess, names=raw.feature_names, text=text)
    what = raw.name or "data"
    x, xv = (pre.transform(a, f"{what} {s}", in_place=private) for a, s in ((x, "train"), (xv, "val")))
    xt = xv if same else pre.transform(xt, f"{what} test", in_place=private)
    if not classification:
        y, yv, yt = (pre.transform_y(a) for a in (y, yv, yt))
    y_mean, y_std = pre.y_tensors()
    table = pre.table
    meta = dict(raw.meta)
    meta.pop("cleaning", None)
    embeddings = pre.embeddings()
    if embeddings is not None:
        meta["embeddings"] = embeddings
    text = pre.text_info()
    if text is not None:
        meta["text"] = text
    y_dtype = torch.int64 if classification else torch.float32
    # Token ids stay int64 (embedding lookups); everything else is float32.
    x_dtype = torch.int64 if x.dtype == np.int64 else torch.float32
    xv_t, yv_t = _tensor(xv, x_dtype), _tensor(yv, y_dtype)
    return DataBundle(
        x_train=_tensor(x, x_dtype),
        y_train=_tensor(y, y_dtype),
        x_val=xv_t,
        y_val=yv_t,
        x_test=xv_t if same else _tensor(xt, x_dtype),
        y_test=yv_t if same else _tensor(yt, y_dtype),
        task=raw.task,
        input_shape=tuple(int(s) for s in x.shape[1:]),
        num_outputs=int(num_classes) if num_classes is not None else int(y.shape[1]),
        num_classes=num_classes,
        name=raw.name,
        class_names=list(class_names) if classification else None,
        feature_names=list(table.columns) if table is not None else _names(raw.feature_names),
        preprocessing=pre,
        y_mean=y_mean,
        y_std=y_std,
        label_values=_label_values(raw, class_names if classification else None),
        meta=meta,
        report={**(report or {}), **pre.notes},
    )


def _names(names: list[str] | None) -> list[str] | None:
    return list(names) if names is not None else None


def refit_fold(pool: DataBundle, train: np.ndarray, held: np.ndarray) -> DataBundle:
    """A cross-validation fold of ``pool`` (a bundle made with ``keep_raw``): its train is the
    pooled train+val samples ``train``, its val (and its test slot) the samples ``held``, and the
    preprocessing is fit again on ``train`` only, as ``make_bundle`` fits it on a train split.

    The test slot holds the held-out fold, so the real test split is never in a fold's bundle.

    >>> import numpy as np
    >>> from tunelab.data import bundle_from_arrays
    >>> x, y = np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 2
    >>> pool = bundle_from_arrays(x, y, keep_raw=True)
    >>> fold = refit_fold(pool, np.arange(0, 30), np.arange(30, len(pool.raw.y)))
    >>> len(fold.x_train), float(fold.x_train.mean(0).abs().max()) < 1e-6
    (30, True)
    """
    if pool.raw is None:
        raise DataError("refit_fold: the pool was made without keep_raw=True; it holds no raw samples")
    rp = pool.raw
    raw = RawData(
        rp.x[:1],
        rp.y[:1],
        pool.task,
        class_names=pool.class_names,
        feature_names=pool.feature_names,
        name=pool.name,
        label_values=pool.label_values,
        meta={k: v for k, v in pool.meta.items() if k not in ("embeddings", "text")},
    )
    held_part = (rp.x[held], rp.y[held])
    return preprocessed_bundle(
        raw,
        (rp.x[train], rp.y[train]),
        held_part,
        held_part,
        rp.spec,
        num_classes=pool.num_classes,
        class_names=list(pool.class_names or []),
        report={k: v for k, v in pool.report.items() if k in ("rows", "duplicates")},
        private=True,  # rp.x[train] and rp.x[held] are copies (fancy indexing)
    )


def _label_values(raw: RawData, class_names: list[str] | None) -> list[Any] | None:
    if raw.task != "classification":
        return None
    if raw.label_values is not None:
        return list(raw.label_values)
    return list(class_names) if class_names is not None else None


def load_data(
    spec: DataSpec, preprocess: PreprocessSpec | None = None, *, keep_raw: bool = False
) -> DataBundle:
    """Load the dataset a recipe's ``data:`` section names, split and preprocess it as its
    ``preprocess:`` section says (see ``make_bundle``).

    >>> b = load_data(DataSpec(name="digits", params={"classes": [0, 1]}))
    >>> b.num_classes, b.input_shape
    (2, (1, 8, 8))
    """
    entry = DATASETS.get(spec.name, "data.name")
    params = entry.check(spec.params, "data")  # a DataSpec built in Python skipped the recipe's checks
    raw = entry.build(**params)
    if not raw.name:
        raw = dataclasses.replace(raw, name=entry.name)
    meta = {"loader": entry.name, "source": entry.tags.get("source", "builtin"), **raw.meta}
    return make_bundle(dataclasses.replace(raw, meta=meta), spec, preprocess, keep_raw=keep_raw)


def _numpy(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return a


def bundle_from_arrays(
    x: Any,
    y: Any,
    spec: DataSpec | None = None,
    x_test: Any = None,
    y_test: Any = None,
    task: TaskOption = "auto",
    *,
    name: str = "arrays",
    preprocess: PreprocessSpec | None = None,
    keep_raw: bool = False,
) -> DataBundle:
    """A ``DataBundle`` from your own arrays or tensors (numpy, torch, or lists).

    ``task="auto"`` infers it from ``y``: classification when ``y`` holds non-numeric values
    (strings, booleans) or integers with at most 20 distinct values; otherwise regression. Labels
    are encoded ``0..C-1`` in sorted order. ``x_test``/``y_test``, when given, are the test split;
    otherwise ``spec.test_fraction`` is split off. ``spec`` defaults to ``DataSpec()``, ``preprocess``
    to ``PreprocessSpec()``.

    >>> import torch
    >>> x, y = torch.randn(50, 2), torch.randn(50)
    >>> b = bundle_from_arrays(x, y)
    >>> b.task, b.y_train.shape[1], b.num_classes is None
    ('regression', 1, True)
    """
    spec = DataSpec(name=name) if spec is None else spec
    raw = arrays_to_raw(_numpy(x), _numpy(y), task, _numpy(x_test), _numpy(y_test), name=name, source=name)
    raw.meta.update(loader="arrays", source="arrays")
    return make_bundle(raw, spec, preprocess, keep_raw=keep_raw)
