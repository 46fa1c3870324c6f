"""Splits and preprocessing: stratified, deterministic by seed, statistics fit on train only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tunelab.data import DataBundle, RawData, bundle_from_arrays, load_data, make_bundle, preprocess
from tunelab.data.splits import refit_fold, split_index, subsample_train
from tunelab.errors import DataError, RecipeError
from tunelab.spec import DataSpec, PreprocessSpec

# Preprocessing that leaves inputs and regression targets as they are.
RAW = PreprocessSpec(scaling="none", target_scaling="none")


def imbalanced(n: int = 600, seed: int = 0) -> RawData:
    """Three classes in proportions 60/30/10 %, features with distinct offsets and scales."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], [int(n * 0.6), int(n * 0.3), n - int(n * 0.6) - int(n * 0.3)])
    x = rng.normal(loc=[5.0, -3.0, 100.0], scale=[2.0, 0.5, 10.0], size=(n, 3)).astype(np.float32)
    return RawData(x, y.astype(np.int64), "classification", class_names=["a", "b", "c"], name="toy")


def proportions(y: torch.Tensor, k: int) -> np.ndarray:
    return torch.bincount(y, minlength=k).numpy() / len(y)


# --- splitting ---------------------------------------------------------------------------------


def test_split_sizes_and_stratification() -> None:
    b = make_bundle(imbalanced(), DataSpec(val_fraction=0.25, test_fraction=0.2))
    # test: ceil(0.2 * 600) = 120; val: ceil(0.25 * 480) = 120; train the remaining 360.
    assert b.summary()["sizes"] == {"train": 360, "val": 120, "test": 120}
    whole = np.array([0.6, 0.3, 0.1])
    for split in ("train", "val", "test"):
        # Stratified: every split keeps the 60/30/10 proportions to within one sample.
        np.testing.assert_allclose(proportions(b.split(split)[1], 3), whole, atol=1 / 120)
    np.testing.assert_allclose(proportions(b.y_val, 3), proportions(b.y_train, 3), atol=0.01)
    counts = b.summary()["class_counts"]
    assert counts["val"] == {"a": 72, "b": 36, "c": 12}


def test_split_is_deterministic_by_seed_and_differs_across_seeds() -> None:
    raw = imbalanced()
    a = make_bundle(raw, DataSpec(split_seed=0))
    b = make_bundle(raw, DataSpec(split_seed=0))
    c = make_bundle(raw, DataSpec(split_seed=1))
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split)[0], b.split(split)[0])
        assert torch.equal(a.split(split)[1], b.split(split)[1])
    assert a.x_train.shape == c.x_train.shape
    assert not torch.equal(a.x_val, c.x_val)
    assert not torch.equal(a.x_test, c.x_test)


def test_splits_partition_the_samples() -> None:
    # Make each sample identifiable by its first feature, then check no sample is lost or repeated.
    raw = imbalanced()
    raw.x[:, 0] = np.arange(len(raw.x))
    b = make_bundle(raw, DataSpec(), RAW)
    ids = torch.cat([b.x_train[:, 0], b.x_val[:, 0], b.x_test[:, 0]]).long().sort().values
    assert torch.equal(ids, torch.arange(len(raw.x)))


def test_published_test_split_is_kept() -> None:
    raw = imbalanced(300)
    test = imbalanced(90, seed=1)
    raw.x_test, raw.y_test = test.x, test.y
    b = make_bundle(raw, DataSpec(val_fraction=0.2, test_fraction=0.5), RAW)
    assert b.summary()["sizes"] == {"train": 240, "val": 60, "test": 90}
    np.testing.assert_array_equal(b.x_test.numpy(), test.x)
    np.testing.assert_array_equal(b.y_test.numpy(), test.y)


# --- standardization ---------------------------------------------------------------------------


def test_tabular_standardization_is_fit_on_train_only() -> None:
    raw = imbalanced()
    # Shift the samples of class 2 so val/test statistics would differ from a refit.
    raw.x[raw.y == 2] += 50.0
    spec = DataSpec(val_fraction=0.3, split_seed=3)
    plain = make_bundle(raw, DataSpec(val_fraction=0.3, split_seed=3), RAW)
    scaled = make_bundle(raw, spec)

    x = plain.x_train.double().numpy()
    mean, std = x.mean(axis=0), x.std(axis=0)
    np.testing.assert_allclose(scaled.x_train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(0, unbiased=False).numpy(), 1.0, atol=1e-5)
    for split in ("val", "test"):
        expected = (plain.split(split)[0].double().numpy() - mean) / std
        np.testing.assert_allclose(scaled.split(split)[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    step = scaled.preprocessing.table  # a 2-D array is a table of numeric columns
    assert step.scaler["kind"] == "standard" and step.numeric == list(range(x.shape[1]))
    np.testing.assert_allclose(step.scaler["center"], mean, rtol=1e-6)
    np.testing.assert_allclose(step.scaler["scale"], std, rtol=1e-6)
    json.dumps(scaled.preprocessing.to_json())


def test_channel_standardization_and_constant_features() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2, 6)).astype(np.float32)
    x[:, 0] = x[:, 0] * 3 + 10  # channel 0: mean 10, std 3
    x[:, 1] = 7.0  # channel 1 constant: std 0 must not divide by zero
    y = np.arange(200) % 2
    b = make_bundle(RawData(x, y, "classification"), DataSpec())
    (step,) = b.preprocessing.x
    assert step.scope == "per_channel" and len(step.mean) == 2
    assert step.std[1] == 1.0
    ch0 = b.x_train[:, 0]
    assert abs(float(ch0.mean())) < 1e-5 and abs(float(ch0.std(unbiased=False)) - 1) < 1e-4
    assert torch.equal(b.x_train[:, 1], torch.zeros_like(b.x_train[:, 1]))
    assert torch.isfinite(b.x_val).all() and b.input_shape == (2, 6)


def test_regression_targets_are_standardized_on_train_and_unscaled() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4)).astype(np.float32)
    y = np.stack([x[:, 0] * 100 + 500, x[:, 1] - 3], axis=1).astype(np.float32)  # two targets
    plain = make_bundle(RawData(x, y, "regression"), DataSpec(), RAW)
    scaled = make_bundle(RawData(x, y, "regression"), DataSpec())
    assert scaled.num_outputs == 2 and scaled.num_classes is None and scaled.y_train.shape[1] == 2
    np.testing.assert_allclose(scaled.y_train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.y_mean.numpy(), plain.y_train.double().mean(0).numpy(), rtol=1e-6)
    for split in ("train", "val", "test"):
        back = scaled.unscale_y(scaled.split(split)[1])
        np.testing.assert_allclose(back.numpy(), plain.split(split)[1].numpy(), rtol=1e-5, atol=1e-3)
    assert plain.unscale_y(plain.y_val) is plain.y_val  # nothing to undo
    train_std = plain.y_train.double().std(0, unbiased=False).tolist()
    assert scaled.preprocessing.y.std == pytest.approx(train_std)


# --- the bundle ----------------------------------------------------------------------------------


def test_bundle_to_split_and_summary() -> None:
    b = load_data(DataSpec(name="iris"))
    moved = b.to("cpu")
    assert isinstance(moved, DataBundle) and moved is not b and moved.x_train.device.type == "cpu"
    with pytest.raises(DataError, match=r'unknown split .valid.*did you mean "val"'):
        b.split("valid")  # type: ignore[arg-type]
    s = b.summary()
    assert json.loads(json.dumps(s)) == s
    assert s["task"] == "classification" and s["input_shape"] == [4] and s["num_classes"] == 3
    assert sum(sum(c.values()) for c in s["class_counts"].values()) == 150


def test_bundle_from_arrays_numpy_and_torch() -> None:
    x = torch.randn(80, 5)
    labels = np.array(["spam", "ham"] * 40)
    b = bundle_from_arrays(x, labels, DataSpec(), preprocess=RAW)
    assert b.task == "classification" and b.class_names == ["ham", "spam"] and b.num_classes == 2
    assert b.name == "arrays"

    y = torch.randn(80, 3)
    r = bundle_from_arrays(x.numpy(), y, x_test=torch.randn(10, 5), y_test=torch.randn(10, 3))
    assert r.task == "regression" and r.num_outputs == 3 and len(r.x_test) == 10

    forced = bundle_from_arrays(x, np.arange(80) % 4, task="regression")
    assert forced.task == "regression" and forced.y_train.dtype == torch.float32


# --- errors ------------------------------------------------------------------------------------


def test_rare_class_is_named_with_count_and_fix() -> None:
    y = np.array([0] * 30 + [1] * 30 + [2])
    raw = RawData(np.zeros((61, 2), np.float32), y, "classification", class_names=["x", "y", "rare"])
    with pytest.raises(DataError) as e:
        make_bundle(raw, DataSpec())
    msg = str(e.value)
    assert "class 'rare' has only 1 sample" in msg
    assert "merge" in msg and "add samples" in msg and "data.test_fraction" in msg


def test_too_few_samples_per_class_for_the_split() -> None:
    # 10 classes of 3 samples: test takes ceil(0.1 * 30) = 3 samples, fewer than the 10 classes.
    raw = RawData(np.zeros((30, 2), np.float32), np.arange(30) % 10, "classification")
    with pytest.raises(DataError, match=r"each of the 10 classes on both sides.*data\.test_fraction"):
        make_bundle(raw, DataSpec(test_fraction=0.1))


def test_split_that_would_be_empty() -> None:
    raw = RawData(np.zeros((1, 2), np.float32), np.zeros(1, np.float32), "regression")
    with pytest.raises(DataError, match="too few to split"):
        make_bundle(raw, DataSpec())


def test_invalid_arrays_are_data_errors() -> None:
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(DataError, match="x has 10 samples but y has 9"):
        make_bundle(RawData(x, np.zeros(9, np.int64), "classification"), DataSpec())
    bad = np.zeros((10, 2, 3), np.float32)  # signals: NaN is refused (a table's is imputed)
    bad[[2, 5], 1] = np.nan
    with pytest.raises(DataError, match=r"x has NaN or inf values in 2 of 10 samples \(first: sample 2\)"):
        make_bundle(RawData(bad, np.arange(10) % 2, "classification"), DataSpec())
    inf = x.copy()
    inf[3, 0] = np.inf
    with pytest.raises(DataError, match="x holds inf values"):
        make_bundle(RawData(inf, np.arange(10) % 2, "classification"), DataSpec())
    with pytest.raises(DataError, match="single class"):
        make_bundle(RawData(x, np.zeros(10, np.int64), "classification"), DataSpec())
    with pytest.raises(DataError, match=r"integers 0\.\.C-1"):
        make_bundle(RawData(x, np.arange(10) % 2 - 1, "classification"), DataSpec())
    with pytest.raises(DataError, match="does not match the data"):
        make_bundle(
            RawData(x, np.arange(10) % 2, "classification", x_test=np.zeros((3, 4)), y_test=np.zeros(3, int)),
            DataSpec(),
        )


def test_bad_spec_and_names_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match=r'data\.name.*did you mean "iris"'):
        load_data(DataSpec(name="irsi"))
    with pytest.raises(RecipeError, match=r"data\.val_fraction.*must be > 0 and < 1"):
        make_bundle(imbalanced(), DataSpec(val_fraction=1.5))
    with pytest.raises(RecipeError, match=r"data\.clases.*unknown parameter"):
        load_data(DataSpec(name="digits", params={"clases": [1, 2]}))


# --- train_fraction: few-label subsets of train ------------------------------------------------


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.reshape(len(x), -1).tolist()}


def test_train_fraction_keeps_a_stratified_subset_and_leaves_val_and_test_alone() -> None:
    spec = DataSpec(val_fraction=0.25, test_fraction=0.2)
    full = make_bundle(imbalanced(), spec, RAW)
    part = make_bundle(imbalanced(), dataclasses.replace(spec, train_fraction=0.25), RAW)
    # floor(0.25 * 360) = 90 of the 360 train samples, in the 60/30/10 proportions of train.
    assert part.summary()["sizes"] == {"train": 90, "val": 120, "test": 120}
    np.testing.assert_allclose(proportions(part.y_train, 3), [0.6, 0.3, 0.1], atol=1 / 90)
    # Val and test are the very samples of the full-data run; train is a subset of its train.
    assert torch.equal(part.x_val, full.x_val) and torch.equal(part.x_test, full.x_test)
    assert _rows(part.x_train) <= _rows(full.x_train)


def test_train_fraction_is_deterministic_by_split_seed() -> None:
    spec = DataSpec(train_fraction=0.2)
    a, b = (make_bundle(imbalanced(), spec, RAW).x_train for _ in range(2))
    c = make_bundle(imbalanced(), dataclasses.replace(spec, split_seed=1), RAW).x_train
    assert torch.equal(a, b)
    assert _rows(a) != _rows(c)


def test_train_fraction_standardizes_on_the_kept_samples() -> None:
    b = make_bundle(imbalanced(), DataSpec(train_fraction=0.1))
    # Train statistics are those of the samples the model sees.
    np.testing.assert_allclose(b.x_train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(b.x_train.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    assert len(b.x_train) == int(0.1 * 384)


def test_train_fraction_for_regression_is_a_plain_random_subset() -> None:
    rng = np.random.default_rng(0)
    raw = RawData(rng.normal(size=(100, 2)).astype(np.float32), rng.normal(size=100), "regression")
    b = make_bundle(raw, DataSpec(train_fraction=0.5))
    assert b.summary()["sizes"] == {"train": 32, "val": 16, "test": 20}


def test_train_fraction_that_loses_a_class_names_it_and_the_fraction_needed() -> None:
    # Class "c" has 39 of the 384 train samples: 1% keeps 3 samples, not one of each class.
    with pytest.raises(DataError, match=r"train_fraction=0\.01 keeps 3 of 384") as info:
        make_bundle(imbalanced(), DataSpec(train_fraction=0.01))
    assert "'c'" in str(info.value) and "raise data.train_fraction to about 0.0256" in str(info.value)
    # Enough samples in all but one class under a stratified draw: still an error, never a silent drop.
    y = np.repeat([0, 1, 2], [200, 200, 3]).astype(np.int64)
    with pytest.raises(DataError, match="none of class '2'"):
        subsample_train(y, 0.01, seed=0, stratify=True, class_names=["0", "1", "2"])


def test_train_fraction_that_keeps_nothing_and_out_of_range() -> None:
    with pytest.raises(DataError, match="keeps none"):
        subsample_train(np.zeros(10), 0.05, seed=0, stratify=False)
    with pytest.raises(RecipeError, match=r"data\.train_fraction"):
        make_bundle(imbalanced(), DataSpec(train_fraction=0.0))
    assert list(subsample_train(np.arange(5) % 2, 1.0, seed=0, stratify=True)) == [0, 1, 2, 3, 4]


def test_train_fraction_in_a_recipe_on_digits() -> None:
    b = load_data(DataSpec(name="digits", train_fraction=0.1, params={"classes": [5, 6, 7, 8, 9]}))
    counts = b.summary()["class_counts"]["train"]
    assert sum(counts.values()) == len(b.x_train) and min(counts.values()) >= 10


# --- memory: split by index, copied once, scaled in place -------------------------------------


def test_splits_are_scaled_in_place_copies_equal_to_a_plain_split_and_standardization(monkeypatch):
    """make_bundle copies each split out of x once and scales the copies in place, a chunk of rows at
    a time: the tensors are those of x[rows] standardized in float64 on the whole train split."""
    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", 5 * 24)  # several chunks per split
    rng = np.random.default_rng(1)
    x = (rng.random((400, 2, 3, 4)) * 3).astype(np.float32)
    y = np.arange(400) % 4
    x_test, y_test = x[:50] + 1, y[:50]
    before = (x.copy(), x_test.copy())
    spec = DataSpec(val_fraction=0.25)
    b = bundle_from_arrays(x, y, spec, x_test, y_test, keep_raw=True)
    assert np.array_equal(x, before[0]) and np.array_equal(x_test, before[1])  # the caller's arrays
    index = split_index(y, spec, True, [], "arrays", has_test=True)
    train = x[index["train"]]
    mean = train.mean(axis=(0, 2, 3), dtype=np.float64).reshape(1, -1, 1, 1)
    std = train.std(axis=(0, 2, 3), dtype=np.float64).reshape(1, -1, 1, 1)
    for got, raw in ((b.x_train, train), (b.x_val, x[index["val"]]), (b.x_test, x_test)):
        np.testing.assert_allclose(got.numpy(), ((raw - mean) / std).astype(np.float32), rtol=0, atol=1e-6)
    pool = b.raw  # cross-validation's raw rows: copied before the scaling
    assert np.array_equal(pool.x, np.concatenate([train, x[index["val"]]])) and np.array_equal(
        pool.x_test, x_test
    )
    fold = refit_fold(b, np.arange(0, 200), np.arange(200, len(pool.x)))
    assert fold.x_val is fold.x_test  # the held-out fold fills both, transformed once
    held = pool.x[200:]
    fit_mean = pool.x[:200].mean(axis=(0, 2, 3), dtype=np.float64).reshape(1, -1, 1, 1)
    fit_std = pool.x[:200].std(axis=(0, 2, 3), dtype=np.float64).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(fold.x_val.numpy(), (held - fit_mean) / fit_std, rtol=0, atol=1e-6)


def test_chunked_preprocessing_trains_to_the_same_metrics(tmp_path, monkeypatch):
    from PIL import Image

    from tunelab.train import fit

    rng = np.random.default_rng(0)
    for c, shade in enumerate((60, 190)):
        (tmp_path / f"c{c}").mkdir()
        for i in range(40):
            a = np.clip(shade + rng.integers(-60, 60, size=(12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(tmp_path / f"c{c}" / f"{i}.png")
    recipe = {
        "data": {"name": "image_folder", "path": str(tmp_path), "size": [12, 12]},
        "model": {"name": "linear"},
        "train": {"epochs": 3, "batch_size": 16, "device": "cpu", "efficiency": False, "tensorboard": False},
    }
    whole = fit(recipe, save=False)  # 80 images of 432 values: one chunk, NumPy's arithmetic
    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", 432 * 3)  # 3 images a chunk
    chunked = fit(recipe, save=False)
    assert chunked.val == whole.val and chunked.test == whole.test
    assert [h["train"] for h in chunked.history] == [h["train"] for h in whole.history]


def test_integer_and_boolean_signals_are_copied_out_as_float32() -> None:
    y = np.arange(200) % 2
    ints = (np.arange(2400).reshape(200, 1, 12) % 17).astype(np.int64)
    as_float = bundle_from_arrays(ints.astype(np.float32), y, preprocess=RAW)
    for x in (ints, ints.astype(np.uint8)):
        b = bundle_from_arrays(x, y, preprocess=RAW)
        assert b.x_train.dtype == torch.float32 and torch.equal(b.x_train, as_float.x_train)
    assert torch.equal(bundle_from_arrays(ints > 8, y, preprocess=RAW).x_val, (as_float.x_val > 8).float())
