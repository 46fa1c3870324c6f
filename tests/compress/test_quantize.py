"""Dynamic int8 quantization: accuracy kept on a trained model, weight bytes, reload, errors."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.compress.prune import count_nonzero_params, weight_sparsity
from tunelab.compress.quantize import linear_weight_bytes, quantize_dynamic_int8, tensor_bytes
from tunelab.errors import ModelError

pytest.importorskip("torchao")


def _problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # 5 Gaussian classes in 32 dimensions, separable but not trivially (overlapping clouds).
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(5, 32, generator=torch.Generator().manual_seed(99)) * 1.2
    y = torch.randint(0, 5, (n,), generator=g)
    return centers[y] + torch.randn(n, 32, generator=g), y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 5))
    x, y = _problem(2000, 0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(5):
        for i in range(0, len(x), 100):
            opt.zero_grad()
            F.cross_entropy(net(x[i : i + 100]), y[i : i + 100]).backward()
            opt.step()
    xv, yv = _problem(2000, 1)
    return net.eval(), xv, yv


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((net(x).argmax(1) == y).float().mean())


def test_quantized_accuracy_is_within_half_a_point_of_float(trained):
    net, x, y = trained
    base = _accuracy(net, x, y)
    assert base > 0.8  # the example is trained: the bound below means something
    q = quantize_dynamic_int8(copy.deepcopy(net))
    assert type(q[0].weight).__name__ == "Int8Tensor"
    assert abs(_accuracy(q, x, y) - base) <= 0.005
    with torch.inference_mode():
        # Per-row int8 weights and activations: logits within a few percent of their range.
        diff = (q(x) - net(x)).abs().max() / net(x).abs().max()
    assert diff < 0.05


def test_linear_weights_take_about_a_quarter_of_the_bytes(trained):
    net, _, _ = trained
    q = quantize_dynamic_int8(copy.deepcopy(net))
    fp32 = linear_weight_bytes(net)
    assert fp32 == 4 * (32 * 128 + 128 * 128 + 128 * 5)
    # int8 data (1 byte per weight) + per-row fp32 scale and int8 zero point (5 bytes per row).
    assert linear_weight_bytes(q) == (32 * 128 + 128 * 128 + 128 * 5) + 5 * (128 + 128 + 5)
    assert fp32 / linear_weight_bytes(q) >= 3.5


def test_counts_work_on_quantized_weights(trained):
    net, _, _ = trained
    q = quantize_dynamic_int8(copy.deepcopy(net))
    counts = count_nonzero_params(q)
    assert counts["params"] == sum(p.numel() for p in net.parameters())
    assert counts["nonzero"] <= counts["params"]
    assert weight_sparsity(q)["weights"] == 32 * 128 + 128 * 128 + 128 * 5


def test_quantized_state_dict_reloads_with_torchao(trained):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    net, x, _ = trained
    q = quantize_dynamic_int8(copy.deepcopy(net))
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    buf.seek(0)
    fresh = copy.deepcopy(net)
    quantize_(fresh, Int8DynamicActivationInt8WeightConfig())
    fresh.load_state_dict(torch.load(buf, weights_only=True), assign=True)
    with torch.inference_mode():
        assert torch.equal(fresh(x[:8]), q(x[:8]))


def test_tensor_bytes_plain():
    assert tensor_bytes(torch.zeros(3, 5)) == 60
    assert tensor_bytes(torch.zeros(7, dtype=torch.float16)) == 14


def test_a_model_without_linear_layers_is_refused():
    with pytest.raises(ModelError, match=r"no nn\.Linear"):
        quantize_dynamic_int8(nn.Sequential(nn.Conv1d(1, 2, 3)))
