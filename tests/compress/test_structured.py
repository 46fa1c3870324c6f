"""Structured pruning: smaller tensors, the same function as the masked model, reload without tunelab."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tunelab.compress.artifacts import save_compressed
from tunelab.compress.structured import (
    apply_channel_plan,
    input_masks,
    mask_removed_inputs_,
    output_layer,
    prune_channels,
    resize_to_state_dict,
)
from tunelab.errors import ModelError, TunelabError
from tunelab.metrics.efficiency import flops
from tunelab.models.cnn import CNN1d
from tunelab.models.mlp import mlp


def _randomize_bn(net: nn.Module) -> None:
    # Fresh BatchNorm is the identity map; non-trivial statistics make the equivalence test bite.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))


MODELS = {
    "cnn1d": lambda: CNN1d((1, 40), 10, channels=(8, 16), hidden=(32,)),
    "mlp": lambda: mlp((1, 40), 10, hidden=(64, 32)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_pruned_model_is_smaller_and_computes_what_the_masked_model_computes(name, scope):
    torch.manual_seed(0)
    net = MODELS[name]()
    _randomize_bn(net)
    dense = copy.deepcopy(net).eval()
    shapes = {n: p.shape for n, p in dense.named_parameters()}
    result = prune_channels(net, torch.randn(2, 1, 40), 0.5, scope=scope)
    net.eval()
    # Every pruned layer's weight tensor is smaller; the output layer keeps its 10 outputs.
    smaller = [n for n, p in net.named_parameters() if p.shape != shapes[n]]
    assert smaller and all(p.numel() <= shapes[n].numel() for n, p in net.named_parameters())
    assert output_layer(net).weight.shape[0] == 10
    assert result.params_after == sum(p.numel() for p in net.parameters()) < result.params_before
    # The dense model with the removed channels' input columns zeroed is the same function.
    mask_removed_inputs_(dense, result)
    x = torch.randn(16, 1, 40)
    with torch.no_grad():
        torch.testing.assert_close(net(x), dense(x), rtol=1e-5, atol=1e-5)


def test_layerwise_ratio_removes_that_fraction_of_each_hidden_layer():
    net = nn.Sequential(nn.Linear(8, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(), nn.Linear(20, 3))
    r = prune_channels(net, torch.zeros(2, 8), 0.25)
    assert r.widths == {"0": (8, 30), "2": (30, 15), "4": (15, 3)}
    assert sorted(len(v) for v in r.removed_out.values()) == [5, 10]


def test_flops_of_the_pruned_model_are_hand_computed():
    net = nn.Sequential(nn.Linear(8, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(), nn.Linear(20, 3))
    assert flops(net, torch.zeros(1, 8)) == 2 * (8 * 40 + 40 * 20 + 20 * 3)
    prune_channels(net, torch.zeros(2, 8), 0.5)
    assert flops(net, torch.zeros(1, 8)) == 2 * (8 * 20 + 20 * 10 + 10 * 3)


def test_errors():
    with pytest.raises(TunelabError, match="ratio"):
        prune_channels(nn.Linear(3, 2), torch.zeros(2, 3), 1.0)
    with pytest.raises(ModelError, match="removed nothing"):
        prune_channels(nn.Sequential(nn.Linear(3, 2)), torch.zeros(2, 3), 0.5)  # only the output layer
    with pytest.raises(ModelError, match="no Linear or Conv"):
        output_layer(nn.ReLU())


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_saved_pruned_model_reloads_without_tunelab_pruning_code(tmp_path):
    torch.manual_seed(0)
    net = MODELS["cnn1d"]()
    prune_channels(net, torch.randn(2, 1, 40), 0.5)
    net.eval()
    x = torch.randn(5, 1, 40)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(net(x), tmp_path / "y.pt")
    out = save_compressed(net, "structured", tmp_path / "row", x[:1], {"row": "structured-0.5"})
    assert {"model.pt", "model.pt2", "meta.json"} <= set(out["files"]) and not out["notes"]
    # The whole module, loaded with Torch-Pruning and tunelab.compress made unimportable.
    proc = _run_isolated(
        f"""
        import sys
        sys.modules["torch_pruning"] = None
        sys.modules["tunelab.compress"] = None
        sys.modules["tunelab.methods.pruning"] = None
        import torch
        m = torch.load({str(tmp_path / "row" / "model.pt")!r}, weights_only=False).eval()
        x, y = torch.load({str(tmp_path / "x.pt")!r}), torch.load({str(tmp_path / "y.pt")!r})
        torch.testing.assert_close(m(x), y)
        print("ok", m.features[0].out_channels)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "4"]
    # The exported program: torch alone, no tunelab at all, any batch size.
    proc = _run_isolated(
        f"""
        import sys
        sys.modules["tunelab"] = None
        import torch
        m = torch.export.load({str(tmp_path / "row" / "model.pt2")!r}).module()
        x, y = torch.load({str(tmp_path / "x.pt")!r}), torch.load({str(tmp_path / "y.pt")!r})
        torch.testing.assert_close(m(x), y)
        torch.testing.assert_close(m(x[:1]), y[:1])
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def _resnet() -> nn.Module:
    from tunelab.models.resnet import ResNet

    return ResNet((1, 40), 10, channels=[8, 16], blocks_per_stage=1)


@pytest.mark.parametrize("make", [MODELS["cnn1d"], MODELS["mlp"], _resnet], ids=["cnn1d", "mlp", "resnet"])
def test_a_plan_replays_on_a_twin_trained_further(make):
    # The channels are chosen on one model; the plan removes the same ones from a copy whose
    # weights moved on since (as channel_prune does each epoch): same widths, and the same
    # function as that copy with the removed inputs masked.
    torch.manual_seed(0)
    net = make()
    _randomize_bn(net)
    x = torch.randn(4, 1, 40)
    plan = prune_channels(copy.deepcopy(net), x, 0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # "trained further": the magnitude ranking changes
    narrow = apply_channel_plan(copy.deepcopy(net), x, plan).eval()
    masked = copy.deepcopy(net)
    for name, mask in input_masks(masked, plan).items():
        dict(masked.named_modules())[name].weight.data.mul_(mask)
    masked.eval()
    assert {n: w for n, w in plan.widths.items()} == {
        n: (m.weight.shape[1] * getattr(m, "groups", 1), m.weight.shape[0])
        for n, m in narrow.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d))
    }
    torch.testing.assert_close(narrow(x), masked(x), atol=1e-5, rtol=1e-5)


def test_a_narrowed_checkpoint_loads_into_the_recipe_architecture():
    torch.manual_seed(0)
    net = MODELS["cnn1d"]()
    _randomize_bn(net)
    x = torch.randn(4, 1, 40)
    prune_channels(net, x, 0.5)
    fresh = resize_to_state_dict(MODELS["cnn1d"](), net.state_dict())
    fresh.load_state_dict(net.state_dict())
    net.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), net(x))
    convs = [m for m in fresh.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 8)]
    # Another rank (or another layer type) is another architecture: a clear error, no guess.
    bad = {k: v for k, v in net.state_dict().items()}
    key = next(k for k in bad if k.endswith("weight") and bad[k].dim() == 3)
    bad[key] = bad[key][:, :, 0]
    with pytest.raises(ModelError, match=r"only the widths of Linear, Conv and BatchNorm"):
        resize_to_state_dict(MODELS["cnn1d"](), bad)
