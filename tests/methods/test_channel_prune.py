"""The ``channel_prune`` method (methods/pruning.py): a narrow model at the end, the same function
as the masked dense model while it fine-tunes, best epochs only among the narrow ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab import Method, fit, load_recipe
from tunelab.errors import ModelError, RecipeError
from tunelab.methods import TrainState
from tunelab.study.compress import _load_run

DIGITS_CNN = {
    "data": {"name": "digits"},
    "model": {"name": "cnn2d", "channels": [8, 16], "hidden": [32], "batch_norm": True},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 6, "batch_size": 64, "tensorboard": False},
}


class _Twin(Method):
    """After each epoch: does the (masked) dense model compute what the narrow eval_net computes?"""

    name = "twin"

    def __init__(self) -> None:
        self.gaps: list[float | None] = []

    def epoch_end(self, state: TrainState) -> None:
        x = state.data.x_val[:64]
        model, net = state.model, state.eval_net
        if net is model:
            self.gaps.append(None)
            return
        model.eval(), net.eval()  # type: ignore[union-attr]
        with torch.no_grad():
            self.gaps.append(float((model(x) - net(x)).abs().max()))  # type: ignore[misc]
        model.train()


def _convs(net: nn.Module) -> list[int]:
    return [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_ends_narrow_and_equal_to_the_masked_model_while_fine_tuning(tmp_path):
    twin = _Twin()
    recipe = {**DIGITS_CNN, "methods": [{"name": "channel_prune", "ratio": 0.5, "at": 0.5}]}
    r = fit(recipe, out=tmp_path / "run", methods=[twin])
    assert r.status == "completed"
    # Epochs 1-3 evaluate the dense model; from epoch 4 (at 0.5 of 6) the narrowed copy, which
    # computes what the masked dense model computes.
    assert twin.gaps[:3] == [None, None, None]
    assert all(g is not None and g < 1e-4 for g in twin.gaps[3:])
    assert _convs(r.model) == [4, 8]
    info = r.info["channel_prune"]
    assert info["epoch"] == 4 and info["params_after"] < info["params_before"] / 2
    assert r.efficiency["params"] == info["params_after"]
    # The best epoch is one of the narrow ones, and best.pt / final.pt hold the narrow model.
    assert r.best_epoch is not None and r.best_epoch >= 4
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["features.0.weight"].shape[0] == 4
    assert all(v.shape == r.model.state_dict()[k].shape for k, v in best.items())
    # tunelab compress (and anyone with the recipe) loads the run into the recipe's architecture.
    _, data, model = _load_run(tmp_path / "run")
    assert _convs(model) == [4, 8]
    x = data.x_val[:32]
    model.eval(), r.model.eval()
    torch.testing.assert_close(model(x), r.model(x))


def test_accuracy_survives_half_the_channels():
    dense = fit(DIGITS_CNN, save=False)
    pruned = fit({**DIGITS_CNN, "methods": [{"name": "channel_prune", "ratio": 0.5}]}, save=False)
    assert pruned.val["accuracy"] > dense.val["accuracy"] - 0.05
    assert pruned.efficiency["flops"] < dense.efficiency["flops"] / 2


def test_early_stopping_restores_a_narrow_epoch_and_a_run_ending_early_is_pruned_anyway():
    # Early stopping's patience counts from the pruning; the restored weights are narrow.
    recipe = {
        **DIGITS_CNN,
        "train": {**DIGITS_CNN["train"], "epochs": 10},
        "methods": [{"name": "channel_prune", "at": 0.3}, {"name": "early_stopping", "patience": 2}],
    }
    r = fit(recipe, save=False)
    assert r.info["early_stopping"]["best_epoch"] >= 4 and _convs(r.model) == [4, 8]
    # lr ~0: nothing learns, early stopping ends the run within a few epochs, before the pruning at 9.
    recipe["optimizer"] = {"name": "sgd", "lr": 1e-12}
    recipe["methods"] = [{"name": "channel_prune", "at": 0.9}, {"name": "early_stopping", "patience": 1}]
    r = fit(recipe, save=False)
    assert r.status == "stopped_early" and r.epochs < 9
    assert r.info["channel_prune"]["completed_at_fit_end"] is True and _convs(r.model) == [4, 8]


def test_composes_with_ema_quantize_and_tta():
    recipe = {
        **DIGITS_CNN,
        "methods": [
            {"name": "ema", "decay": 0.9},
            {"name": "channel_prune"},
            {"name": "quantize"},
            {"name": "tta"},
        ],
    }
    r = fit(recipe, save=False)
    inner = r.model.model  # the TTA wrapper around the narrow, quantized EMA average
    assert _convs(inner) == [4, 8]
    assert type(next(m for m in inner.modules() if isinstance(m, nn.Linear)).weight).__name__ == "Int8Tensor"


def test_a_model_with_nothing_to_narrow_is_refused_before_training():
    # One Linear layer is the output layer, which keeps its outputs: nothing to remove. The dry
    # run in setup says so before the first epoch (not at the pruning epoch, halfway through).
    with pytest.raises(ModelError, match=r"methods\.channel_prune: .*removed nothing.*methods\.prune"):
        fit({"data": {"name": "iris"}, "model": {"name": "linear"}, "methods": [{"name": "channel_prune"}]},
            save=False)  # fmt: skip


def test_recipe_checks_name_the_conflict_and_the_fix():
    with pytest.raises(RecipeError, match="not both"):
        load_recipe({"methods": [{"name": "prune"}, {"name": "channel_prune"}]})
    with pytest.raises(RecipeError, match="list ema before channel_prune"):
        load_recipe({"methods": [{"name": "channel_prune"}, {"name": "ema"}]})
    with pytest.raises(RecipeError, match=r"methods\.channel_prune\.ratio"):
        load_recipe({"methods": [{"name": "channel_prune", "ratio": 1.0}]})


def test_a_pruned_run_is_pretrained_narrow_and_a_new_head_keeps_its_outputs(tmp_path):
    recipe = {**DIGITS_CNN, "methods": [{"name": "channel_prune", "ratio": 0.5}]}
    source = fit(recipe, out=tmp_path / "pruned")
    # Go on training the narrow model: every tensor loads, none is re-initialized.
    again = {**DIGITS_CNN, "model": {**DIGITS_CNN["model"], "pretrained": str(tmp_path / "pruned")}}
    again["train"] = {**DIGITS_CNN["train"], "epochs": 1}
    again["optimizer"] = {"name": "sgd", "lr": 1e-9}
    r = fit(again, save=False)
    report = r.info["pretrained"]
    assert not report["reinitialized"] and report["narrowed"]["features.0"] == [4, 1]
    assert _convs(r.model) == [4, 8] and abs(r.val["accuracy"] - source.val["accuracy"]) < 0.02
    # Transfer to 5 classes: the narrowed body loads, the head keeps 5 outputs and starts afresh.
    new_task = {**again, "data": {"name": "digits", "classes": [5, 6, 7, 8, 9]}}
    r = fit(new_task, save=False)
    head = [m for m in r.model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.out_features == 5
    assert r.info["pretrained"]["reinitialized"] == ["head.4.weight", "head.4.bias"]
