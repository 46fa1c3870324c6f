"""The Preprocessing object: what make_bundle applies, saved as JSON, applied again by a predictor."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tunelab.data import load_data
from tunelab.data.preprocess import Preprocessing, Standardize, StandardizeLayer
from tunelab.errors import DataError
from tunelab.spec import DataSpec


@pytest.mark.parametrize("name", ["digits", "iris", "diabetes"])
def test_transform_of_the_raw_splits_is_what_training_reads(name):
    spec = DataSpec(name=name)
    scaled, raw = load_data(spec), load_data(dataclasses.replace(spec, standardize=False))
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
    (step,) = Preprocessing.fit(np.array([[1.0, 5.0], [3.0, 5.0]])).x
    assert step.scope == "per_feature" and step.mean == (2.0, 5.0) and step.std == (1.0, 1.0)
    assert Preprocessing.fit(x, standardize=False) == Preprocessing()
    assert Preprocessing().transform(np.ones((2, 3), dtype=np.float64)).dtype == np.float32


def test_a_wrong_number_of_features_is_named():
    pre = Preprocessing.fit(np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(DataError, match=r"new\.csv: has 3 features per sample .* fit on 4"):
        pre.transform(np.zeros((2, 3)), "new.csv")


def test_json_round_trip_and_refusals():
    rng = np.random.default_rng(0)
    pre = Preprocessing.fit(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)), task="regression")
    d = pre.to_json()
    assert d["format"] == 1 and d["x"][0]["kind"] == "standardize" and d["y"]["scope"] == "per_target"
    assert Preprocessing.from_json(json.loads(json.dumps(d))) == pre
    with pytest.raises(DataError, match=r"unknown preprocessing step 'one_hot' \(known: standardize\)"):
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
