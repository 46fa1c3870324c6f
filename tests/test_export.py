"""tunelab.export: every format takes raw inputs and gives what the predictor gives; int8 and
missing packages are refused with what works instead."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

from tunelab import fit, load_recipe, load_run
from tunelab.data import load_data
from tunelab.errors import TunelabError
from tunelab.export import TOLERANCE, export_run
from tunelab.spec import PreprocessSpec

FAST = {"tensorboard": False, "efficiency": False}
DIGITS_CNN = {
    "data": {"name": "digits"},
    "model": {"name": "cnn2d", "channels": [8, 16], "hidden": [32], "batch_norm": True},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 64, **FAST},
}

# The raw inputs (and targets): what a user hands the predictor.
RAW = PreprocessSpec(scaling="none", target_scaling="none")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory):
    """Images, batch norm, a narrowed model and TTA's flipped views: the most the graph must hold."""
    out = tmp_path_factory.mktemp("export") / "tta"
    torch.set_num_threads(1)
    fit({**DIGITS_CNN, "methods": [{"name": "channel_prune"}, {"name": "tta"}]}, out=out)
    return out


def raw_test_x(run_dir):
    recipe = load_recipe(run_dir / "recipe.yaml")
    return load_data(recipe.data, RAW).x_test.numpy()


def test_onnx_parity_on_raw_inputs(tta_run):
    import onnx
    import onnxruntime

    r = export_run(tta_run, "onnx")
    assert r.path == tta_run / "export" / "model.onnx" and r.max_abs_diff <= TOLERANCE and r.samples == 256
    p = load_run(tta_run)
    x = raw_test_x(tta_run)[:256]  # the raw test images: no preprocessing on the caller's side
    session = onnxruntime.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"]
    got = session.run(None, {"x": x})[0]
    assert got.shape == (len(x), 10)
    assert np.abs(got - p.predict_proba(x)).max() <= TOLERANCE
    assert session.run(None, {"x": x[:1]})[0].shape == (1, 10)  # the batch axis is dynamic
    meta = {m.key: m.value for m in onnx.load(str(r.path)).metadata_props}
    assert json.loads(meta["tunelab.data"])["classes"] == [str(i) for i in range(10)]
    assert json.loads(meta["tunelab.preprocess"])["x"][0]["scope"] == "per_channel"


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_pt2_and_torchscript_reload_and_match(tta_run, tmp_path, fmt):
    out = tmp_path / f"m.{fmt}"
    r = export_run(tta_run, fmt, out)
    assert r.path == out and r.max_abs_diff <= TOLERANCE
    x = torch.from_numpy(raw_test_x(tta_run)[:50])
    if fmt == "pt2":
        loaded = torch.export.load(str(out)).module()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
            loaded = torch.jit.load(str(out))
    with torch.no_grad():
        got = loaded(x).numpy()
    assert np.abs(got - load_run(tta_run).predict_proba(x)).max() <= TOLERANCE


def test_safetensors_holds_the_weights_and_the_data_card(tta_run, tmp_path):
    from safetensors import safe_open

    r = export_run(tta_run, "safetensors", tmp_path / "m.safetensors")
    assert r.max_abs_diff == 0.0
    p = load_run(tta_run)
    with safe_open(str(r.path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    assert set(state) == set(p.model.state_dict())  # the bare model's keys (TTA holds no weights)
    assert all(torch.equal(state[k], v) for k, v in p.model.state_dict().items())
    assert json.loads(meta["tunelab.data"])["input_shape"] == [1, 8, 8]
    assert json.loads(meta["tunelab.preprocess"]) == p.preprocessing.to_json()
    assert "channel_prune" in meta["tunelab.recipe"]


def test_regression_exports_values_in_the_targets_units(tmp_path):
    recipe = {
        "data": {"name": "diabetes"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 3, **FAST},
    }
    fit(recipe, out=tmp_path / "run")
    r = export_run(tmp_path / "run", "pt2")
    x = raw_test_x(tmp_path / "run")
    with torch.no_grad():
        got = torch.export.load(str(r.path)).module()(torch.from_numpy(x)).numpy()
    assert got.shape == (len(x), 1)
    np.testing.assert_allclose(got[:, 0], load_run(tmp_path / "run").predict(x), rtol=1e-5, atol=1e-3)


def test_int8_is_refused_but_for_pt2_or_a_dequantized_copy(tmp_path):
    fit({**DIGITS_CNN, "methods": [{"name": "quantize"}]}, out=tmp_path / "run")
    for fmt in ("onnx", "torchscript", "safetensors"):
        with pytest.raises(TunelabError, match=rf"int8 \(torchao\), which {fmt} cannot hold; what works: "):
            export_run(tmp_path / "run", fmt)
    with pytest.raises(TunelabError, match=r"--dequantize \(a float copy of the int8 weights\)"):
        export_run(tmp_path / "run", "onnx")
    assert export_run(tmp_path / "run", "pt2").max_abs_diff <= TOLERANCE
    r = export_run(tmp_path / "run", "onnx", dequantize=True)
    assert r.max_abs_diff <= TOLERANCE and "dequantized" in r.notes[0]


def test_a_missing_extra_and_an_unknown_format_are_named(tta_run, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    with pytest.raises(
        TunelabError,
        match=r"--format onnx needs the package\(s\) onnxruntime: pip install 'tunelab\[export\]'",
    ):
        export_run(tta_run, "onnx")
    with pytest.raises(
        TunelabError, match="--format: got 'tflite'; choose one of onnx, pt2, safetensors, torchscript"
    ):
        export_run(tta_run, "tflite")  # type: ignore[arg-type]
