"""The learning-rate finder, on problems whose good range is known."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tunelab import fit
from tunelab.data import bundle_from_arrays
from tunelab.errors import RecipeError, TunelabError
from tunelab.lr_find import RULE, LRFindResult, apply_suggestion, ema, lr_find, plot_lr_find, suggest_lr
from tunelab.methods import Method
from tunelab.recipe import load_recipe
from tunelab.spec import DataSpec


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


def _regression(seed: int = 0, n: int = 400, d: int = 5, rho: float = 0.6):
    """Correlated features (an ill-conditioned Hessian) and a noisy linear target."""
    rng = np.random.default_rng(seed)
    cov = rho * np.ones((d, d)) + (1 - rho) * np.eye(d)
    x = rng.multivariate_normal(np.zeros(d), cov, size=n)
    y = x @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    return x.astype(np.float32), y.astype(np.float32)


def _stability_bound(bundle) -> float:
    """2 / λ_max of the Hessian of the mean squared error in (weights, bias): the largest lr
    for which gradient descent on this quadratic converges."""
    x = bundle.x_train.double().numpy()
    xa = np.hstack([x, np.ones((len(x), 1))])
    lam = np.linalg.eigvalsh(2 * xa.T @ xa / len(x)).max()
    return 2 / lam


def test_full_batch_linear_regression_suggests_below_the_stability_bound() -> None:
    x, y = _regression()
    spec = DataSpec(name="arrays")
    bundle = bundle_from_arrays(x, y, spec, task="regression")
    bound = _stability_bound(bundle)
    recipe = {"model": {"name": "linear"}, "optimizer": {"name": "gd"}}
    r = lr_find(recipe, data=bundle, start_lr=1e-5, end_lr=100.0, steps=150)
    assert r.stopped_early and r.diverged_lr is not None
    # Divergence is only possible above the bound; the suggestion is below it, within 1.5 decades.
    assert r.diverged_lr > bound
    assert bound / 30 < r.suggested_lr < bound
    assert r.suggested_lr == pytest.approx(r.min_lr / 10)
    # The trend stops before the diverged step: the suggestion never reads the diverged tail.
    assert len(r.trend) == len(r.lrs) - 1 and r.min_lr < r.diverged_lr


def test_minibatch_sgd_linear_regression_diverges_above_the_bound_too() -> None:
    x, y = _regression(seed=1, rho=0.8)
    bundle = bundle_from_arrays(x, y, DataSpec(name="arrays"), task="regression")
    bound = _stability_bound(bundle)
    recipe = {"model": {"name": "linear"}, "optimizer": {"name": "sgd"}, "train": {"batch_size": 32}}
    r = lr_find(recipe, data=bundle, start_lr=1e-5, end_lr=100.0, steps=150)
    # Sampling noise lowers the stable lr of SGD, never raises it: the suggestion stays below.
    assert r.stopped_early and r.suggested_lr < bound < r.diverged_lr * 2
    assert r.suggested_lr > bound / 100


@pytest.mark.parametrize("data", ["iris", "digits"])
def test_adam_on_a_small_classifier_suggests_a_usual_adam_lr(data: str) -> None:
    r = lr_find({"data": {"name": data}, "model": {"name": "mlp"}, "optimizer": {"name": "adam"}})
    assert 1e-4 <= r.suggested_lr <= 1e-1
    assert r.rule == RULE and r.stopped_early
    assert len(r.lrs) == len(r.losses) == len(r.smoothed) <= 200
    # An exponential ramp: constant ratio between steps, from start_lr.
    ratios = np.diff(np.log(r.lrs))
    assert r.lrs[0] == 1e-7 and np.allclose(ratios, math.log(1e8) / 199)


def test_streamed_data_ramps_through_the_same_batches() -> None:
    # The streamed split's DataLoader reads each step's indices in the in-memory order, and its
    # worker seed comes from its own generator: dropout draws the same masks, the losses are equal.
    recipe = {
        "data": {"name": "digits"},
        "model": {"name": "mlp", "dropout": 0.2},
        "train": {"batch_size": 32},
    }
    memory = lr_find(recipe)
    streamed = lr_find({**recipe, "data": {"name": "digits", "stream": True, "num_workers": 0}})
    assert streamed.losses == memory.losses and streamed.suggested_lr == memory.suggested_lr


def test_the_model_passed_in_is_left_untouched() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = lr_find({"data": {"name": "iris"}}, model=net, steps=60, start_lr=1e-5)
    assert r.stopped_early  # it did train (towards divergence) on a copy
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert all(p.grad is None for p in net.parameters())


def test_layer_decay_is_kept_during_the_ramp() -> None:
    seen = []

    class Probe(Method):  # records the group lrs after each step of the ramp
        def after_step(self, state):
            seen.append([g["lr"] for g in state.optimizer.param_groups])

    recipe = {
        "data": {"name": "iris"},
        "model": {"name": "mlp", "hidden": [8, 8]},
        "optimizer": {"name": "adam", "layer_decay": 0.5},
    }
    r = lr_find(recipe, methods=[Probe()], steps=40, start_lr=1e-4, end_lr=1.0)
    # Three blocks: output at the ramp's lr, the others at 1/2 and 1/4 of it (decay and no_decay).
    assert len(seen) >= 20
    assert all(np.allclose(lrs, [lrs[0]] * 2 + [lrs[0] / 2] * 2 + [lrs[0] / 4] * 2) for lrs in seen)
    assert seen[0][0] == pytest.approx(r.lrs[0])


def test_methods_of_the_recipe_run_their_setup_and_batch_hooks() -> None:
    # freeze (setup) leaves only the output block trainable; the copy's frozen weights never move.
    seen = []

    class Probe(Method):
        def after_step(self, state):
            seen.append(sum(p.numel() for p in state.model.parameters() if p.requires_grad))

    recipe = {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]}, "methods": ["freeze"]}
    lr_find(recipe, methods=[Probe()], steps=30, start_lr=1e-3, end_lr=10.0)
    assert seen and set(seen) == {8 * 3 + 3}


class FirstStep(Method):
    """Records the first optimizer step: the dtype of each micro-batch's output, the weights after."""

    def setup(self, state):
        self.init = [p.detach().clone() for p in state.model.parameters()]
        self.dtypes: list[torch.dtype] = []
        self.after: list[torch.Tensor] = []

    def loss(self, state, loss, out, y):
        if state.step == 0:
            self.dtypes.append(out.dtype)
        return loss

    def after_step(self, state):
        if state.step == 1:
            self.after = [p.detach().clone() for p in state.model.parameters()]


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.precision=bf16"],
        ["train.precision=fp16"],
        ["train.grad_accum=3"],
        ["train.precision=fp16", "train.grad_accum=3"],
    ],
)
def test_the_ramps_first_step_is_fits_first_step(overrides: list[str]) -> None:
    # The same seed, data and lr: the finder's first step must be the step fit takes, in the
    # recipe's precision (fp16: autocast and loss scaling) and with its micro-batches.
    recipe = load_recipe(
        {
            "data": {"name": "iris"},
            "model": {"name": "mlp", "hidden": [16], "dropout": 0.0},
            "optimizer": {"name": "sgd", "lr": 0.01},
            "train": {"epochs": 1, "batch_size": 16, "efficiency": False},
        },
        overrides,
    )
    in_fit, in_finder = FirstStep(), FirstStep()
    fit(recipe, save=False, methods=[in_fit])
    lr_find(recipe, methods=[in_finder], steps=60, start_lr=0.01, end_lr=100.0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[recipe.train.precision]
    assert in_finder.dtypes == in_fit.dtypes == [dtype] * recipe.train.grad_accum
    assert any(not torch.equal(a, b) for a, b in zip(in_fit.init, in_fit.after, strict=True))  # not skipped
    assert all(torch.equal(a, b) for a, b in zip(in_fit.after, in_finder.after, strict=True))


def test_memorizing_a_tiny_split_is_noted() -> None:
    recipe = {
        "data": {"name": "digits", "classes": [5, 6, 7, 8, 9], "train_fraction": 0.03},
        "model": {"name": "cnn2d", "channels": [32, 64], "hidden": [128]},
        "train": {"batch_size": 8},
    }
    r = lr_find(recipe)  # 100 passes over 17 images: the loss falls to ~0.5% of its start
    assert "memorized" in r.note and "17 training samples" in r.note
    full = lr_find({"data": {"name": "iris"}, "model": {"name": "mlp"}}, steps=120)
    assert full.note == ""  # 60 passes over iris, but the loss stays well above zero


def test_ema_and_suggest_rule_closed_forms() -> None:
    assert ema([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])  # bias correction
    assert ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    assert suggest_lr([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, 0.9]) == (pytest.approx(1e-2), 2)
    with pytest.raises(TunelabError, match="did not decrease"):
        suggest_lr([1e-3, 1e-2, 1e-1], [1.0, 0.98, 0.96])  # noise, not training
    with pytest.raises(TunelabError, match="not finite"):
        suggest_lr([1e-3], [math.nan])


def test_a_model_that_cannot_learn_is_an_error_not_a_suggestion() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3))
    recipe = {"data": {"name": "iris"}, "optimizer": {"name": "sgd"}}
    x, y = torch.randn(120, 4), torch.randint(0, 3, (120,))  # labels unrelated to the inputs
    # Random labels and a ramp too low to move the weights: the loss stays flat.
    with pytest.raises(TunelabError, match="did not decrease"):
        lr_find(recipe, model=net, data=(x, y), steps=40, start_lr=1e-7, end_lr=1e-5)


def test_argument_errors_name_the_argument() -> None:
    for kwargs, path in [
        ({"start_lr": 1.0, "end_lr": 0.1}, "start_lr"),
        ({"steps": 5}, "steps"),
        ({"smooth": 1.0}, "smooth"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
    ]:
        with pytest.raises(RecipeError) as info:
            lr_find({"data": {"name": "iris"}}, **kwargs)
        assert info.value.path == path


def test_apply_sets_optimizer_lr_or_the_schedules_explicit_peak() -> None:
    r, path = apply_suggestion(load_recipe({"optimizer": {"name": "sgd"}}), 0.012345)
    assert path == "optimizer.lr" and r.optimizer.params["lr"] == 0.012
    r, path = apply_suggestion(load_recipe({"schedule": {"name": "onecycle"}}), 0.003)
    assert path == "optimizer.lr" and r.optimizer.params["lr"] == 0.003  # onecycle peaks at it
    r, path = apply_suggestion(load_recipe({"schedule": {"name": "onecycle", "max_lr": 0.1}}), 0.02)
    assert path == "schedule.max_lr" and r.schedule.params["max_lr"] == 0.02


def _result() -> LRFindResult:
    return LRFindResult(
        lrs=[1e-3, 1e-2, 1e-1, 1.0],
        losses=[1.0, 0.6, 0.4, math.inf],
        smoothed=[1.0, 0.8, 0.6, math.inf],
        trend=[0.9, 0.7, 0.6],
        suggested_lr=1e-2,
        rule=RULE,
        stopped_early=True,
        diverged_lr=1.0,
        min_lr=0.1,
        min_loss=0.6,
        steps_per_epoch=1,
    )


def test_to_dict_is_valid_json_with_the_diverged_step_as_null() -> None:
    d = json.loads(json.dumps(_result().to_dict(), allow_nan=False))
    assert d["losses"][-1] is None and d["suggested_lr"] == 1e-2


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot_lr_find(_result(), tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(TunelabError, match="pip install matplotlib"):
        plot_lr_find(_result(), tmp_path / "lr.png")
