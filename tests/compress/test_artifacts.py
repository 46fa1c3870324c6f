"""tunelab.compress.artifacts: every saved model loads back the way its meta.json says, with torch
alone (torchao for int8), and computes what the model computed. (Structured rows: see
test_structured.py, which reloads them without Torch-Pruning.)"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tunelab.compress.artifacts import LOAD_HOWTO, save_compressed
from tunelab.compress.prune import prune_magnitude_
from tunelab.compress.quantize import quantize_int8

ARCHITECTURE = "nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))"


def model() -> nn.Module:
    torch.manual_seed(0)
    return eval(ARCHITECTURE).eval()


def saved_io(net: nn.Module, directory) -> torch.Tensor:
    """An input batch and the model's output on it, saved beside the artifacts for a reload to check."""
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = net(x)
    torch.save(x, directory / "x.pt")
    torch.save(y, directory / "y.pt")
    return x


def test_an_unstructured_row_loads_with_torch_alone_from_either_file(tmp_path):
    net = model()
    prune_magnitude_(net, 0.9)
    row = tmp_path / "row"
    x = saved_io(net, tmp_path)
    out = save_compressed(net, "unstructured", row, x[:1], {"row": "unstructured-0.9", "seed": 0})
    assert set(out["files"]) == {"model.pt", "model.sparse.pt", "meta.json"} and out["notes"] == []
    assert out["files"]["model.sparse.pt"] < out["files"]["model.pt"]  # the point of the CSR file
    meta = json.loads((row / "meta.json").read_text())
    assert meta["kind"] == "unstructured" and meta["load"] == LOAD_HOWTO["unstructured"]
    assert meta["row"] == "unstructured-0.9" and meta["seed"] == 0
    dense_code, sparse_code = LOAD_HOWTO["unstructured"].split("; or the CSR file: ")
    # The documented code, run as written in the row's directory, in a process without tunelab.
    code = f"""
        import sys
        sys.modules["tunelab"] = None
        import torch
        from torch import nn
        x, y = torch.load("../x.pt"), torch.load("../y.pt")
        model = {ARCHITECTURE}.eval()
        {dense_code}
        torch.testing.assert_close(model(x), y)
        {sparse_code}
        model = {ARCHITECTURE}.eval()
        model.load_state_dict(sd)
        torch.testing.assert_close(model(x), y)
        print("ok", int((model[0].weight == 0).sum()))
        """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=row, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", str(int((net[0].weight == 0).sum()))]


def test_a_dense_row_is_its_state_dict(tmp_path):
    net = model()
    x = saved_io(net, tmp_path)
    out = save_compressed(net, "dense", tmp_path / "row", x[:1], {})
    assert set(out["files"]) == {"model.pt", "meta.json"}
    again = model()
    with torch.no_grad():
        for p in again.parameters():
            p.zero_()
    again.load_state_dict(torch.load(tmp_path / "row" / "model.pt", weights_only=True))
    torch.testing.assert_close(again(x), torch.load(tmp_path / "y.pt"), rtol=0, atol=0)


def test_an_int8_row_loads_into_a_quantized_architecture_and_matches(tmp_path):
    pytest.importorskip("torchao")
    q = quantize_int8(copy.deepcopy(model()), "int8_dynamic")
    x = saved_io(q, tmp_path)
    out = save_compressed(q, "int8", tmp_path / "row", x[:1], {"row": "int8"})
    assert json.loads((tmp_path / "row" / "meta.json").read_text())["load"] == LOAD_HOWTO["int8"]
    fresh = model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    # The documented code, run as written (its `model` is the architecture, its file the row's).
    code = LOAD_HOWTO["int8"].replace("'model.pt'", repr(str(tmp_path / "row" / "model.pt")))
    scope = {"torch": torch, "model": fresh}
    exec(code, scope)
    with torch.no_grad():
        torch.testing.assert_close(scope["model"](x), torch.load(tmp_path / "y.pt"))
    dense = save_compressed(model(), "dense", tmp_path / "dense", x[:1], {})
    assert out["files"]["model.pt"] < dense["files"]["model.pt"]  # int8 weights, not float32


def test_an_unknown_kind_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of dense, unstructured, structured, int8"):
        save_compressed(model(), "fp8", tmp_path / "row", torch.zeros(1, 64), {})
    assert not (tmp_path / "row").exists()
