"""FLOPs and parameter counts of small layers against hand-computed values, before and after pruning."""

from __future__ import annotations

import torch
from torch import nn

from tunelab.compress.prune import count_nonzero_params, prune_magnitude_, weight_sparsity
from tunelab.compress.structured import prune_channels
from tunelab.metrics.efficiency import count_parameters, flops


def test_conv1d_and_linear_counts_by_hand():
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10, 5))
    # Conv: 4·2·3 weights + 4 biases; Linear: 40·5 + 5.
    assert count_parameters(net)["params"] == 28 + 205 == count_nonzero_params(net)["params"]
    # A multiply-add is 2 FLOPs: conv 2·(10 positions · 4 out · 2 in · 3 taps), linear 2·40·5.
    assert flops(net, torch.zeros(1, 2, 10)) == 2 * 10 * 4 * 2 * 3 + 2 * 40 * 5
    assert flops(net, torch.zeros(3, 2, 10)) == 3 * (480 + 400)  # per batch


def test_conv2d_counts_by_hand():
    conv = nn.Conv2d(3, 8, 3, stride=2, bias=False)  # 9x9 input -> 4x4 output
    assert count_parameters(conv)["params"] == 8 * 3 * 3 * 3
    assert flops(conv, torch.zeros(1, 3, 9, 9)) == 2 * (4 * 4) * 8 * (3 * 3 * 3)


def test_unstructured_pruning_counts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(40, 5))
    prune_magnitude_(net, 0.75, "layerwise")
    # 24 conv weights -> 18 zero; 200 linear weights -> 150 zero; the 9 biases stay.
    assert weight_sparsity(net) == {"weights": 224, "zeros": 168, "sparsity": 0.75}
    assert count_nonzero_params(net) == {"params": 233, "nonzero": 233 - 168}
    # Dense kernels multiply the zeros too: the counted FLOPs do not change (reported as such).
    assert flops(net, torch.zeros(1, 2, 10)) == 880


def test_structured_pruning_counts():
    net = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10, 5))
    prune_channels(net, torch.zeros(2, 2, 10), 0.5)
    # 4 conv channels left: 4·2·3 + 4 conv parameters, Linear 40·5 + 5; FLOPs shrink with them.
    assert count_parameters(net)["params"] == 28 + 205
    assert flops(net, torch.zeros(1, 2, 10)) == 2 * 10 * 4 * 2 * 3 + 2 * 40 * 5
