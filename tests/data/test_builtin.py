"""Built-in datasets: shapes, dtypes, the mnist1d cache, the digits class subset, and a contract
test over every dataset that needs no file."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import datasets as skd

from tunelab.data import DATASETS, builtin, load_data
from tunelab.errors import RecipeError
from tunelab.recipe import load_recipe
from tunelab.spec import DataSpec


@pytest.fixture(scope="session")
def fresh_mnist1d() -> dict[str, np.ndarray]:
    """MNIST-1D straight from the mnist1d package, independent of tunelab's loader."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return {k: d[k] for k in ("x", "y", "x_test", "y_test")}


def _assert_equals_fresh(raw: object, fresh: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(raw.x[:, 0, :], fresh["x"].astype(np.float32))
    np.testing.assert_array_equal(raw.x_test[:, 0, :], fresh["x_test"].astype(np.float32))
    np.testing.assert_array_equal(raw.y, fresh["y"])
    np.testing.assert_array_equal(raw.y_test, fresh["y_test"])


# --- mnist1d -----------------------------------------------------------------------------------


def test_mnist1d_shapes_and_published_test_split(fresh_mnist1d: dict[str, np.ndarray]) -> None:
    raw = builtin.mnist1d()
    assert raw.x.shape == (4000, 1, 40) and raw.x.dtype == np.float32
    assert raw.x_test.shape == (1000, 1, 40) and raw.x_test.dtype == np.float32
    assert raw.y.dtype == np.int64 and set(raw.y.tolist()) == set(range(10))
    assert raw.class_names == [str(i) for i in range(10)]
    _assert_equals_fresh(raw, fresh_mnist1d)

    b = load_data(DataSpec(name="mnist1d", test_fraction=0.5))
    # The published test split is kept as it is: test_fraction does not apply.
    assert b.summary()["sizes"] == {"train": 3200, "val": 800, "test": 1000}
    assert b.input_shape == (1, 40) and b.num_classes == 10


@pytest.fixture
def counted_generator(monkeypatch: pytest.MonkeyPatch, fresh_mnist1d: dict[str, np.ndarray]) -> list[int]:
    """Replace the ~2 s generation by the session's fresh arrays; count the calls."""
    calls: list[int] = []

    def generate() -> dict[str, np.ndarray]:
        calls.append(1)
        return {
            k: v.astype(np.float32)[:, None, :] if k.startswith("x") else v.astype(np.int64)
            for k, v in fresh_mnist1d.items()
        }

    monkeypatch.setattr(builtin, "generate_mnist1d", generate)
    return calls


def test_mnist1d_cache_is_written_once_then_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted_generator: list[int],
    fresh_mnist1d: dict[str, np.ndarray],
) -> None:
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    first = builtin.mnist1d()
    assert counted_generator == [1]
    files = list((tmp_path / "cache").glob("mnist1d_*.npz"))
    assert len(files) == 1 and not list((tmp_path / "cache").glob("*.tmp"))  # no temp file left behind
    second = builtin.mnist1d()
    assert counted_generator == [1]  # served from the cache
    _assert_equals_fresh(first, fresh_mnist1d)
    _assert_equals_fresh(second, fresh_mnist1d)


def test_mnist1d_damaged_cache_is_regenerated(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted_generator: list[int],
    fresh_mnist1d: dict[str, np.ndarray],
) -> None:
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    key = builtin._mnist1d_key(builtin._mnist1d_args())
    path = builtin._mnist1d_cache_path(key)
    path.write_bytes(b"PK\x03\x04 truncated archive")
    raw = builtin.mnist1d()
    assert counted_generator == [1]
    _assert_equals_fresh(raw, fresh_mnist1d)
    # The damaged file was replaced by a good one.
    assert builtin._read_cache(path, key, builtin._expected_shapes(builtin._mnist1d_args())) is not None


def test_generation_leaves_global_random_state_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import mnist1d.data

    def reseeding_make_dataset(args: object) -> dict[str, np.ndarray]:
        np.random.seed(42)  # what mnist1d's make_dataset does through set_seed
        random.seed(42)
        z = np.zeros((2, 40))
        return {"x": z, "y": np.zeros(2, int), "x_test": z, "y_test": np.zeros(2, int)}

    monkeypatch.setattr(mnist1d.data, "make_dataset", reseeding_make_dataset)
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    d = builtin.generate_mnist1d()
    assert d["x"].shape == (2, 1, 40) and d["x"].dtype == np.float32
    assert np.random.random() == expected_np and random.random() == expected_py


def test_mnist1d_cache_with_wrong_shapes_or_key_is_not_trusted(tmp_path: Path) -> None:
    args = builtin._mnist1d_args()
    key = builtin._mnist1d_key(args)
    shapes = builtin._expected_shapes(args)
    assert shapes == {"x": (4000, 1, 40), "y": (4000,), "x_test": (1000, 1, 40), "y_test": (1000,)}
    good = {k: np.zeros(s, np.int64 if k.startswith("y") else np.float32) for k, s in shapes.items()}

    path = tmp_path / "c.npz"
    builtin._write_cache(path, key, good)
    assert builtin._read_cache(path, key, shapes) is not None
    assert builtin._read_cache(path, key + "other version", shapes) is None

    short = dict(good, x=np.zeros((3999, 1, 40), np.float32))
    builtin._write_cache(path, key, short)
    assert builtin._read_cache(path, key, shapes) is None

    wrong_dtype = dict(good, y=np.zeros(4000, np.float64))
    builtin._write_cache(path, key, wrong_dtype)
    assert builtin._read_cache(path, key, shapes) is None
    assert builtin._read_cache(tmp_path / "missing.npz", key, shapes) is None


# --- scikit-learn sets -------------------------------------------------------------------------


def test_digits_are_one_channel_images_in_unit_range() -> None:
    raw = builtin.digits()
    assert raw.x.shape == (1797, 1, 8, 8) and raw.x.dtype == np.float32
    assert raw.x.min() == 0.0 and raw.x.max() == 1.0
    np.testing.assert_allclose(raw.x[:, 0] * 16, skd.load_digits().images)
    assert raw.class_names == [str(i) for i in range(10)] and raw.x_test is None


def test_digits_classes_subset_is_relabelled_in_given_order() -> None:
    full = skd.load_digits()
    raw = builtin.digits(classes=[9, 5, 7])
    keep = np.isin(full.target, [9, 5, 7])
    assert len(raw.y) == keep.sum()
    assert raw.class_names == ["9", "5", "7"]
    # 9 -> 0, 5 -> 1, 7 -> 2, sample for sample.
    np.testing.assert_array_equal(raw.y, np.select([full.target[keep] == d for d in (9, 5, 7)], [0, 1, 2]))
    np.testing.assert_allclose(raw.x[:, 0] * 16, full.images[keep])

    b = load_data(DataSpec(name="digits", params={"classes": [5, 6, 7, 8, 9]}))
    assert b.num_classes == 5 and b.class_names == ["5", "6", "7", "8", "9"]
    assert set(b.y_train.tolist()) == set(range(5))


@pytest.mark.parametrize(
    ("classes", "needle"),
    [([3, 3], "repeated"), ([1, 10], "between 0 and 9"), ([-1, 2], "between 0 and 9"), ([4], "at least two")],
)
def test_digits_bad_classes_name_the_field(classes: list[int], needle: str) -> None:
    with pytest.raises(RecipeError, match=r"data\.classes") as e:
        builtin.digits(classes=classes)
    assert needle in str(e.value)
    # The same check runs when a recipe is validated, before anything loads.
    with pytest.raises(RecipeError, match=r"data\.classes") as e:
        DATASETS.get("digits").check({"classes": classes}, "data")
    assert needle in str(e.value)


@pytest.mark.parametrize(
    ("name", "shape", "n_classes", "first_feature"),
    [
        ("iris", (150, 4), 3, "sepal length (cm)"),
        ("wine", (178, 13), 3, "alcohol"),
        ("breast_cancer", (569, 30), 2, "mean radius"),
    ],
)
def test_tabular_classification_sets(
    name: str, shape: tuple[int, int], n_classes: int, first_feature: str
) -> None:
    raw = DATASETS.get(name).build()
    assert raw.x.shape == shape and raw.x.dtype == np.float32
    assert raw.y.dtype == np.int64 and sorted(set(raw.y.tolist())) == list(range(n_classes))
    assert len(raw.class_names) == n_classes
    assert raw.feature_names[0] == first_feature and len(raw.feature_names) == shape[1]
    assert raw.task == "classification" and raw.x_test is None


def test_diabetes_is_regression() -> None:
    raw = builtin.diabetes()
    assert raw.task == "regression" and raw.x.shape == (442, 10)
    assert raw.y.dtype == np.float32 and raw.y.shape == (442,)
    np.testing.assert_allclose(raw.y, skd.load_diabetes().target)
    assert raw.class_names is None and len(raw.feature_names) == 10


# --- contract: every dataset that needs no file ------------------------------------------------


FILELESS = [e.name for e in DATASETS if not any(p.required for p in e.params)]


def test_fileless_entries_are_the_builtins() -> None:
    assert set(FILELESS) >= {"mnist1d", "digits", "iris", "wine", "breast_cancer", "diabetes"}
    assert "csv" not in FILELESS and "npz" not in FILELESS


@pytest.mark.parametrize("name", FILELESS)
def test_dataset_contract(name: str) -> None:
    entry = DATASETS.get(name)
    assert entry.description and "\n" not in entry.description
    raw = entry.build()
    total = len(raw.x) + (0 if raw.x_test is None else len(raw.x_test))
    b = load_data(DataSpec(name=name))

    sizes = b.summary()["sizes"]
    assert sum(sizes.values()) == total and min(sizes.values()) > 0
    for split in ("train", "val", "test"):
        x, y = b.split(split)
        # Text datasets give int64 token ids (tunelab.data.tokenize); every other one float32.
        assert x.dtype == (torch.int64 if b.meta.get("text") else torch.float32) and torch.isfinite(x).all()
        assert tuple(x.shape[1:]) == b.input_shape == b.preprocessing.output_shape(raw.x.shape[1:])
        assert len(x) == len(y)
        if b.task == "classification":
            assert y.dtype == torch.int64 and y.ndim == 1
            assert 0 <= int(y.min()) and int(y.max()) < b.num_classes == b.num_outputs
        else:
            assert y.dtype == torch.float32 and y.ndim == 2 and y.shape[1] == b.num_outputs
            assert torch.isfinite(y).all()
    json.dumps(b.summary())  # JSON-able, for reports
    json.dumps(b.preprocessing.to_json())
    json.dumps(b.card())  # a run's data.json
    assert b.name == name


def test_penguins_reads_through_the_csv_loader_and_counts_the_rows_without_sex():
    b = load_data(DataSpec(name="penguins"))
    assert b.class_names == ["female", "male"] and sum(b.summary()["sizes"].values()) == 333
    assert b.report["rows"] == {"read": 344, "dropped_missing_target": 11, "target": "sex"}
    assert set(b.report["encoded"]) == {"species", "island", "year"}  # text, and 3 years
    card = b.card()
    assert card["dataset"]["loader"] == "penguins" and card["table"] and card["target_column"] == "sex"
    species = load_data(DataSpec(name="penguins", params={"target": "species"}))
    assert species.class_names == ["Adelie", "Chinstrap", "Gentoo"]
    with pytest.raises(RecipeError, match=r'data\.target: got \'sexx\'.*did you mean "sex"'):
        load_recipe({"data": {"name": "penguins", "target": "sexx"}})
