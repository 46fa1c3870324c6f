from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunelab.errors import RecipeError
from tunelab.methods.early_stopping import BestEpoch, EarlyStopper, EarlyStopping
from tunelab.recipe import Recipe
from tunelab.spec import MethodSpec, check_monitor


def stop_index(stopper: EarlyStopper, values: list[float]) -> int | None:
    for i, v in enumerate(values):
        if stopper.update(v):
            return i
    return None


def test_min_mode_stops_patience_epochs_after_best():
    s = EarlyStopper(patience=3, mode="min")
    # improvements at 0, 1, 3; then three bad epochs (4, 5, 6) although each is below 0.75
    assert stop_index(s, [1.0, 0.8, 0.85, 0.7, 0.75, 0.72, 0.71, 0.5]) == 6
    assert (s.best, s.best_epoch, s.bad_epochs) == (0.7, 3, 3)


def test_max_mode_and_ties():
    s = EarlyStopper(patience=2, mode="max")
    assert stop_index(s, [0.5, 0.6, 0.6, 0.55, 0.9]) == 3  # the tie at 2 is not an improvement
    assert (s.best, s.best_epoch) == (0.6, 1)


def test_min_delta_requires_gain_larger_than_delta():
    values = [4.0, 3.875, 3.5, 3.25, 3.25, 3.0]  # exact binary fractions: no rounding in the test
    s = EarlyStopper(patience=2, min_delta=0.25, mode="min")
    # 3.875 gains less than 0.25 (bad), 3.5 gains 0.5 (best), 3.25 gains exactly 0.25: not more (bad)
    assert stop_index(s, values) == 4
    assert (s.best, s.best_epoch) == (3.5, 2)
    assert stop_index(EarlyStopper(patience=2, mode="min"), values) is None  # without min_delta

    s = EarlyStopper(patience=1, min_delta=0.25, mode="max")
    assert stop_index(s, [1.0, 1.5, 1.75]) == 2  # +0.5 improves, +0.25 does not


def test_nan_never_improves_and_epoch_labels():
    s = EarlyStopper(patience=2, mode="min")
    assert [s.update(v, epoch=e) for v, e in [(1.0, 1), (math.nan, 2), (math.nan, 3)]] == [False, False, True]
    assert (s.best, s.best_epoch) == (1.0, 1)


def test_best_epoch_forgets_epochs_before_the_comparable_one():
    b = BestEpoch("min")
    assert [b.update(v, e) for e, v in [(1, 0.5), (2, 0.7), (3, 0.4)]] == [True, False, True]
    assert not b.forget_before(comparable_since=2)  # epoch 3 (from 1) is 0-based epoch 2: kept
    assert (b.best, b.best_epoch) == (0.4, 3)
    assert b.forget_before(comparable_since=3)
    assert (b.best, b.best_epoch) == (math.inf, None)
    assert b.update(0.9, 5)  # any value is the first comparable best


def test_early_stopper_counts_patience_from_the_change():
    s = EarlyStopper(patience=2, mode="max")
    assert [s.update(v, epoch=e) for e, v in [(1, 0.9), (2, 0.5)]] == [False, False]
    assert s.bad_epochs == 1 and s.forget_before(comparable_since=1)
    assert s.bad_epochs == 0 and not s.update(0.4, epoch=3) and s.best_epoch == 3


def test_invalid_arguments():
    for kwargs in ({"patience": 0}, {"patience": 1, "min_delta": -1.0}, {"patience": 1, "mode": "auto"}):
        with pytest.raises(ValueError):
            EarlyStopper(**kwargs)
    with pytest.raises(ValueError, match="mode"):
        BestEpoch("auto")  # type: ignore[arg-type]


def _run(
    m: EarlyStopping, state, values: list[float], metric: str = "accuracy", net: nn.Module | None = None
):
    """Epoch by epoch: weights of the evaluated net = the epoch number, then the scripted metric."""
    m.setup(state)
    net = net if net is not None else state.model
    for epoch, v in enumerate(values, start=1):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        state.eval_net = net
        state.history.append({"epoch": epoch, "train": {"loss": 1.0}, "val": {"loss": 1.0, metric: v}})
        m.epoch_end(state)
        if state.stop:
            break
    m.fit_end(state)


def test_adapter_stops_at_exact_epoch_and_restores_best(state_factory):
    state = state_factory(nn.Linear(2, 1))  # monitor val.accuracy, mode max
    _run(EarlyStopping(patience=2), state, [0.5, 0.7, 0.65, 0.69, 0.9])
    assert state.stop and len(state.history) == 4
    assert "val.accuracy" in state.stop_reason and "epoch 2" in state.stop_reason
    assert torch.all(state.model.weight == 2.0)  # the weights of epoch 2 are back
    assert state.info["early_stopping"] == {
        "monitor": "val.accuracy",
        "best_epoch": 2,
        "best_value": 0.7,
        "stopped_epoch": 4,
        "restored": True,
    }


def test_adapter_explicit_monitor_infers_min_and_runs_to_the_end(state_factory):
    state = state_factory(nn.Linear(2, 1))
    _run(EarlyStopping(monitor="val.loss", patience=3), state, [1.0, 0.9, 0.95, 0.8], metric="loss")
    assert not state.stop and len(state.history) == 4
    assert state.info["early_stopping"]["best_epoch"] == 4
    assert state.info["early_stopping"]["stopped_epoch"] is None


def test_adapter_explicit_mode_overrides_inference(state_factory):
    state = state_factory(nn.Linear(2, 1))
    # "loss" read as a score to maximize: 0.9 after 1.0 is a bad epoch.
    _run(EarlyStopping(monitor="val.loss", mode="max", patience=1), state, [1.0, 0.9], metric="loss")
    assert state.stop and state.info["early_stopping"]["best_epoch"] == 1


def test_adapter_snapshots_eval_net_not_model(state_factory):
    model, averaged = nn.Linear(2, 1), nn.Linear(2, 1)  # e.g. an EMA copy evaluated instead
    with torch.no_grad():
        model.weight.fill_(-1.0)
    state = state_factory(model)
    _run(EarlyStopping(patience=1), state, [0.5, 0.8, 0.7], net=averaged)
    assert torch.all(averaged.weight == 2.0)
    assert torch.all(model.weight == -1.0)


def test_adapter_without_restore(state_factory):
    state = state_factory(nn.Linear(2, 1))
    m = EarlyStopping(patience=1, restore_best=False)
    _run(m, state, [0.8, 0.7])
    assert m.best_state is None
    assert torch.all(state.model.weight == 2.0)  # the last epoch's weights stay
    assert state.info["early_stopping"]["restored"] is False


def test_adapter_unrecorded_metric(state_factory):
    state = state_factory(nn.Linear(2, 1))
    with pytest.raises(RecipeError) as e:
        _run(EarlyStopping(monitor="val.f1"), state, [0.5])
    assert e.value.path == "methods.early_stopping.monitor"
    assert "val.accuracy" in str(e.value)


def test_validate_recipe_checks_monitor():
    EarlyStopping.validate_recipe(Recipe(), MethodSpec("early_stopping", {}))
    EarlyStopping.validate_recipe(Recipe(), MethodSpec("early_stopping", {"monitor": "train.loss"}))
    for bad in ("val.bogus", "train.accuracy", "test.loss", "loss"):
        with pytest.raises(RecipeError) as e:
            EarlyStopping.validate_recipe(Recipe(), MethodSpec("early_stopping", {"monitor": bad}))
        assert e.value.path == "methods.early_stopping.monitor"
    check_monitor("val.r2", "x")
