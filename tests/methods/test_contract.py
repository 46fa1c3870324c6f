"""Contract tests run over every registered method (the same checks for each entry)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tunelab.methods import EVENTS, METHODS, Method, hooks_of
from tunelab.methods.early_stopping import EarlyStopping
from tunelab.recipe import load_recipe

# The events each method overrides; hooks_of must list exactly these (no per-batch cost otherwise).
EXPECTED_HOOKS = {
    "l1": {"setup", "loss"},
    "l2": {"setup", "loss"},
    "elastic_net": {"setup", "loss"},
    "grad_clip": {"setup", "after_backward", "epoch_end"},
    "early_stopping": {"setup", "epoch_end", "fit_end"},
    "label_smoothing": {"setup"},
    "ema": {"setup", "after_step", "eval_model"},
    "prune": {"setup", "after_step", "epoch_end", "fit_end"},
    "channel_prune": {"setup", "epoch_start", "after_step", "eval_model", "fit_end"},
    "quantize": {"setup", "eval_model"},
    "freeze": {"setup"},
    "reinit": {"setup"},
    "gradual_unfreeze": {"setup", "epoch_start", "epoch_end"},
    "mixup": {"setup", "batch"},
    "cutmix": {"setup", "batch"},
    "image_augment": {"setup", "batch"},
    "signal_augment": {"setup", "batch"},
    "feature_noise": {"setup", "batch"},
    "text_augment": {"setup", "batch"},
    "tta": {"setup", "eval_model", "epoch_end"},
}


def test_registry_holds_the_expected_methods():
    assert set(EXPECTED_HOOKS) == set(METHODS.names()), "a new method needs its hooks listed here"


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_entry_is_documented(name):
    entry = METHODS.get(name)
    assert entry.obj.name == name and issubclass(entry.obj, Method)
    assert entry.description and "\n" not in entry.description and len(entry.description) <= 100
    assert entry.params, "every method here has parameters"
    for p in entry.params:
        assert not p.required, f"{name}.{p.name} needs a default"
        assert p.doc, f"{name}.{p.name} needs a Doc"
        assert entry.check({p.name: p.default}, f"methods.{name}") == {p.name: p.default}  # default is valid
    assert entry.obj.__doc__


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_hooks_of_lists_only_overridden_hooks(name):
    method = METHODS.get(name).build()
    overridden = {e for e in EVENTS if hooks_of([method], e)}
    assert overridden == EXPECTED_HOOKS[name]


def test_l1_proximal_swaps_the_loss_hook_for_a_step_hook():
    method = METHODS.get("l1").build(proximal=True)
    assert {e for e in EVENTS if hooks_of([method], e)} == {"setup", "after_step"}


def _problem():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    return batches, (x, y)


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


# The data-augmentation methods read the data's kind (state.data.input_shape, task), which this
# hand-made state does not have; the loop's contract test in tests/test_train.py runs them on
# real data of their kind.
# channel_prune reads the input shape too (to trace the model); tests/methods/test_channel_prune.py.
AUGMENTATION = {
    "image_augment",
    "signal_augment",
    "feature_noise",
    "mixup",
    "cutmix",
    "tta",
    "channel_prune",
    "text_augment",
}
TABULAR = sorted(set(EXPECTED_HOOKS) - AUGMENTATION)


@pytest.mark.parametrize("name", TABULAR)
def test_each_method_trains_with_its_defaults(name, state_factory, fit):
    batches, val = _problem()
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    state = state_factory(model, steps_per_epoch=len(batches))
    fit(state, [METHODS.get(name).build()], batches, 3, val)
    assert len(state.history) == 3 and all(math.isfinite(r["val"]["loss"]) for r in state.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert state.history[-1]["val"]["accuracy"] > 0.5  # learns the linearly separable rule


def test_methods_compose(state_factory, fit):
    # All at once, in a recipe's order; early stopping restores into the EMA module it snapshotted.
    batches, val = _problem()
    methods = [METHODS.get(n).build() for n in ("l2", "label_smoothing", "grad_clip", "ema")]
    methods.append(EarlyStopping(patience=2))
    state = fit(state_factory(_model(), steps_per_epoch=len(batches)), methods, batches, 8, val)
    assert state.eval_net is methods[3].averaged.module
    info = state.info["early_stopping"]
    best = max(r["val"]["accuracy"] for r in state.history)
    assert info["best_value"] == best and state.history[info["best_epoch"] - 1]["val"]["accuracy"] == best
    assert all("grad_clip" in record for record in state.history)


def test_early_stopping_in_the_loop_stops_a_run_that_does_not_learn(state_factory, fit):
    batches, val = _problem()
    state = state_factory(_model(), steps_per_epoch=len(batches), lr=0.0)  # weights never change
    fit(state, [EarlyStopping(patience=2)], batches, 10, val)
    # Epoch 1 sets the best, epochs 2 and 3 do not improve on it: stop after epoch 3.
    assert state.stop and len(state.history) == 3
    assert state.info["early_stopping"]["stopped_epoch"] == 3


class StepProbe(Method):
    """Records each micro-batch's output dtype and the lr after each optimizer step."""

    def setup(self, state):
        self.dtypes, self.lrs = [], []

    def loss(self, state, loss, out, y):
        self.dtypes.append(out.dtype)
        return loss

    def after_step(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


def test_mini_fit_trains_through_the_loops_step(state_factory, fit):
    # Precision, gradient accumulation and a per-batch schedule come from the recipe, as in fit.
    batches, val = _problem()  # 4 batches of 16
    state = state_factory(_model())
    state.recipe = load_recipe(
        {"schedule": {"name": "onecycle"}, "train": {"precision": "bf16", "grad_accum": 2}}
    )
    probe = StepProbe()
    fit(state, [probe], batches, 2, val)
    assert state.steps_per_epoch == 2 and state.step == 4
    assert probe.dtypes == [torch.bfloat16] * 8
    assert len(set(probe.lrs)) == 4  # onecycle stepped once per optimizer step


class ChangeForm(Method):
    """Declares the evaluated model comparable only from epoch ``at`` (0-based) on."""

    def __init__(self, at: int) -> None:
        self.at = at

    def epoch_start(self, state):
        if state.epoch == self.at:
            state.comparable_since = self.at


def test_mini_fit_and_early_stopping_choose_the_best_among_comparable_epochs(state_factory, fit):
    batches, val = _problem()
    # No batch norm (its running statistics move even at lr 0): the same value every epoch, so
    # without the change the first epoch would stay the best.
    state = state_factory(nn.Linear(4, 2), lr=0.0)
    stopping = EarlyStopping(patience=10)
    fit(state, [ChangeForm(at=2), stopping], batches, 4, val)
    # Epochs 1-2 precede the change: the best is chosen again from epoch 3 on, by both.
    assert state.info["best"]["epoch"] == state.info["early_stopping"]["best_epoch"] == 3


# --- resume: every method's state round-trips through last.pt ------------------------------------

SMALL_CNN2D = {"name": "cnn2d", "channels": [4], "hidden": [8]}
SMALL_CNN1D = {"name": "cnn1d", "channels": [4], "hidden": [8]}
# Data of the kind each method needs; the others train an MLP with batch norm and dropout on iris.
ROUND_TRIP_DATA = {
    "image_augment": ({"name": "digits", "train_fraction": 0.3}, SMALL_CNN2D),
    "tta": ({"name": "digits", "train_fraction": 0.3}, SMALL_CNN2D),
    "signal_augment": ({"name": "mnist1d", "train_fraction": 0.1}, SMALL_CNN1D),
}
ROUND_TRIP_PARAMS = {
    "early_stopping": {"patience": 3},
    "prune": {"begin": 0.0, "end": 0.75, "cycles": 4},  # masks change after the interruption too
    "channel_prune": {"at": 0.25},  # chosen in epoch 2, before the interruption
    "gradual_unfreeze": {"start_epoch": 2},
    "text_augment": {"synonyms": "vocabulary", "crop": 0.1},
}
EPOCHS = 4


class Interrupted(BaseException):
    """Stands for a kill: nothing after it runs (not caught by fit as Ctrl-C is)."""


class InterruptAt(Method):
    """Raises at the ``at``-th optimizer step, mid-epoch, after the loop's last checkpoint."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self, state):
        if state.step == self.at:
            raise Interrupted


def _round_trip_recipe(name: str, text_csv: Path) -> dict:
    data, model = ROUND_TRIP_DATA.get(
        name, ({"name": "iris"}, {"name": "mlp", "hidden": [8], "dropout": 0.1})
    )
    recipe = {
        "data": data,
        "model": {**model, "batch_norm": True},
        "schedule": {"name": "onecycle"},  # stepped per batch: mid-epoch state to carry over
        "train": {
            "epochs": EPOCHS,
            "batch_size": 16,
            "checkpoint_every": 3,
            "efficiency": False,
            "tensorboard": False,
        },
        "methods": [{"name": name, **ROUND_TRIP_PARAMS.get(name, {})}],
    }
    if name == "text_augment":  # token ids: a tiny generated corpus (tests/conftest.py)
        recipe["data"] = {"name": "text_csv", "path": str(text_csv)}
        recipe["preprocess"] = {"max_length": 24}
        recipe["model"] = {"name": "embedding_bag", "embed_dim": 8}
    return recipe


def _comparable(result) -> dict:
    d = result.to_dict()
    for record in d["history"]:
        record.pop("seconds")
    return {
        k: d[k] for k in ("status", "epochs", "best_epoch", "best_value", "val", "test", "info", "history")
    }


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_state_round_trips_through_a_resume(name, tmp_path, request):
    # Train, be killed mid-epoch 3 (the last checkpoint a few steps before), build fresh methods,
    # load last.pt, continue: the same result as the run never interrupted, info included.
    text_csv = request.getfixturevalue("text_csv") if name == "text_augment" else Path()
    recipe = load_recipe(_round_trip_recipe(name, text_csv))
    from tunelab.data import load_data
    from tunelab.train import epoch_steps, fit

    data = load_data(recipe.data, recipe.preprocess)
    steps = len(epoch_steps(len(data.x_train), recipe)[1])
    at = 2 * steps + 4  # 3 is a multiple of checkpoint_every: resumed from step 2 * steps + 3
    whole = fit(recipe, data=data, save=False)
    with pytest.raises(Interrupted):
        fit(recipe, data=data, out=tmp_path / "run", methods=[InterruptAt(at)])
    resumed = fit(resume=tmp_path / "run", data=data)
    assert _comparable(resumed) == _comparable(whole)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # the method's state loads safely
    assert state["format"] == 1
