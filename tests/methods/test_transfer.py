"""Transfer-learning methods: freeze by pattern, gradual unfreezing, head re-initialization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tunelab
from tunelab.errors import RecipeError
from tunelab.methods import EVENTS, METHODS, hooks_of
from tunelab.methods.transfer import (
    Freeze,
    GradualUnfreeze,
    Reinit,
    freeze_parameters,
    match_parameters,
    output_block_patterns,
    reinit_modules,
    unfreeze_epochs,
)
from tunelab.optim import build_optimizer
from tunelab.recipe import load_recipe
from tunelab.spec import OptimizerSpec


class Net(nn.Module):
    """Three blocks: features.0 (+ its BatchNorm at features.1), features.3, head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(
            nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU()
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _problem():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)], (x, y)


def _state(state_factory, net: nn.Module, recipe_methods=(), epochs: int = 6, optimizer: str = "adamw"):
    """A TrainState whose optimizer is built before setup over every parameter, as fit does."""
    state = state_factory(net, steps_per_epoch=4)
    state.optimizer = build_optimizer(net, OptimizerSpec(optimizer, params={"lr": 0.05}))
    state.recipe = load_recipe({"train": {"epochs": epochs}, "methods": list(recipe_methods)})
    return state


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def _changed(net: nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}


# --- pure functions ----------------------------------------------------------------------------


def test_patterns_match_module_and_parameter_names() -> None:
    net = Net()
    m = match_parameters(net, ["features", "features.*", "features.0", "*.bias", "head.weight", "head.*.x"])
    assert (
        m["features"] == m["features.*"] == [n for n, _ in net.features.named_parameters(prefix="features")]
    )
    assert m["features.0"] == ["features.0.weight", "features.0.bias"]  # not features.0X...
    assert m["*.bias"] == ["features.0.bias", "features.1.bias", "features.3.bias", "head.bias"]
    assert m["head.weight"] == ["head.weight"] and m["head.*.x"] == []


def test_freeze_parameters_freezes_exactly_the_matches() -> None:
    net = Net()
    frozen = freeze_parameters(net, ["features.0", "features.1"])
    assert frozen == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        "features.3.weight",
        "features.3.bias",
        "head.weight",
        "head.bias",
    ]


def test_a_pattern_matching_nothing_is_an_error_listing_the_modules() -> None:
    net = Net()
    with pytest.raises(RecipeError) as info:
        freeze_parameters(net, ["features.*", "haed"])
    err = info.value
    assert err.path == "methods.freeze.patterns" and err.value == "haed"
    assert "features.0, features.1, features.3, head" in str(err) and 'did you mean "head"' in str(err)
    assert all(p.requires_grad for p in net.parameters())  # nothing frozen by a failed call
    # A module without parameters matches no parameter either.
    with pytest.raises(RecipeError, match="matches no parameter"):
        freeze_parameters(net, ["features.2"])
    with pytest.raises(RecipeError, match="at least one pattern"):
        freeze_parameters(net, [])


def test_unfreeze_epochs_closed_form() -> None:
    assert unfreeze_epochs(3, start_epoch=1, every=1) == [1, 2, 3]
    assert unfreeze_epochs(2, start_epoch=4, every=3) == [4, 7]
    assert unfreeze_epochs(0, start_epoch=2, every=1) == []
    with pytest.raises(ValueError):
        unfreeze_epochs(2, start_epoch=0, every=1)


def test_reinit_modules_resets_to_a_fresh_init() -> None:
    net = Net()
    with torch.no_grad():
        net.head.weight.fill_(5.0)
        net.head.bias.fill_(5.0)
    reset = reinit_modules(net, output_block_patterns(net), init="xavier_uniform")
    assert reset == ["head.weight", "head.bias"]
    bound = (6 / (8 + 2)) ** 0.5  # xavier_uniform's bound for an 8 -> 2 layer; biases become 0
    assert net.head.weight.abs().max() <= bound and torch.equal(net.head.bias, torch.zeros(2))


# --- the methods in the loop -------------------------------------------------------------------


def test_registered_with_documented_defaults_and_only_the_hooks_they_need() -> None:
    expected = {
        "freeze": {"setup"},
        "gradual_unfreeze": {"setup", "epoch_start", "epoch_end"},
        "reinit": {"setup"},
    }
    for name, hooks in expected.items():
        entry = METHODS.get(name)
        assert entry.description and all(p.doc and not p.required for p in entry.params)
        assert {e for e in EVENTS if hooks_of([entry.build()], e)} == hooks


def test_freeze_by_default_trains_only_the_output_block(state_factory, fit) -> None:
    batches, val = _problem()
    net = Net()
    before = _snapshot(net)
    state = fit(_state(state_factory, net, [{"name": "freeze"}]), [Freeze()], batches, 3, val)
    assert _changed(net, before) == {"head.weight", "head.bias"}
    info = state.info["freeze"]
    assert info["patterns"] == "all but the output block"
    assert info["frozen_tensors"] == 6 and info["frozen_parameters"] == 4 * 8 + 8 + 16 + 8 * 8 + 8
    assert info["trainable_parameters"] == 8 * 2 + 2


def test_freeze_by_pattern_leaves_frozen_weights_bit_identical_under_adamw_decay(state_factory, fit) -> None:
    batches, val = _problem()
    net = Net()
    before = _snapshot(net)
    state = _state(state_factory, net, [{"name": "freeze", "patterns": ["features.0"]}])
    assert state.optimizer.param_groups[0]["weight_decay"] == 0.01  # decoupled decay is on
    fit(state, [Freeze(patterns=["features.0"])], batches, 3, val)
    assert _changed(net, before) == set(before) - {"features.0.weight", "features.0.bias"}


def test_freezing_everything_without_unfreezing_is_an_error(state_factory) -> None:
    net = Net()
    method = Freeze(patterns=["*"])
    with pytest.raises(RecipeError, match="freezes every parameter"):
        method.setup(_state(state_factory, net, [{"name": "freeze", "patterns": ["*"]}]))


def test_freeze_of_a_single_block_model_by_default_is_an_error(state_factory) -> None:
    with pytest.raises(RecipeError, match="single block"):
        Freeze().setup(_state(state_factory, nn.Linear(4, 2), [{"name": "freeze"}]))
    with pytest.raises(RecipeError, match="at least one pattern"):
        Freeze(patterns=[])


def test_gradual_unfreeze_releases_blocks_from_the_output_side(state_factory, fit) -> None:
    batches, val = _problem()
    net = Net()
    methods = [Freeze(patterns=["features"]), GradualUnfreeze(start_epoch=2, every=2)]
    recipe_methods = [{"name": "freeze", "patterns": ["features"]}, {"name": "gradual_unfreeze", "every": 2}]
    state = _state(state_factory, net, recipe_methods, epochs=5)
    snapshots = []

    class Watch(tunelab.Method):  # records the weights at each epoch's end
        def epoch_end(self, state):
            snapshots.append(_snapshot(state.model))

    fit(state, [*methods, Watch()], batches, 5, val)
    info = state.info["gradual_unfreeze"]
    assert info["frozen_by"] == "earlier methods"
    assert info["schedule"] == {"features.3": 2, "features.0": 4} and info["still_frozen"] == []
    start = _snapshot(Net())  # the same seed: the initial weights
    # Epoch 1 trains the head only; features.3 joins at epoch 2, features.0 (+ its BN) at epoch 4.
    assert _changed_between(start, snapshots[0]) == {"head.weight", "head.bias"}
    assert _changed_between(snapshots[0], snapshots[1]) == {
        "head.weight",
        "head.bias",
        "features.3.weight",
        "features.3.bias",
    }
    assert _changed_between(snapshots[1], snapshots[2]) == _changed_between(snapshots[0], snapshots[1])
    assert _changed_between(snapshots[2], snapshots[3]) == set(start)
    trainable = [r["gradual_unfreeze"]["trainable_parameters"] for r in state.history]
    assert trainable == [18, 18 + 72, 18 + 72, 18 + 72 + 56, 18 + 72 + 56]


def _changed_between(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    return {n for n in a if not torch.equal(a[n], b[n])}


def test_gradual_unfreeze_after_the_last_epoch_is_reported(state_factory) -> None:
    net = Net()
    state = _state(
        state_factory, net, [{"name": "freeze"}, {"name": "gradual_unfreeze", "every": 3}], epochs=4
    )
    Freeze().setup(state)
    GradualUnfreeze(start_epoch=2, every=3).setup(state)
    info = state.info["gradual_unfreeze"]
    assert info["schedule"] == {"features.3": 2} and info["still_frozen"] == ["features.0"]


def test_gradual_unfreeze_alone_freezes_all_but_the_output_block_first(state_factory) -> None:
    net = Net()
    state = _state(state_factory, net, [{"name": "gradual_unfreeze"}], epochs=5)
    GradualUnfreeze().setup(state)
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    info = state.info["gradual_unfreeze"]
    assert info["frozen_by"].startswith("gradual_unfreeze") and info["schedule"] == {
        "features.3": 2,
        "features.0": 3,
    }
    with pytest.raises(RecipeError, match="single block"):
        GradualUnfreeze().setup(_state(state_factory, nn.Linear(4, 2), [{"name": "gradual_unfreeze"}]))


def test_everything_frozen_needs_the_first_unfreeze_at_epoch_one(state_factory, fit) -> None:
    batches, val = _problem()
    recipe_methods = [{"name": "freeze", "patterns": ["*"]}, {"name": "gradual_unfreeze"}]
    net = Net()
    state = _state(state_factory, net, recipe_methods, epochs=3)
    with pytest.raises(RecipeError, match="epoch 1 would train nothing") as info:
        fit(state, [Freeze(patterns=["*"]), GradualUnfreeze(start_epoch=2)], batches, 3, val)
    assert info.value.path == "methods.gradual_unfreeze.start_epoch"
    net = Net()
    state = fit(
        _state(state_factory, net, recipe_methods, epochs=3),
        [Freeze(patterns=["*"]), GradualUnfreeze(start_epoch=1)],
        batches,
        3,
        val,
    )
    assert state.info["gradual_unfreeze"]["schedule"] == {"head": 1, "features.3": 2, "features.0": 3}


def test_recipe_checks_order_and_start_epoch() -> None:
    with pytest.raises(RecipeError, match="freeze must come before gradual_unfreeze"):
        load_recipe({"methods": [{"name": "gradual_unfreeze"}, {"name": "freeze"}]})
    with pytest.raises(RecipeError) as info:
        load_recipe(
            {"train": {"epochs": 3}, "methods": ["freeze", {"name": "gradual_unfreeze", "start_epoch": 4}]}
        )
    assert info.value.path == "methods.gradual_unfreeze.start_epoch"
    assert load_recipe({"methods": ["freeze", "gradual_unfreeze"]}).methods[1].name == "gradual_unfreeze"


def test_reinit_moves_tensors_to_reinitialized_in_the_pretrained_report(state_factory) -> None:
    net = Net()
    state = _state(state_factory, net, [{"name": "reinit"}])
    state.info["pretrained"] = {"loaded": [n for n in net.state_dict()], "reinitialized": []}
    with torch.no_grad():
        net.head.weight.fill_(5.0)
    Reinit().setup(state)
    assert not (net.head.weight == 5.0).any()
    assert state.info["reinit"] == {"tensors": ["head.weight", "head.bias"]}
    assert state.info["pretrained"]["reinitialized"] == ["head.weight", "head.bias"]
    assert "head.weight" not in state.info["pretrained"]["loaded"]
    with pytest.raises(RecipeError, match=r"methods\.reinit\.patterns"):
        Reinit(patterns=["nothing"]).setup(state)


def test_fine_tuning_in_fit_with_freeze_and_gradual_unfreeze() -> None:
    torch.set_num_threads(1)
    recipe = {
        "data": {"name": "digits", "classes": [0, 1, 2], "train_fraction": 0.3},
        "model": {"name": "cnn2d", "channels": [4, 8], "hidden": [8]},
        "train": {"epochs": 3, "efficiency": False},
        "methods": [{"name": "reinit"}, {"name": "freeze"}, {"name": "gradual_unfreeze", "every": 1}],
    }
    result = tunelab.fit(recipe, save=False)
    assert result.ok
    # cnn2d blocks: features.0, features.4, head.0, head.4 (the output block).
    assert result.info["gradual_unfreeze"]["schedule"] == {"head.0": 2, "features.4": 3}
    assert result.info["gradual_unfreeze"]["still_frozen"] == ["features.0"]
    trainable = [r["gradual_unfreeze"]["trainable_parameters"] for r in result.history]
    assert trainable[0] < trainable[1] < trainable[2]
