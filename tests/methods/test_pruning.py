"""The ``prune`` method: exact sparsity that holds through training, plain checkpoints, rewinding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab import Method, fit, load_recipe
from tunelab.compress.prune import prunable_weights, weight_sparsity
from tunelab.errors import ModelError, RecipeError
from tunelab.methods import EVENTS, METHODS, hooks_of
from tunelab.methods.pruning import Prune, pruning_steps


def _data(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    y = ((x[:, 0] + x[:, 1] - x[:, 2]) > 0).long() + (x[:, 3] > 1).long()  # 3 classes
    return x, y


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))


N_WEIGHTS = 10 * 64 + 64 * 32 + 32 * 3  # 2784


def _zeros_expected(s: float) -> int:
    return int(s * N_WEIGHTS + 0.5)


class Probe(Method):
    """Records the zeros among the prunable weights before every batch and at every epoch end."""

    name = "probe"

    def __init__(self) -> None:
        self.before_batch: list[int] = []
        self.epoch_zeros: list[int] = []

    def batch(self, state, x, y):
        self.before_batch.append(weight_sparsity(state.model)["zeros"])
        return x, y

    def epoch_end(self, state):
        self.epoch_zeros.append(weight_sparsity(state.model)["zeros"])


RECIPE = {"train": {"epochs": 8, "batch_size": 50, "efficiency": False}}


@pytest.mark.parametrize(
    ("optimizer", "scope"),
    [
        ({"name": "momentum", "lr": 0.05, "weight_decay": 1e-3}, "global"),
        ({"name": "adamw", "lr": 0.01, "weight_decay": 0.05}, "layerwise"),
    ],
)
def test_sparsity_is_exact_at_every_update_and_holds_through_fine_tuning(optimizer, scope):
    # Momentum and (decoupled) weight decay move a zeroed weight unless the mask is re-applied.
    recipe = {
        **RECIPE,
        "optimizer": optimizer,
        "methods": [{"name": "prune", "sparsity": 0.9, "scope": scope, "cycles": 4}],
    }
    probe = Probe()
    r = fit(recipe, model=_net(), data=_data(), save=False, methods=[probe])
    steps = len(probe.before_batch)  # 256 train samples (after the val/test split) / 50 -> 6 a epoch
    assert steps == 8 * 6
    plan = pruning_steps(steps, 0.9, "cubic", 0.25, 0.75, 4)
    assert list(plan) == [12, 18, 24, 30] and plan[30] == pytest.approx(0.9)
    # Before each batch, exactly the zeros of the latest update (layerwise rounds per layer).
    net = r.model
    sizes = [w.numel() for _, w in prunable_weights(net)]

    def expected(s: float) -> int:
        return _zeros_expected(s) if scope == "global" else sum(int(s * n + 0.5) for n in sizes)

    for step, zeros in enumerate(probe.before_batch):
        done = [s for at, s in plan.items() if at <= step]
        assert zeros == (expected(done[-1]) if done else 0), f"before step {step + 1}"
    assert probe.epoch_zeros[-3:] == [expected(0.9)] * 3  # fixed masks while fine-tuning
    assert weight_sparsity(net)["zeros"] == expected(0.9)
    info = r.info["prune"]
    assert info["zeros"] == expected(0.9) and info["updates"] == 4 and "completed_at_fit_end" not in info
    assert r.val["accuracy"] > 0.6  # a 90%-sparse net still learns the rule


def test_checkpoints_are_plain_state_dicts_with_the_zeros(tmp_path):
    recipe = {**RECIPE, "methods": [{"name": "prune", "sparsity": 0.8, "schedule": "oneshot", "begin": 0.0}]}
    r = fit(recipe, model=_net(), data=_data(), out=tmp_path / "run")
    for name in ("best.pt", "final.pt"):
        state = torch.load(tmp_path / "run" / name, weights_only=True)
        assert list(state) == list(_net().state_dict())  # no weight_orig / weight_mask
        fresh = _net()
        fresh.load_state_dict(state)
        assert weight_sparsity(fresh)["zeros"] == _zeros_expected(0.8)
    assert "prune" in (tmp_path / "run" / "recipe.yaml").read_text()
    assert not any(p._backward_hooks for p in r.model.parameters() if p._backward_hooks is not None)


class GradProbe(Method):
    name = "grad_probe"

    def __init__(self) -> None:
        self.max_pruned_grad: list[float] = []

    def after_backward(self, state):
        for w in [w for _, w in prunable_weights(state.model)]:
            if w.grad is not None:
                pruned = w.grad[w == 0]
                self.max_pruned_grad.append(float(pruned.abs().amax()) if pruned.numel() else 0.0)


def test_gradients_of_pruned_weights_are_zero_before_clipping_sees_them():
    recipe = {
        **RECIPE,
        "train": {**RECIPE["train"], "epochs": 2},
        "methods": [{"name": "prune", "sparsity": 0.7, "schedule": "oneshot", "begin": 0.0}],
    }
    probe = GradProbe()
    fit(recipe, model=_net(), data=_data(), save=False, methods=[probe])
    assert probe.max_pruned_grad and max(probe.max_pruned_grad) == 0.0


def test_rewind_resets_survivors_to_their_initial_values(state_factory, fit):
    model = _net()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data(200)
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50)]
    state = state_factory(model, steps_per_epoch=len(batches), lr=0.1)
    state.recipe.train.epochs = 4
    method = Prune(sparsity=0.5, schedule="oneshot", begin=0.5, rewind_epoch=0)
    seen = {}

    class AfterUpdate(Method):
        name = "after_update"

        def after_step(self, st):  # runs after Prune's after_step (listed first, reversed order)
            if st.step == 8:
                seen.update({k: v.clone() for k, v in st.model.state_dict().items()})

    fit(state, [AfterUpdate(), method], batches, 4, (x, y))
    assert method.history == [(8, 0.5)]
    for (name, _), mask in zip(prunable_weights(model), method.masks, strict=True):
        kept = mask.bool()
        # Right after the update: survivors are back at init, the rest zero; the masks came
        # from the trained weights, so they differ from init's magnitude ranking.
        torch.testing.assert_close(seen[name][kept], init[name][kept])
        assert (seen[name][~kept] == 0).all()
    assert not torch.equal(seen["0.weight"], model.state_dict()["0.weight"])  # then it retrained


def test_early_stop_before_the_ramp_ends_still_reaches_the_sparsity():
    recipe = {
        "optimizer": {"name": "sgd", "lr": 1e-12},  # nothing improves: early stopping after 2 epochs
        "train": {"epochs": 20, "batch_size": 50, "efficiency": False},
        "methods": [{"name": "prune", "sparsity": 0.75}, {"name": "early_stopping", "patience": 1}],
    }
    r = fit(recipe, model=_net(), data=_data(), save=False)
    assert r.status == "stopped_early" and r.epochs == 2
    assert r.info["prune"]["completed_at_fit_end"] is True
    assert weight_sparsity(r.model)["zeros"] == _zeros_expected(0.75)


def test_ema_weights_evaluated_and_saved_are_exactly_sparse():
    recipe = {**RECIPE, "methods": [{"name": "prune", "sparsity": 0.9}, {"name": "ema", "decay": 0.9}]}
    r = fit(recipe, model=_net(), data=_data(), save=False)
    assert r.model is not None and weight_sparsity(r.model)["zeros"] == _zeros_expected(0.9)
    assert r.info["prune"]["zeros"] == _zeros_expected(0.9)


def test_recipe_checks_name_the_field_and_the_fix():
    with pytest.raises(RecipeError, match="list prune before early_stopping"):
        load_recipe({"methods": [{"name": "early_stopping"}, {"name": "prune"}]})
    with pytest.raises(RecipeError, match=r"methods\.prune\.rewind_epoch"):
        load_recipe(
            {"train": {"epochs": 8}, "methods": [{"name": "prune", "begin": 0.25, "rewind_epoch": 3}]}
        )
    with pytest.raises(RecipeError, match=r"methods\.prune\.end"):
        load_recipe({"methods": [{"name": "prune", "begin": 0.6, "end": 0.5}]})
    with pytest.raises(RecipeError, match=r"methods\.prune\.sparsity"):
        load_recipe({"methods": [{"name": "prune", "sparsity": 1.0}]})
    with pytest.raises(ModelError, match="no Linear or Conv"):
        fit({"methods": [{"name": "prune"}], "train": {"epochs": 1, "efficiency": False}},
            model=nn.Sequential(nn.BatchNorm1d(10)), data=_data(), save=False)  # fmt: skip


def test_params_are_searchable_overrides():
    r = load_recipe(
        {"methods": [{"name": "prune"}]}, ["methods.prune.sparsity=0.85", "methods.prune.scope=layerwise"]
    )
    spec = r.method("prune")
    assert spec.params["sparsity"] == 0.85 and spec.params["scope"] == "layerwise"
    dumped = r.to_dict()["methods"][0]
    assert dumped == {
        "name": "prune",
        "sparsity": 0.85,
        "scope": "layerwise",
        "schedule": "cubic",
        "begin": 0.25,
        "end": 0.75,
        "cycles": 10,
        "rewind_epoch": None,
    }


def test_registry_entry_is_documented_and_hooks_only_what_it_needs():
    entry = METHODS.get("prune")
    assert entry.obj is Prune and entry.description and len(entry.description) <= 100
    for p in entry.params:
        assert not p.required and p.doc
        assert entry.check({p.name: p.default}, "methods.prune") == {p.name: p.default}
    # epoch_end records the sparsity per epoch (a host number, once an epoch)
    assert {e for e in EVENTS if hooks_of([Prune()], e)} == {"setup", "after_step", "epoch_end", "fit_end"}
    assert {e for e in EVENTS if hooks_of([Prune(rewind_epoch=2)], e)} == {
        "setup",
        "epoch_start",
        "after_step",
        "epoch_end",
        "fit_end",
    }


def test_pruning_steps_schedule():
    assert pruning_steps(10, 0.5, "oneshot", 0.0, 1.0, 5) == {0: 0.5}
    linear = pruning_steps(100, 0.8, "linear", 0.2, 0.6, 4)
    assert list(linear) == [20, 30, 40, 50] and [round(s, 6) for s in linear.values()] == [0.2, 0.4, 0.6, 0.8]
    # A run too short for every update: those on one step collapse into the sparsest of them
    # (updates 1-5 at step 0: 0.9·(1 − 0.5³); updates 6-10 at step 1: the full 0.9).
    assert pruning_steps(2, 0.9, "cubic", 0.0, 0.5, 10) == {0: pytest.approx(0.7875), 1: pytest.approx(0.9)}


def test_each_epoch_records_the_sparsity_the_masks_hold():
    recipe = {
        **RECIPE,
        "train": {**RECIPE["train"], "epochs": 4},
        "methods": [{"name": "prune", "sparsity": 0.8}],
    }
    r = fit(recipe, model=_net(), data=_data(), save=False)
    ramp = [h["prune"]["sparsity"] for h in r.history]
    assert ramp == sorted(ramp) and ramp[-1] == 0.8  # grows on the schedule, ends at the target
    assert weight_sparsity(r.model)["zeros"] == _zeros_expected(ramp[-1])
