"""The ``quantize`` method: the int8 copy is what is evaluated, saved and timed; training is float."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab import fit, load_recipe
from tunelab.compress.prune import weight_sparsity
from tunelab.errors import RecipeError
from tunelab.methods.quantization import Quantize
from tunelab.models.pretrained import load_state_dict_file

pytest.importorskip("torchao")

DIGITS_MLP = {
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [128, 64]},
    "optimizer": {"name": "adam", "lr": 0.005},
    "train": {"epochs": 5, "batch_size": 64, "tensorboard": False},
}


def _is_int8(net: nn.Module) -> bool:
    return all(type(m.weight).__name__ == "Int8Tensor" for m in net.modules() if isinstance(m, nn.Linear))


def test_training_is_unchanged_and_the_evaluated_model_is_int8(tmp_path):
    plain = fit(DIGITS_MLP, save=False)
    q = fit({**DIGITS_MLP, "methods": [{"name": "quantize"}]}, out=tmp_path / "run")
    # The int8 copy is thrown away each epoch: the float training is the very same run.
    assert [h["train"]["loss"] for h in q.history] == [h["train"]["loss"] for h in plain.history]
    assert _is_int8(q.model) and q.info["quantize"] == {"scheme": "int8_dynamic"}
    # ... evaluated as int8: close to the float model's accuracy, but its own figures.
    assert abs(q.val["accuracy"] - plain.val["accuracy"]) <= 0.02
    assert q.efficiency["size_bytes"] < plain.efficiency["size_bytes"] / 2
    assert q.efficiency["params"] == plain.efficiency["params"]
    # The checkpoints are int8; tunelab's loader gives floats, which fine-tune and transfer.
    state = load_state_dict_file(tmp_path / "run" / "final.pt")
    assert all(type(v) is torch.Tensor for v in state.values())
    model = {**DIGITS_MLP["model"], "pretrained": str(tmp_path / "run")}
    again = fit({**DIGITS_MLP, "model": model}, save=False)
    assert again.info["pretrained"]["loaded"]


def test_weight_only_scheme_keeps_float_activations_and_the_accuracy():
    plain = fit(DIGITS_MLP, save=False)
    q = fit({**DIGITS_MLP, "methods": [{"name": "quantize", "scheme": "int8_weight_only"}]}, save=False)
    assert _is_int8(q.model) and q.info["quantize"] == {"scheme": "int8_weight_only"}
    assert abs(q.val["accuracy"] - plain.val["accuracy"]) <= 0.02
    assert q.efficiency["size_bytes"] < plain.efficiency["size_bytes"] / 2


def test_composes_with_pruning_and_early_stopping():
    recipe = {
        **DIGITS_MLP,
        "methods": [
            {"name": "prune", "sparsity": 0.8},
            {"name": "early_stopping", "patience": 2},
            {"name": "quantize"},
        ],
    }
    r = fit(recipe, save=False)
    assert _is_int8(r.model)
    # Zeros quantize to exact zeros: the int8 model is as sparse as the masks.
    assert weight_sparsity(r.model)["zeros"] == r.info["prune"]["zeros"]
    assert r.info["prune"]["sparsity"] == pytest.approx(0.8, abs=1e-3)


def test_is_searchable_as_a_method_switch():
    recipe = load_recipe(DIGITS_MLP, ["methods.quantize={}"])
    assert [m.name for m in recipe.methods] == ["quantize"]
    assert not load_recipe(recipe.to_dict(), ["methods.quantize=null"]).methods


def test_order_and_model_errors_name_the_fix(state_factory):
    with pytest.raises(RecipeError, match="list ema before quantize"):
        load_recipe({"methods": [{"name": "quantize"}, {"name": "ema"}]})
    with pytest.raises(RecipeError, match=r"tta must come after .*\(quantize\)"):
        load_recipe({"data": {"name": "digits"}, "methods": [{"name": "tta"}, {"name": "quantize"}]})
    with pytest.raises(RecipeError, match=r"no nn\.Linear"):
        Quantize().setup(state_factory(nn.Sequential(nn.Conv1d(1, 2, 3))))
