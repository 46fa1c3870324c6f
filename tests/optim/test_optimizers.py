"""Optimizers and parameter groups (tunelab.optim.optimizers): contract tests over every registry
entry, the decay split, frozen parameters, layer blocks and discriminative learning rates, and the
errors' recipe paths."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError
from tunelab.optim.optimizers import (
    OPTIMIZERS,
    build_optimizer,
    layer_blocks,
    param_groups,
)
from tunelab.spec import OptimizerSpec


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _opt(name: str = "sgd", **params: Any) -> torch.optim.Optimizer:
    return build_optimizer(_net(), OptimizerSpec(name, params=params))


# --- optimizers --------------------------------------------------------------------------------

TORCH_CLASS = {
    "gd": torch.optim.SGD,
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


def test_registry_lists_the_documented_optimizers() -> None:
    assert OPTIMIZERS.names() == sorted(TORCH_CLASS)
    for entry in OPTIMIZERS:
        assert entry.description and "\n" not in entry.description
        assert {p.name for p in entry.params} >= {"lr", "weight_decay"}


@pytest.mark.parametrize("name", sorted(TORCH_CLASS))
def test_optimizer_builds_torch_class_with_signature_defaults(name: str) -> None:
    opt = _opt(name)
    assert type(opt) is TORCH_CLASS[name]
    decay, no_decay = opt.param_groups
    assert (decay["name"], no_decay["name"]) == ("decay", "no_decay")
    # Every recipe parameter reaches torch under its own name with the signature's default.
    for p in OPTIMIZERS.get(name).params:
        assert decay[p.name] == p.default, p.name
    assert no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("name", "momentum", "nesterov"),
    [("gd", 0.0, False), ("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)],
)
def test_sgd_family_momentum_flags(name: str, momentum: float, nesterov: bool) -> None:
    group = _opt(name).param_groups[0]
    assert group["momentum"] == momentum
    assert group["nesterov"] is nesterov
    assert group["dampening"] == 0


def test_adam_family_defaults_and_decoupled_decay() -> None:
    adam, adamw = _opt("adam").param_groups[0], _opt("adamw").param_groups[0]
    assert adam["lr"] == adamw["lr"] == 1e-3
    assert adam["betas"] == adamw["betas"] == (0.9, 0.999)
    assert adam["weight_decay"] == 0.0 and adamw["weight_decay"] == 0.01
    assert adam["decoupled_weight_decay"] is False and adamw["decoupled_weight_decay"] is True


def test_recipe_values_override_defaults() -> None:
    opt = _opt("adam", lr="5e-3", betas=[0.8, 0.99], weight_decay=0.1, amsgrad=True)
    decay, no_decay = opt.param_groups
    assert decay["lr"] == no_decay["lr"] == 5e-3  # YAML's "5e-3" string read as a number
    assert decay["betas"] == (0.8, 0.99)
    assert decay["amsgrad"] is True
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_only_gd_is_full_batch() -> None:
    assert [e.name for e in OPTIMIZERS if e.tags.get("full_batch")] == ["gd"]


@pytest.mark.parametrize("name", sorted(TORCH_CLASS))
def test_each_optimizer_lowers_a_least_squares_loss(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    net = nn.Linear(4, 1)
    opt = build_optimizer(net, OptimizerSpec(name))
    losses = []
    for _ in range(5):
        loss = nn.functional.mse_loss(net(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]


# --- parameter groups --------------------------------------------------------------------------


def test_bias_and_norm_params_go_to_the_no_decay_group() -> None:
    net = _net()
    lin1, bn, lin2 = net[0], net[1], net[3]
    groups = param_groups(net)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(lin1.weight), id(lin2.weight)}
    assert ids[1] == {id(lin1.bias), id(bn.weight), id(bn.bias), id(lin2.bias)}
    assert groups[1]["weight_decay"] == 0.0 and "weight_decay" not in groups[0]


def test_decay_bias_and_norm_puts_everything_in_one_decayed_group() -> None:
    net = _net()
    opt = build_optimizer(net, OptimizerSpec("sgd", decay_bias_and_norm=True, params={"weight_decay": 0.1}))
    (group,) = opt.param_groups
    assert group["name"] == "decay" and group["weight_decay"] == 0.1
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}


def test_frozen_params_are_kept_and_an_all_frozen_model_fails() -> None:
    # Frozen parameters stay in the optimizer so a method can unfreeze them later (gradual
    # unfreezing); a model with nothing trainable at all is still an error, not a silent no-op.
    net = _net()
    net[0].requires_grad_(False)
    kept = [p for g in param_groups(net) for p in g["params"]]
    assert {id(p) for p in kept} == {id(p) for p in net.parameters()} and len(kept) == 6
    net.requires_grad_(False)
    with pytest.raises(ModelError, match="no trainable parameters"):
        build_optimizer(net, OptimizerSpec("adam"))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_a_param_frozen_at_build_time_is_untouched_then_trained_once_unfrozen(name: str) -> None:
    # Weight decay included: torch optimizers skip parameters whose grad is None, so a frozen
    # parameter gets neither a step nor decay (AdamW's decoupled decay would shrink it otherwise).
    net = _net()
    opt = build_optimizer(net, OptimizerSpec(name, params={"weight_decay": 0.1}))
    net[0].requires_grad_(False)
    frozen_before = net[0].weight.detach().clone()
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    assert torch.equal(net[0].weight, frozen_before)
    net[0].requires_grad_(True)
    step()
    assert not torch.equal(net[0].weight, frozen_before)


def test_model_without_decayed_weights_gets_a_single_no_decay_group() -> None:
    (group,) = param_groups(nn.BatchNorm1d(3))
    assert group["name"] == "no_decay" and len(group["params"]) == 2


# --- optimizer errors --------------------------------------------------------------------------


def test_unknown_optimizer_names_the_path_and_suggests(raises_at) -> None:
    err = raises_at("optimizer.name", lambda: _opt("adamm"))
    assert 'did you mean "adam' in str(err)


@pytest.mark.parametrize(
    ("name", "params", "path"),
    [
        ("sgd", {"lr": 0}, "optimizer.lr"),
        ("adam", {"lr": -1e-3}, "optimizer.lr"),
        ("adam", {"betas": [0.9]}, "optimizer.betas"),
        ("adam", {"betas": [0.9, 1.0]}, "optimizer.betas[1]"),
        ("momentum", {"momentum": 1.0}, "optimizer.momentum"),
        ("nesterov", {"momentum": 0.0}, "optimizer.momentum"),
        ("adamw", {"weight_decay": -0.1}, "optimizer.weight_decay"),
        ("sgd", {"momentum": 0.9}, "optimizer.momentum"),  # sgd has none: use `momentum`
        ("rmsprop", {"alpha": "high"}, "optimizer.alpha"),
    ],
)
def test_bad_optimizer_params_name_the_path(name: str, params: dict[str, Any], path: str, raises_at) -> None:
    raises_at(path, lambda: _opt(name, **params))


# --- blocks and discriminative learning rates (layer_decay) -------------------------------------


def test_layer_blocks_open_containers_and_join_norm_layers_to_the_layer_before() -> None:
    from tunelab.models import build_model
    from tunelab.spec import ModelSpec

    cnn = build_model(ModelSpec("cnn2d", params={"channels": [4, 8], "hidden": [16]}), (1, 8, 8), 3)
    blocks = layer_blocks(cnn)
    assert [b for b, _ in blocks] == ["features.0", "features.4", "head.0", "head.4"]
    # conv + its BatchNorm form one block; every parameter is in exactly one block, in order.
    assert blocks[0][1] == ["features.0.weight", "features.1.weight", "features.1.bias"]
    assert [n for _, names in blocks for n in names] == [n for n, _ in cnn.named_parameters()]
    resnet = build_model(ModelSpec("resnet"), (1, 8, 8), 3)
    # A residual block is not a container: it stays one block.
    assert [b for b, _ in layer_blocks(resnet)] == ["stem.0", "blocks.0", "blocks.1", "blocks.2", "head.3"]


def test_layer_blocks_edge_cases() -> None:
    # A leading norm layer joins the first weighted block; a lone norm layer is one block.
    net = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert layer_blocks(net) == [("1", ["0.weight", "0.bias", "1.weight", "1.bias"])]
    assert layer_blocks(nn.BatchNorm1d(3)) == [("<model>", ["weight", "bias"])]
    # A tied parameter is listed once, in the first block holding it (the second layer is then left
    # with its 1-D bias, which joins the block before, as a norm layer would).
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    assert layer_blocks(tied) == [("0", ["0.weight", "0.bias", "1.bias"])]


def test_layer_decay_scales_each_blocks_lr_and_keeps_the_decay_split() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    spec = OptimizerSpec("adamw", layer_decay=0.5, params={"lr": 0.01, "weight_decay": 0.1})
    opt = build_optimizer(net, spec)
    rows = [(g["block"], g["name"], g["depth"], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert rows == [
        ("4", "decay", 0, 0.01, 0.1),
        ("4", "no_decay", 0, 0.01, 0.0),
        ("3", "decay", 1, 0.005, 0.1),
        ("3", "no_decay", 1, 0.005, 0.0),
        ("0", "decay", 2, 0.0025, 0.1),
        ("0", "no_decay", 2, 0.0025, 0.0),  # Linear bias + BatchNorm weight and bias
    ]
    assert len(opt.param_groups[-1]["params"]) == 3
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_layer_decay_one_keeps_the_plain_two_groups() -> None:
    groups = param_groups(_net(), layer_decay=1.0)
    assert [g["name"] for g in groups] == ["decay", "no_decay"] and "lr_scale" not in groups[0]


def test_layer_decay_out_of_range_is_a_recipe_error(raises_at) -> None:
    raises_at("optimizer.layer_decay", lambda: param_groups(_net(), layer_decay=0.0))
    raises_at("optimizer.layer_decay", lambda: param_groups(_net(), layer_decay=1.5))
