"""Counts against hand-computed values; timings checked for structure and sanity, never speed."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from tunelab.errors import ModelError
from tunelab.metrics import (
    count_parameters,
    efficiency_report,
    flops,
    latency,
    model_size_bytes,
    throughput,
)
from tunelab.metrics import efficiency as efficiency_module

TINY = 1e-9  # seconds: a budget this small is spent by the first call, whatever the machine


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 5))


# --- counts ---------------------------------------------------------------------------------------


def test_count_parameters_linear() -> None:
    assert count_parameters(nn.Linear(10, 5)) == {"params": 55, "trainable": 55, "nonzero": 55}


def test_count_parameters_frozen_and_shared() -> None:
    first, second = nn.Linear(4, 3), nn.Linear(3, 2)  # 15 and 8 parameters
    first.requires_grad_(False)
    model = nn.Sequential(first, second, second)  # `second` appears twice: counted once
    assert count_parameters(model) == {"params": 23, "trainable": 8, "nonzero": 23}


def test_nonzero_after_zeroing_weights() -> None:
    layer = nn.Linear(10, 5)
    with torch.no_grad():
        layer.weight[:2].zero_()  # two rows of 10
        layer.bias[0] = 0.0
    assert count_parameters(layer) == {"params": 55, "trainable": 55, "nonzero": 55 - 20 - 1}


def test_nonzero_sees_a_pruning_mask_before_it_is_made_permanent() -> None:
    layer = nn.Linear(10, 5)
    prune.l1_unstructured(layer, "weight", amount=20)  # weight_orig stays dense; the mask zeroes 20
    counts = count_parameters(layer)
    assert counts["params"] == 55 and counts["nonzero"] == 35
    prune.remove(layer, "weight")
    assert count_parameters(layer)["nonzero"] == 35


def test_flops_linear_by_hand() -> None:
    assert flops(nn.Linear(10, 5), torch.randn(3, 10)) == 2 * 3 * 10 * 5


def test_flops_conv_by_hand() -> None:
    # 2 * batch * C_out * output positions * C_in * kernel size; bias adds are not counted.
    conv2d = nn.Conv2d(3, 4, kernel_size=3)  # 8x8 -> 6x6
    assert flops(conv2d, torch.randn(2, 3, 8, 8)) == 2 * 2 * 4 * (6 * 6) * 3 * (3 * 3)
    conv1d = nn.Conv1d(2, 3, kernel_size=5)  # length 20 -> 16
    assert flops(conv1d, torch.randn(1, 2, 20)) == 2 * 1 * 3 * 16 * 2 * 5


def test_flops_sum_over_layers_and_restore_training_flags() -> None:
    model = _mlp().train()
    model[1].eval()  # a frozen BatchNorm must stay in eval mode after measuring
    assert flops(model, torch.randn(4, 10)) == 2 * 4 * (10 * 20 + 20 * 5)
    assert model.training and model[0].training and not model[1].training


def test_size_bytes_is_about_four_bytes_per_param_and_grows() -> None:
    small, big = nn.Linear(100, 100), nn.Linear(300, 300)
    for model in (small, big):
        n = count_parameters(model)["params"]
        tensors = len(model.state_dict())
        # float32 payload, plus the zip container's fixed cost and a record per tensor.
        assert 4 * n < model_size_bytes(model) < 4 * n + 4096 + 1024 * tensors
    assert model_size_bytes(big) > model_size_bytes(small)


def test_size_bytes_counts_buffers() -> None:
    with_bn = nn.Sequential(nn.Linear(8, 64), nn.BatchNorm1d(64))
    without = nn.Sequential(nn.Linear(8, 64))
    # BatchNorm adds 2*64 parameters and 2*64 running statistics (float32), plus a step counter.
    assert model_size_bytes(with_bn) - model_size_bytes(without) >= 4 * 4 * 64


# --- timings --------------------------------------------------------------------------------------


def test_latency_structure_and_sanity() -> None:
    model = _mlp().train()
    r = latency(model, torch.randn(1, 10), warmup=2, repeats=20, budget_s=0.05)
    assert set(r) == {"median_ms", "p95_ms", "repeats"}
    assert 0 < r["median_ms"] <= r["p95_ms"]
    assert efficiency_module.MIN_REPEATS <= r["repeats"] <= 20
    assert model.training and all(m.training for m in model.modules())


def test_latency_keeps_a_minimum_of_repeats_when_the_budget_is_spent() -> None:
    r = latency(nn.Linear(4, 2), torch.randn(1, 4), warmup=50, repeats=50, budget_s=TINY)
    assert r["repeats"] == efficiency_module.MIN_REPEATS
    # ...but never more than asked for.
    assert latency(nn.Linear(4, 2), torch.randn(1, 4), repeats=2, budget_s=TINY)["repeats"] == 2


def test_latency_runs_all_repeats_within_a_generous_budget() -> None:
    r = latency(nn.Linear(4, 2), torch.randn(1, 4), warmup=1, repeats=8, budget_s=30.0)
    assert r["repeats"] == 8


def test_latency_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeats"):
        latency(nn.Linear(4, 2), torch.randn(1, 4), repeats=0)
    with pytest.raises(ValueError, match="budget_s"):
        latency(nn.Linear(4, 2), torch.randn(1, 4), budget_s=0)


def test_throughput_structure_and_sanity() -> None:
    model = _mlp().train()
    r = throughput(model, torch.randn(256, 10), budget_s=0.05)
    assert r["batch_size"] == 256 and r["samples_per_s"] > 0
    assert efficiency_module.MIN_REPEATS <= r["repeats"] <= 10
    assert model.training


def test_timings_run_without_autograd_state() -> None:
    # inference_mode: no graph is kept, so a timed call allocates no autograd state.
    seen = []
    model = nn.Linear(4, 2)
    model.register_forward_hook(lambda m, i, o: seen.append(torch.is_inference_mode_enabled()))
    latency(model, torch.randn(1, 4), warmup=1, repeats=5, budget_s=TINY)
    assert seen and all(seen)


def test_cuda_and_cpu_synchronizers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CUDA path cannot run on a CPU-only machine; check that it is the one chosen for CUDA.
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    efficiency_module._synchronizer(torch.device("cuda:0"))()
    assert calls == [torch.device("cuda:0")]
    efficiency_module._synchronizer(torch.device("cpu"))()
    assert len(calls) == 1


# --- report ---------------------------------------------------------------------------------------


def test_efficiency_report_fields() -> None:
    model = _mlp()
    rng_before = torch.get_rng_state()
    r = efficiency_report(model, (10,), "cpu", large_batch=64, budget_s=0.05)
    assert torch.equal(torch.get_rng_state(), rng_before)  # measuring does not shift a run's seed
    assert set(r) == {
        "params",
        "trainable",
        "nonzero",
        "size_bytes",
        "flops",
        "latency_ms",
        "latency_p95_ms",
        "throughput",
        "throughput_batch",
        "threads",
        "device",
    }
    assert r["params"] == r["trainable"] == 10 * 20 + 20 + 2 * 20 + 20 * 5 + 5
    assert r["flops"] == 2 * (10 * 20 + 20 * 5)  # per sample
    assert r["size_bytes"] == model_size_bytes(model)
    assert 0 < r["latency_ms"] <= r["latency_p95_ms"] and r["throughput"] > 0
    assert r["throughput_batch"] == 64 and r["threads"] == torch.get_num_threads()
    assert r["device"] == "cpu" and model.training


def test_efficiency_report_image_shape() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    r = efficiency_report(model, (1, 8, 8), "cpu", large_batch=16, budget_s=0.02)
    assert r["flops"] == 2 * 2 * 36 * 9 + 2 * 72 * 3


def test_efficiency_report_refuses_a_model_on_another_device() -> None:
    with pytest.raises(ModelError, match=r"model\.to\('meta'\)"):
        efficiency_report(nn.Linear(4, 2), (4,), "meta", budget_s=TINY)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(efficiency_module)
    assert result.attempted > 0 and result.failed == 0


def test_token_ids_are_timed_on_the_real_inputs_given():
    from tunelab.metrics.efficiency import efficiency_report

    net = nn.Sequential(nn.Embedding(50, 4), nn.Flatten(), nn.Linear(4 * 6, 2))
    ids = torch.randint(0, 50, (40, 6))
    r = efficiency_report(net, (6,), "cpu", large_batch=32, budget_s=0.02, example=ids)
    assert r["throughput_batch"] == 32 and r["flops"] == 2 * 24 * 2  # measured at batch 1
