"""Test-time augmentation: the views, the averaging, the evaluation option and plain checkpoints."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import tunelab
from tunelab.data import bundle_from_arrays
from tunelab.errors import RecipeError
from tunelab.methods import EVENTS, METHODS, hooks_of
from tunelab.methods.augment import shift
from tunelab.methods.augment_tta import TTA, TTAModel, tta_views, view_plan
from tunelab.methods.ema import EMA
from tunelab.models import build_model
from tunelab.recipe import load_recipe


def _state(input_shape, task="classification"):
    return SimpleNamespace(
        data=SimpleNamespace(input_shape=input_shape, task=task), info={}, eval_net=None, model=None
    )


def test_views_of_images_and_signals():
    img = torch.arange(9.0).view(1, 1, 3, 3)
    views = tta_views(img, hflip=True, vflip=True, shifts=(1,))
    expected = [
        img,
        img.flip(-1),
        img.flip(-2),
        shift(img, 1, dim=-1),
        shift(img, -1, dim=-1),
        shift(img, 1, dim=-2),
        shift(img, -1, dim=-2),
    ]
    assert len(views) == len(expected)
    for v, e in zip(views, expected, strict=True):
        assert torch.equal(v, e)
    sig = torch.arange(1.0, 5.0).view(1, 1, 4)
    assert [v.flatten().tolist() for v in tta_views(sig, shifts=(1,), shift_mode="circular")] == [
        [1, 2, 3, 4],
        [4, 1, 2, 3],
        [2, 3, 4, 1],
    ]
    with pytest.raises(ValueError):
        view_plan(1, vflip=True)


def test_classification_average_is_the_log_of_the_mean_probability():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 4))
    x = torch.randn(5, 2, 6, 6)
    plan = view_plan(2, hflip=True, shifts=(1,))
    tta = TTAModel(net, plan)
    with torch.no_grad():
        out = tta(x)
        probs = torch.stack([net(v).softmax(-1) for v in tta_views(x, hflip=True, shifts=(1,))]).mean(0)
    torch.testing.assert_close(out.softmax(-1), probs)  # the output reads as logits of the average
    torch.testing.assert_close(out, probs.log())
    assert torch.equal(out.argmax(-1), probs.argmax(-1))


def test_regression_average_is_the_mean_output():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    x = torch.randn(4, 1, 10)
    tta = TTAModel(net, view_plan(1, shifts=(2,)), task="regression")
    with torch.no_grad():
        ref = torch.stack([net(v) for v in tta_views(x, shifts=(2,))]).mean(0)
        torch.testing.assert_close(tta(x), ref)


def test_a_flip_invariant_model_is_unchanged_by_flip_tta():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # mean pooling ignores flips
    x = torch.randn(6, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(
            TTAModel(net, view_plan(2, hflip=True, vflip=True))(x), net(x).log_softmax(-1)
        )


def test_wrapper_state_dict_is_the_bare_models():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * 8, 3))
    tta = TTAModel(net, view_plan(1, shifts=(1,)))
    sd = tta.state_dict()
    assert list(sd) == list(net.state_dict())
    other = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * 8, 3))
    other.load_state_dict(sd)  # strict: same keys
    fresh = TTAModel(nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(32, 3)), [])
    fresh.load_state_dict(net.state_dict())
    for a, b in zip(fresh.model.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in tta.parameters()) == sum(p.numel() for p in net.parameters())


def _images(n: int = 160):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].mean(axis=(1, 2)) > 0).astype(np.int64)  # class from the top half
    return bundle_from_arrays(x, y)


RECIPE = {
    "model": {"name": "cnn2d", "channels": [4], "hidden": [8]},
    "train": {"epochs": 3, "batch_size": 32, "efficiency": False},
}


@pytest.mark.parametrize("every_epoch", [True, False])
def test_in_the_loop_evaluation_uses_tta_and_checkpoints_load_into_the_bare_model(every_epoch, tmp_path):
    data = _images()
    recipe = {**RECIPE, "methods": [{"name": "tta", "shifts": [1], "every_epoch": every_epoch}]}
    r = tunelab.fit(recipe, data=data, out=tmp_path / "run")
    assert r.status == "completed" and isinstance(r.model, TTAModel)
    assert (
        r.info["tta"]["every_epoch"] is every_epoch and len(r.info["tta"]["views"]) == 6
    )  # id, hflip, 4 shifts
    plain = build_model(r.recipe.model, data.input_shape, data.num_outputs)
    for name in ("best.pt", "final.pt"):
        plain.load_state_dict(torch.load(tmp_path / "run" / name, weights_only=True))  # strict
    # The reported val figures are those of the TTA average over the plain model's views.
    plain.eval()
    with torch.no_grad():
        probs = torch.stack([plain(v).softmax(-1) for v in tta_views(data.x_val, hflip=True, shifts=(1,))])
        acc = float((probs.mean(0).argmax(-1) == data.y_val).float().mean())
        plain_acc = float((plain(data.x_val).argmax(-1) == data.y_val).float().mean())
    assert r.val["accuracy"] == pytest.approx(acc)
    # The same recipe without TTA trains the same weights: only the evaluation differs.
    base = tunelab.fit(RECIPE, data=data, save=False)
    if every_epoch:
        assert base.history[-1]["train"] == r.history[-1]["train"]
    else:  # epochs evaluated plainly: the per-epoch history is the run without TTA
        assert [h["val"] for h in base.history] == [h["val"] for h in r.history]
    assert base.val["accuracy"] == pytest.approx(plain_acc)


def test_tta_must_follow_methods_that_choose_the_evaluated_model():
    with pytest.raises(RecipeError) as e:
        load_recipe({"methods": [{"name": "tta"}, {"name": "ema"}]})
    assert e.value.path == "methods" and "after" in str(e.value)
    load_recipe({"methods": [{"name": "ema"}, {"name": "tta"}]})


def test_tta_after_ema_wraps_the_average_and_a_later_chooser_is_caught_at_run_time(tmp_path):
    data = _images()
    ema, tta = EMA(), TTA(shifts=(1,))
    r = tunelab.fit(RECIPE, data=data, methods=[ema, tta], save=False)
    assert isinstance(r.model, TTAModel) and r.model.model is ema.averaged.module
    with pytest.raises(RecipeError, match="replaced the evaluated model"):
        tunelab.fit({**RECIPE, "methods": [{"name": "tta"}]}, data=data, methods=[EMA()], save=False)


@pytest.mark.parametrize(
    ("params", "shape", "match"),
    [
        ({}, (4,), "this data has"),
        ({"hflip": False}, (1, 6, 6), "no view besides"),
        ({}, (1, 40), "no view besides"),  # signals: no flip by default, and no shifts given
        ({"vflip": True, "shifts": [1]}, (1, 40), "no vertical axis"),
        ({"shifts": [6]}, (1, 6, 6), "smaller than"),
    ],
)
def test_refusals(params, shape, match):
    with pytest.raises(RecipeError, match=match):
        TTA(**params).setup(_state(shape))


def test_hooks_follow_the_timing_and_the_entry_is_documented():
    assert {e for e in EVENTS if hooks_of([TTA()], e)} == {"setup", "eval_model", "epoch_end"}
    assert {e for e in EVENTS if hooks_of([TTA(every_epoch=False)], e)} == {"setup", "fit_end"}
    entry = METHODS.get("tta")
    for p in entry.params:
        assert p.doc and not p.required
        assert entry.check({p.name: p.default}, "methods.tta") == {p.name: p.default}
    assert math.isclose(len(view_plan(2, hflip=True, shifts=(1, 2))), 1 + 1 + 8)
