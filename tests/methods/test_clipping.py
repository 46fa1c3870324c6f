from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunelab.errors import RecipeError
from tunelab.methods.clipping import GradClip, clip_gradients
from tunelab.recipe import Recipe
from tunelab.spec import MethodSpec


def _params(*grads: list[float]) -> list[torch.Tensor]:
    out = []
    for g in grads:
        p = torch.zeros(len(g), requires_grad=True)
        p.grad = torch.tensor(g)
        out.append(p)
    return out


def _total_norm(params: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params))


def test_norm_clipping_closed_form():
    params = _params([3.0, 4.0], [12.0])  # total norm sqrt(9 + 16 + 144) = 13
    norm = clip_gradients(params, max_norm=1.0)
    assert float(norm) == pytest.approx(13.0)
    assert _total_norm(params) == pytest.approx(1.0, rel=1e-5)
    # The direction is kept: every gradient is scaled by max_norm / norm.
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, 4.0]) / 13)
    torch.testing.assert_close(params[1].grad, torch.tensor([12.0]) / 13)


def test_unclipped_below_threshold():
    params = _params([3.0, 4.0], [12.0])
    assert float(clip_gradients(params, max_norm=100.0)) == pytest.approx(13.0)
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, 4.0]))
    params = _params([0.5, -0.2])
    clip_gradients(params, max_value=1.0)
    torch.testing.assert_close(params[0].grad, torch.tensor([0.5, -0.2]))


def test_value_clipping_bounds_every_entry():
    params = _params([3.0, -4.0, 0.5], [-0.25, 12.0])
    norm = clip_gradients(params, max_value=1.0)
    assert float(norm) == pytest.approx(math.sqrt(9 + 16 + 0.25 + 0.0625 + 144))  # before clipping
    torch.testing.assert_close(params[0].grad, torch.tensor([1.0, -1.0, 0.5]))
    torch.testing.assert_close(params[1].grad, torch.tensor([-0.25, 1.0]))


def test_inf_norm_and_missing_grads():
    params = [*_params([3.0, -7.0], [2.0]), torch.zeros(3, requires_grad=True)]  # last: no grad
    assert float(clip_gradients(params, max_norm=1.0, norm_type=math.inf)) == pytest.approx(7.0)
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, -7.0]) / 7, rtol=1e-5, atol=1e-6)
    assert params[2].grad is None


def test_exactly_one_threshold():
    with pytest.raises(ValueError):
        clip_gradients(_params([1.0]))
    with pytest.raises(ValueError):
        clip_gradients(_params([1.0]), max_norm=1.0, max_value=1.0)


def test_adapter_clips_and_reports_per_epoch(state_factory):
    model = nn.Linear(2, 1, bias=False)
    state = state_factory(model, steps_per_epoch=3)
    m = GradClip(max_norm=1.0)
    m.setup(state)
    norms = [0.5, 2.0, 4.0]  # two of three steps above the threshold
    for n in norms:
        model.weight.grad = torch.tensor([[0.6 * n, 0.8 * n]])  # a gradient of norm n
        m.after_backward(state)
        assert isinstance(m.last_norm, torch.Tensor)  # kept as a tensor: no per-batch sync
        assert float(m.last_norm) == pytest.approx(n)
        assert float(model.weight.grad.norm()) == pytest.approx(min(n, 1.0), rel=1e-5)
        state.step += 1
    state.history.append({"epoch": 1, "val": {}})
    m.epoch_end(state)
    info = state.info["grad_clip"]
    assert info["mode"] == "norm" and info["threshold"] == 1.0
    assert info["last_norm"] == pytest.approx(4.0)
    epoch = state.history[-1]["grad_clip"]
    assert epoch["norm_mean"] == pytest.approx(sum(norms) / 3)
    assert epoch["norm_max"] == pytest.approx(4.0)
    assert epoch["clipped_fraction"] == pytest.approx(2 / 3)


def test_adapter_value_mode(state_factory):
    model = nn.Linear(3, 1, bias=False)
    state = state_factory(model)
    m = GradClip(mode="value", max_value=0.5)
    m.setup(state)
    model.weight.grad = torch.tensor([[2.0, -0.1, -3.0]])
    m.after_backward(state)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.5, -0.1, -0.5]]))
    state.history.append({"epoch": 1})
    m.epoch_end(state)
    assert "clipped_fraction" not in state.history[-1]["grad_clip"]


def test_adapter_clips_params_frozen_at_setup(state_factory):
    # Gathered regardless of requires_grad, so a layer unfrozen later is clipped too.
    model = nn.Linear(2, 1, bias=False)
    model.weight.requires_grad_(False)
    state = state_factory(nn.Linear(1, 1))
    state.model = model
    m = GradClip(max_norm=1.0)
    m.setup(state)
    model.weight.requires_grad_(True)
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    m.after_backward(state)
    assert float(model.weight.grad.norm()) == pytest.approx(1.0)


def test_validate_recipe_rejects_unused_threshold():
    GradClip.validate_recipe(Recipe(), MethodSpec("grad_clip", {"max_norm": 0.5}))
    GradClip.validate_recipe(Recipe(), MethodSpec("grad_clip", {"mode": "value", "max_value": 0.5}))
    # A resolved recipe writes every default, the unused threshold included: it must load again.
    GradClip.validate_recipe(Recipe(), MethodSpec("grad_clip", {"max_norm": 0.5, "max_value": 1.0}))
    with pytest.raises(RecipeError) as e:
        GradClip.validate_recipe(Recipe(), MethodSpec("grad_clip", {"max_value": 0.5}))
    assert e.value.path == "methods.grad_clip.max_value"
    with pytest.raises(RecipeError) as e:
        GradClip.validate_recipe(Recipe(), MethodSpec("grad_clip", {"mode": "value", "max_norm": 2.0}))
    assert e.value.path == "methods.grad_clip.max_norm"
