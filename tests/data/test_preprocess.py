"""The Preprocessing object: what make_bundle applies, saved as JSON, applied again by a predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tunelab.data import load_data, preprocess
from tunelab.data.preprocess import Preprocessing, Standardize, StandardizeLayer
from tunelab.errors import DataError
from tunelab.spec import DataSpec, PreprocessSpec

RAW = PreprocessSpec(scaling="none", target_scaling="none")


@pytest.mark.parametrize("name", ["digits", "iris", "diabetes"])
def test_transform_of_the_raw_splits_is_what_training_reads(name):
    spec = DataSpec(name=name)
    scaled, raw = load_data(spec), load_data(spec, RAW)
    pre = Preprocessing.from_json(json.loads(json.dumps(scaled.preprocessing.to_json())))
    for split in ("train", "val", "test"):
        got = pre.transform(raw.split(split)[0].numpy())
        assert torch.equal(torch.from_numpy(got), scaled.split(split)[0])  # bit for bit
    if scaled.task == "regression":
        y = raw.y_test.numpy().astype(np.float64)
        assert torch.equal(torch.from_numpy(pre.transform_y(y)).float(), scaled.y_test)
        out = scaled.y_test[:5]
        assert torch.equal(pre.inverse_y(out), scaled.unscale_y(out))


def test_fit_per_feature_per_channel_and_constant_columns():
    x = np.zeros((4, 2, 3))
    x[:, 0] = np.arange(4)[:, None]  # channel 0 varies, channel 1 is constant
    (step,) = Preprocessing.fit(x).x
    assert step.scope == "per_channel" and step.mean == (1.5, 0.0)
    assert step.std[0] == pytest.approx(np.arange(4).std()) and step.std[1] == 1.0
    (step,) = Preprocessing.fit(np.array([[1.0, 5.0], [3.0, 5.0]])).x  # a table: StandardScaler
    assert step.scaler == {"kind": "standard", "center": [2.0, 5.0], "scale": [1.0, 1.0]}
    assert Preprocessing.fit(x, spec=PreprocessSpec(scaling="none")) == Preprocessing()
    assert Preprocessing().transform(np.ones((2, 3), dtype=np.float64)).dtype == np.float32


def test_a_wrong_number_of_features_is_named():
    pre = Preprocessing.fit(np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(DataError, match=r"new\.csv: has shape \[2, 3\] but .* table of 4 columns"):
        pre.transform(np.zeros((2, 3)), "new.csv")
    pre = Preprocessing.fit(np.random.default_rng(0).normal(size=(10, 4, 5)))
    with pytest.raises(DataError, match=r"new\.npz: has 3 channels per sample .* fit on 4"):
        pre.transform(np.zeros((2, 3, 5)), "new.npz")


def test_json_round_trip_and_refusals():
    rng = np.random.default_rng(0)
    pre = Preprocessing.fit(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)), task="regression")
    d = pre.to_json()
    assert d["format"] == 1 and d["x"][0]["kind"] == "table" and d["y"]["scope"] == "per_target"
    assert Preprocessing.from_json(json.loads(json.dumps(d))) == pre
    with pytest.raises(
        DataError,
        match=r"unknown preprocessing step 'one_hot' \(known: standardize, minmax, table, text, features\)",
    ):
        Preprocessing.from_json({**d, "x": [{"kind": "one_hot"}]})
    with pytest.raises(DataError, match="preprocessing format 2 is not 1"):
        Preprocessing.from_json({**d, "format": 2})


def test_the_torch_layer_computes_what_the_numpy_path_does():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 3, 5, 5)) * 7 + 3).astype(np.float32)
    pre = Preprocessing.fit(x)
    layer = pre.layers(4)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).numpy(), pre.transform(x), rtol=0, atol=1e-5)
    step = Standardize("per_feature", (1.0,), (4.0,))
    assert StandardizeLayer(step)(torch.tensor([[9.0]])).item() == 2.0


def test_per_channel_statistics_are_scikit_learns_on_the_channels():
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(50, 3, 4, 4)) * np.array([2.0, 5.0, 0.5])[:, None, None] + 7).astype(np.float32)
    flat = x.transpose(0, 2, 3, 1).reshape(-1, 3).astype(np.float64)  # [N * H * W, C]
    (std,) = Preprocessing.fit(x).x
    ref = StandardScaler().fit(flat)
    np.testing.assert_allclose(std.mean, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(std.std, ref.scale_, rtol=1e-12)
    (mm,) = Preprocessing.fit(x, spec=PreprocessSpec(scaling="minmax", minmax_range=(-1.0, 1.0))).x
    ref = MinMaxScaler(feature_range=(-1, 1)).fit(flat)
    np.testing.assert_allclose(mm.scale, ref.scale_, rtol=1e-12)
    np.testing.assert_allclose(mm.min, ref.min_, rtol=1e-12)
    scaled = Preprocessing.fit(x, spec=PreprocessSpec(scaling="minmax")).transform(x)
    assert scaled.min() == pytest.approx(0.0, abs=1e-6) and scaled.max() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(DataError, match=r"preprocess\.scaling: robust scales table columns"):
        Preprocessing.fit(x, spec=PreprocessSpec(scaling="robust"))
    with pytest.raises(DataError, match=r"preprocess\.outliers: quantile clips table columns"):
        Preprocessing.fit(x, spec=PreprocessSpec(outliers="quantile"))


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust", "none"])
def test_the_table_layer_computes_what_the_numpy_path_does(scaling):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 4, size=(200, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    spec = PreprocessSpec(scaling=scaling, outliers="quantile", missing_indicator=True)
    pre = Preprocessing.fit(x, spec=spec)
    got = pre.layers(2)(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(got, pre.transform(x), rtol=1e-5, atol=1e-5)
    assert got.shape == (200, 6)  # three columns and their missing indicators


def test_text_columns_have_no_torch_layer():
    cells = np.array([["a", "1"], ["b", "2"], ["a", "3"], ["b", "4"]], dtype=object)
    pre = Preprocessing.fit(cells, names=["c", "v"], text=True)
    with pytest.raises(DataError, match="encodes the text columns c, which a tensor cannot carry"):
        pre.layers(2)


def test_one_chunk_is_numpys_arithmetic_and_many_chunks_agree_to_float64_rounding(monkeypatch):
    rng = np.random.default_rng(0)
    a = (rng.random((300, 3, 5, 4)) * 4 + 1).astype(np.float32)
    axes = (0, 2, 3)
    whole = Standardize.fit(a)  # fits in one chunk: NumPy's mean and std, bit for bit
    assert whole.mean == tuple(a.mean(axis=axes, dtype=np.float64).tolist())
    assert whole.std == tuple(a.std(axis=axes, dtype=np.float64).tolist())
    reference = whole.apply(a).astype(np.float32)  # the whole array in float64, then rounded
    pre = Preprocessing((whole,))
    assert np.array_equal(pre.transform(a), reference)

    monkeypatch.setattr(preprocess, "CHUNK_ELEMENTS", 7 * 60)  # 7 rows a chunk, the last one short
    chunked = Standardize.fit(a)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-14)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-14)
    copy = a.copy()
    out = pre.transform(copy)
    assert np.array_equal(out, reference) and np.array_equal(copy, a)  # a new array; the input kept
    scaled = pre.transform(copy, in_place=True)
    assert scaled is copy and np.array_equal(scaled, reference)
    ints = (a * 50).astype(np.uint8)  # not float32: a new float32 array even when in place
    assert pre.transform(ints, in_place=True).dtype == np.float32 and ints.dtype == np.uint8


def test_in_place_without_scaling_returns_the_callers_float32_array():
    a = np.ones((4, 1, 3), dtype=np.float32)
    assert Preprocessing().transform(a, in_place=True) is a
    assert Preprocessing().transform(a) is not a  # without in_place, always a new array
