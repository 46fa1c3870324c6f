"""Built-in datasets: small, offline, and fast enough for a study of many runs on a CPU.

Each loader is a registry entry; its keyword parameters are the recipe's ``data:`` parameters.

    >>> from tunelab.data import DATASETS
    >>> raw = DATASETS.get("iris").build()
    >>> raw.x.shape, raw.task
    ((150, 4), 'classification')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from sklearn import datasets as skd

from tunelab.cache import write_file
from tunelab.data.bundle import DATASETS, RawData
from tunelab.data.files import csv_file
from tunelab.errors import DataError, RecipeError, did_you_mean
from tunelab.io import cache_dir
from tunelab.schema import Doc

# --- mnist1d -----------------------------------------------------------------------------------


def _mnist1d_args() -> Any:
    from mnist1d.data import get_dataset_args

    return get_dataset_args()


def _mnist1d_key(args: Any) -> str:
    """A fingerprint of what determines the arrays: the generator's arguments and version."""
    settings = {k: v for k, v in vars(args).items() if k != "url"}  # the URL does not shape the data
    settings["mnist1d_version"] = importlib.metadata.version("mnist1d")
    return json.dumps(settings, sort_keys=True)


def _mnist1d_cache_path(key: str) -> Path:
    # The fingerprint is in the name, so caches of other versions or arguments never collide.
    return cache_dir() / f"mnist1d_{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"


def generate_mnist1d() -> dict[str, np.ndarray]:
    """Generate MNIST-1D with the package's default arguments (deterministic, seed 42), uncached.

    Returns float32 ``x [4000, 1, 40]``, ``x_test [1000, 1, 40]`` and int64 labels.

    >>> d = generate_mnist1d()  # about 2 s
    >>> d["x"].shape, d["x_test"].shape
    ((4000, 1, 40), (1000, 1, 40))
    """
    from mnist1d.data import make_dataset

    # make_dataset reseeds the global `random` and `numpy.random` generators; loading data must
    # not change the random stream of the user's own code, so their state is restored after.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(_mnist1d_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    # [N, 40] -> [N, 1, 40]: one channel, so 1-D convolutions apply directly.
    return {
        "x": d["x"].astype(np.float32)[:, None, :],
        "y": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32)[:, None, :],
        "y_test": d["y_test"].astype(np.int64),
    }


def _expected_shapes(args: Any) -> dict[str, tuple[int, ...]]:
    n = (args.num_samples // 10) * 10  # make_dataset draws num_samples // 10 per digit
    n_train = int(n * args.train_split)
    length = args.final_seq_length
    return {
        "x": (n_train, 1, length),
        "y": (n_train,),
        "x_test": (n - n_train, 1, length),
        "y_test": (n - n_train,),
    }


def _read_cache(path: Path, key: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing, truncated, stale or of the wrong shape."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            arrays = {k: f[k] for k in shapes}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    for k, shape in shapes.items():
        want = np.int64 if k.startswith("y") else np.float32
        if arrays[k].shape != shape or arrays[k].dtype != want:
            return None
    if not (np.isfinite(arrays["x"]).all() and np.isfinite(arrays["x_test"]).all()):
        return None
    return arrays


def _write_cache(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write atomically: a reader never sees a half-written file, even with runs in parallel."""
    try:
        write_file(path, lambda f: np.savez(f, key=np.array(key), **arrays))
    except OSError:
        # The cache only saves ~2 s per load; a read-only or full disk must not stop the run.
        pass


@DATASETS.register(
    "mnist1d",
    "MNIST-1D: 10 classes of 1-D signals [1, 40]; 4000 samples plus the published 1000-sample test split.",
    source="builtin",
    task="classification",
)
def mnist1d() -> RawData:
    """MNIST-1D (Greydanus 2020), generated locally and cached under ``cache_dir()``.

    >>> raw = mnist1d()
    >>> raw.x.shape, raw.x_test.shape
    ((4000, 1, 40), (1000, 1, 40))
    """
    args = _mnist1d_args()
    key = _mnist1d_key(args)
    path = _mnist1d_cache_path(key)
    arrays = _read_cache(path, key, _expected_shapes(args))
    if arrays is None:
        arrays = generate_mnist1d()
        _write_cache(path, key, arrays)
    return RawData(
        arrays["x"],
        arrays["y"],
        "classification",
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=[str(i) for i in range(10)],
        name="mnist1d",
        label_values=list(range(10)),
    )


# --- scikit-learn toy datasets -----------------------------------------------------------------


def _check_digit_classes(params: Mapping[str, Any], path: str) -> None:
    classes = params.get("classes")
    if classes is None:
        return
    p = f"{path}.classes"
    if not classes:
        raise RecipeError(p, classes, "must list at least two digits from 0 to 9, or be null for all ten")
    bad = [c for c in classes if not 0 <= c <= 9]
    if bad:
        raise RecipeError(p, classes, "digits must be between 0 and 9", f"remove {bad}")
    dupes = sorted({c for c in classes if list(classes).count(c) > 1})
    if dupes:
        raise RecipeError(p, classes, "each digit may appear once", f"repeated: {dupes}")
    if len(classes) < 2:
        raise RecipeError(p, classes, "must list at least two digits: one class leaves nothing to classify")


@DATASETS.register(
    "digits",
    "scikit-learn handwritten digits: 1797 images [1, 8, 8] in [0, 1], 10 classes (or a chosen subset).",
    source="builtin",
    task="classification",
    validate=_check_digit_classes,
)
def digits(
    *,
    classes: Annotated[
        list[int] | None,
        Doc("keep only these digits, relabelled 0..k-1 in this order (e.g. [5, 6, 7, 8, 9])"),
    ] = None,
) -> RawData:
    """The 8x8 digits of scikit-learn as one-channel images, pixel values scaled to [0, 1].

    ``classes`` keeps only those digits, relabelled ``0..k-1`` in the order given, so a model
    pretrained on ``[0, 1, 2, 3, 4]`` can be fine-tuned on ``[5, 6, 7, 8, 9]``.

    >>> raw = digits(classes=[7, 3])
    >>> raw.class_names, sorted(set(raw.y.tolist()))
    (['7', '3'], [0, 1])
    """
    if classes is not None:
        _check_digit_classes({"classes": list(classes)}, "data")
    d = skd.load_digits()
    # Pixel intensities are integers 0..16 (counts of set bits in 4x4 blocks of the scan).
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]  # [N, 8, 8] -> [N, 1, 8, 8]
    y = d.target.astype(np.int64)
    digits_kept = [int(t) for t in d.target_names]
    if classes is not None:
        keep = np.isin(y, classes)
        relabel = np.full(10, -1, dtype=np.int64)
        relabel[list(classes)] = np.arange(len(classes))
        x, y = x[keep], relabel[y[keep]]
        digits_kept = [int(c) for c in classes]
    names = [str(c) for c in digits_kept]
    return RawData(x, y, "classification", class_names=names, name="digits", label_values=digits_kept)


def _sklearn_tabular(bunch: Any, name: str) -> RawData:
    return RawData(
        bunch.data.astype(np.float32),
        bunch.target.astype(np.int64),
        "classification",
        class_names=[str(t) for t in bunch.target_names],
        feature_names=[str(f) for f in bunch.feature_names],
        name=name,
    )


@DATASETS.register(
    "iris", "scikit-learn iris: 150 flowers, 4 features, 3 classes.", source="builtin", task="classification"
)
def iris() -> RawData:
    """Fisher's iris flowers (tabular, 3 classes).

    >>> iris().feature_names[0]
    'sepal length (cm)'
    """
    return _sklearn_tabular(skd.load_iris(), "iris")


@DATASETS.register(
    "wine",
    "scikit-learn wine: 178 wines, 13 chemical features, 3 cultivars.",
    source="builtin",
    task="classification",
)
def wine() -> RawData:
    """Wine recognition (tabular, 3 classes).

    >>> wine().x.shape
    (178, 13)
    """
    return _sklearn_tabular(skd.load_wine(), "wine")


@DATASETS.register(
    "breast_cancer",
    "scikit-learn breast cancer Wisconsin: 569 tumours, 30 features, malignant vs benign.",
    source="builtin",
    task="classification",
)
def breast_cancer() -> RawData:
    """Breast cancer Wisconsin diagnostic (tabular, 2 classes).

    >>> breast_cancer().class_names
    ['malignant', 'benign']
    """
    return _sklearn_tabular(skd.load_breast_cancer(), "breast_cancer")


@DATASETS.register(
    "diabetes",
    "scikit-learn diabetes: 442 patients, 10 features, disease progression after a year (regression).",
    source="builtin",
    task="regression",
)
def diabetes() -> RawData:
    """Diabetes progression (tabular regression, one target).

    >>> raw = diabetes()
    >>> raw.task, raw.y.dtype
    ('regression', dtype('float32'))
    """
    d = skd.load_diabetes()
    return RawData(
        d.data.astype(np.float32),
        d.target.astype(np.float32),
        "regression",
        feature_names=[str(f) for f in d.feature_names],
        name="diabetes",
    )


# --- penguins ----------------------------------------------------------------------------------


def penguins_csv() -> Path:
    """The ``penguins.csv`` that the ``palmerpenguins`` package ships (found without importing it:
    its ``__init__`` imports pandas, which the file does not need).

    >>> penguins_csv().name
    'penguins.csv'
    """
    spec = importlib.util.find_spec("palmerpenguins")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "data" / "penguins.csv" if locations else None
    if path is None or not path.is_file():
        raise DataError(
            "penguins: the palmerpenguins package (which ships penguins.csv) is not installed; "
            "pip install palmerpenguins"
        )
    return path


PENGUIN_COLUMNS = (
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
)


def _check_penguins(params: Mapping[str, Any], path: str) -> None:
    target = params.get("target", "sex")
    if target not in PENGUIN_COLUMNS:
        raise RecipeError(
            f"{path}.target",
            target,
            "must be a column of penguins: " + ", ".join(PENGUIN_COLUMNS),
            did_you_mean(str(target), PENGUIN_COLUMNS),
        )


@DATASETS.register(
    "penguins",
    "Palmer penguins (CC-0): 344 penguins, text categories and missing values; predicts sex by default.",
    source="builtin",
    task="classification",
    validate=_check_penguins,
)
def penguins(
    *,
    # sex: the task the seeds' issue names; its 11 missing labels exercise the dropped-row count.
    target: Annotated[
        str, Doc("the column to predict (species, island, sex, or a number for regression)")
    ] = "sex",
) -> RawData:
    """The Palmer penguins table, read by the same CSV loader as a user's file (``csv``).

    Columns: species, island, sex (text), bill / flipper measurements and body mass (numbers, a
    few missing), year. Rows whose target is missing are dropped and counted.

    >>> raw = penguins()
    >>> raw.x.shape, raw.class_names, raw.meta["cleaning"]["rows"]["dropped_missing_target"]
    ((333, 7), ['female', 'male'], 11)
    """
    raw = csv_file(path=str(penguins_csv()), target=target)
    raw.name = "penguins"
    return raw
