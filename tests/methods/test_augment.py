"""Image, signal and tabular augmentation: the pure functions, the adapters, and the real loop."""

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
from tunelab.methods import METHODS, Method, hooks_of
from tunelab.methods.augment import (
    FeatureNoise,
    ImageAugment,
    SignalAugment,
    add_feature_noise,
    augment_images,
    augment_signals,
    image_augmentation,
    shift,
    stretch,
)
from tunelab.recipe import Recipe, load_recipe
from tunelab.spec import MethodSpec


def _images(b: int = 64, c: int = 1, h: int = 8, w: int = 8) -> torch.Tensor:
    """``b`` copies of one asymmetric image: any difference between outputs is the augmentation's."""
    torch.manual_seed(0)
    return torch.randn(1, c, h, w).expand(b, c, h, w).contiguous()


def _state(input_shape: tuple[int, ...], task: str = "classification", num_classes: int = 3):
    return SimpleNamespace(
        data=SimpleNamespace(input_shape=input_shape, task=task, num_classes=num_classes, meta={}),
        device=torch.device("cpu"),
        info={},
    )


# --- shift ---------------------------------------------------------------------------------------


def test_shift_closed_form_both_modes_and_per_sample():
    x = torch.arange(1.0, 6.0).view(1, 1, 5).repeat(3, 2, 1)  # [3, 2, 5]: 2 channels move together
    out = shift(x, torch.tensor([0, 2, -1]), mode="padded")
    assert out[:, 0].tolist() == [[1, 2, 3, 4, 5], [0, 0, 1, 2, 3], [2, 3, 4, 5, 0]]
    torch.testing.assert_close(out[:, 1], out[:, 0])
    out = shift(x, torch.tensor([0, 2, -1]), mode="circular")
    assert out[:, 0].tolist() == [[1, 2, 3, 4, 5], [4, 5, 1, 2, 3], [2, 3, 4, 5, 1]]
    torch.testing.assert_close(shift(x, 2, mode="circular"), torch.roll(x, 2, dims=-1))
    img = torch.arange(9.0).view(1, 1, 3, 3)
    assert shift(img, 1, dim=-2)[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError):
        shift(x, 1, mode="reflect")  # type: ignore[arg-type]


# --- images --------------------------------------------------------------------------------------


def test_image_identity_when_everything_is_off():
    x = _images()
    assert len(image_augmentation((8, 8))) == 0
    assert torch.equal(augment_images(x), x)
    assert torch.equal(augment_images(x, crop_padding=0, hflip=False, rotation=0.0, scale=None), x)


@pytest.mark.parametrize(
    "strengths",
    [
        {"crop_padding": 2},
        {"hflip": True},
        {"vflip": True},
        {"rotation": 30.0},
        {"scale": (0.7, 1.3)},
        {"brightness": 0.5},
        {"contrast": 0.5},
        {"erasing": 1.0},
        {"crop_padding": 1, "hflip": True, "rotation": 10.0, "brightness": 0.1, "erasing": 0.5},
    ],
)
def test_image_transforms_keep_shape_differ_per_sample_and_follow_the_seed(strengths):
    x = _images(c=3)
    torch.manual_seed(1)
    out = augment_images(x, **strengths)
    assert out.shape == x.shape and out.dtype == x.dtype
    distinct = {tuple(o.flatten().tolist()) for o in out.round(decimals=4)}
    assert len(distinct) > 1, "every sample got the same parameters"
    assert not torch.equal(out, x)
    torch.manual_seed(1)
    assert torch.equal(augment_images(x, **strengths), out)  # the global seed decides
    torch.manual_seed(2)
    assert not torch.equal(augment_images(x, **strengths), out)


def test_crop_with_padding_is_an_exact_integer_shift_within_the_padding():
    x, pad = _images(b=64), 2
    torch.manual_seed(0)
    out = augment_images(x, crop_padding=pad)
    seen = set()
    for o in out:
        matches = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if torch.allclose(o, shift(shift(x[:1], dy, dim=-2), dx, dim=-1)[0], atol=1e-5)
        ]
        assert matches, "a crop must equal the image shifted by whole pixels, padded with 0"
        seen.add(matches[0])
    assert len(seen) >= 10  # 25 possible offsets, drawn per sample


def test_flips_are_exact_and_about_half():
    x = _images(b=200)
    torch.manual_seed(0)
    out = augment_images(x, hflip=True)
    flipped = torch.tensor([torch.equal(o, x[0].flip(-1)) for o in out])
    same = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert bool((flipped | same).all())
    assert 60 < int(flipped.sum()) < 140


def test_brightness_adds_and_contrast_multiplies_per_sample_within_range():
    x = _images(b=32)
    torch.manual_seed(0)
    offset = augment_images(x, brightness=0.3) - x  # [B, C, H, W]: one constant per sample
    per_sample = offset.flatten(1)
    torch.testing.assert_close(per_sample, per_sample[:, :1].expand_as(per_sample))
    assert float(per_sample.abs().max()) <= 0.3 + 1e-6 and per_sample[:, 0].unique().numel() > 1
    ratio = (augment_images(x, contrast=0.3) / x).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert float(ratio.min()) >= 0.7 - 1e-5 and float(ratio.max()) <= 1.3 + 1e-5


def test_erasing_zeroes_one_rectangle_per_sample():
    x = _images(b=16, h=16, w=16).abs() + 1  # no zero pixels before erasing
    torch.manual_seed(0)
    out = augment_images(x, erasing=1.0)
    boxes = set()
    for o in out:
        zero = (o == 0).all(0)  # [H, W]: erased in every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert len(rows) and bool(zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all())
        assert torch.equal(o[:, ~zero], x[0][:, ~zero])  # the rest is untouched
        boxes.add((int(rows.min()), int(cols.min()), len(rows), len(cols)))
    assert len(boxes) > 1


# --- signals -------------------------------------------------------------------------------------


def test_signal_identity_when_everything_is_off():
    x = torch.randn(8, 2, 40)
    assert torch.equal(augment_signals(x), x)
    assert torch.equal(augment_signals(x, shift_max=0, scale=None, noise=0.0, time_stretch=None), x)


@pytest.mark.parametrize("mode", ["circular", "padded"])
def test_signal_shift_per_sample_in_range(mode):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 40).expand(64, 2, 40).contiguous()
    out = augment_signals(x, shift_max=5, shift_mode=mode)
    found = []
    for o in out:
        s = [s for s in range(-5, 6) if torch.equal(o, shift(x[:1], s, mode=mode)[0])]
        assert len(s) == 1
        found.append(s[0])
    assert len(set(found)) >= 8  # 11 possible shifts, drawn per sample


def test_signal_scale_noise_and_stretch():
    torch.manual_seed(0)
    x = torch.randn(1, 1, 40).expand(256, 1, 40).contiguous()
    ratio = (augment_signals(x, scale=(0.5, 2.0)) / x).squeeze(1)  # [B, L]
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert 0.5 <= float(ratio.min()) and float(ratio.max()) <= 2.0 and ratio[:, 0].unique().numel() > 100
    noise = augment_signals(x, noise=0.3) - x
    assert abs(float(noise.std()) - 0.3) < 0.01 and abs(float(noise.mean())) < 0.01
    stretched = augment_signals(x, time_stretch=(0.8, 1.25))
    assert stretched.shape == x.shape and len({tuple(s.flatten().tolist()) for s in stretched}) > 100


def test_stretch_matches_linear_interpolation_about_the_centre():
    torch.manual_seed(0)
    x, factors = torch.randn(3, 2, 41), torch.tensor([1.0, 1.5, 0.7])
    out = stretch(x, factors)
    torch.testing.assert_close(out[0], x[0])  # factor 1: unchanged
    t, c = np.arange(41.0), 20.0
    # Zero padding as grid_sample does it: a zero one step beyond each end, interpolated linearly.
    t_pad = np.arange(-1.0, 42.0)
    for b in (1, 2):
        for ch in range(2):
            x_pad = np.concatenate([[0.0], x[b, ch].numpy(), [0.0]])
            ref = np.interp(c + (t - c) / float(factors[b]), t_pad, x_pad, left=0.0, right=0.0)
            torch.testing.assert_close(out[b, ch], torch.from_numpy(ref).float(), atol=1e-5, rtol=1e-5)


# --- tabular -------------------------------------------------------------------------------------


def test_feature_noise_is_independent_per_sample_and_feature():
    torch.manual_seed(0)
    x = torch.zeros(4000, 5)
    noise = add_feature_noise(x, 0.2)
    assert abs(float(noise.std()) - 0.2) < 0.005
    corr = torch.corrcoef(noise.T)  # [F, F]: independent features are uncorrelated
    assert float((corr - torch.eye(5)).abs().max()) < 0.06
    assert torch.equal(add_feature_noise(x, 0.0), x)


# --- adapters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("image_augment", {"crop_padding": 0}),
        ("signal_augment", {"shift": 0}),
        ("feature_noise", {"std": 0.0}),
    ],
)
def test_a_method_that_would_do_nothing_is_refused(name, params):
    with pytest.raises(RecipeError) as e:
        load_recipe({"methods": [{"name": name, **params}]})
    assert e.value.path == f"methods.{name}" and "would do nothing" in str(e.value)


@pytest.mark.parametrize("key", ["scale", "time_stretch"])
def test_unordered_ranges_are_refused(key):
    with pytest.raises(RecipeError) as e:
        load_recipe({"methods": [{"name": "signal_augment", key: [1.2, 0.8]}]})
    assert e.value.path == f"methods.signal_augment.{key}"
    with pytest.raises(RecipeError):
        load_recipe({"methods": [{"name": "signal_augment", key: [1.0]}]})  # not a pair


@pytest.mark.parametrize(
    ("method", "shape"),
    [
        (ImageAugment(), (4,)),
        (ImageAugment(), (1, 40)),
        (SignalAugment(), (1, 8, 8)),
        (SignalAugment(), (4,)),
        (FeatureNoise(), (1, 40)),
    ],
)
def test_wrong_kind_of_data_is_refused_with_the_method_named(method, shape):
    with pytest.raises(RecipeError) as e:
        method.setup(_state(shape))
    assert e.value.path == f"methods.{method.name}"
    assert "this data has" in str(e.value)


def test_strengths_too_large_for_the_input_are_refused():
    with pytest.raises(RecipeError, match="smaller than"):
        ImageAugment(crop_padding=8).setup(_state((1, 8, 8)))
    with pytest.raises(RecipeError, match="smaller than"):
        SignalAugment(shift=40).setup(_state((1, 40)))


@pytest.mark.parametrize("name", ["image_augment", "signal_augment", "feature_noise"])
def test_adapters_hook_only_setup_and_batch_and_are_documented(name):
    entry = METHODS.get(name)
    method = entry.build()
    assert {e for e in ("setup", "batch", "loss", "eval_model", "epoch_end") if hooks_of([method], e)} == {
        "setup",
        "batch",
    }
    assert entry.description and len(entry.description) <= 100
    for p in entry.params:
        assert p.doc and not p.required
        assert entry.check({p.name: p.default}, f"methods.{name}") == {p.name: p.default}
    entry.obj.validate_recipe(Recipe(), MethodSpec(name))  # the defaults do something


# --- in the real loop: training batches augmented, evaluation clean ------------------------------


class Spy(nn.Module):
    """Records what the model is fed in training and in evaluation."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train_inputs: list[torch.Tensor] = []
        self.eval_inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (self.train_inputs if self.training else self.eval_inputs).append(x.detach().clone())
        return self.net(x)


CASES = {
    "image_augment": ((1, 8, 8), {"crop_padding": 1, "rotation": 10.0, "erasing": 0.5}),
    "signal_augment": ((1, 24), {"shift": 3, "noise": 0.1, "time_stretch": [0.9, 1.1]}),
    "feature_noise": ((6,), {"std": 0.3}),
}


def _toy(shape: tuple[int, ...]):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, *shape)).astype(np.float32)
    y = (x.reshape(120, -1)[:, 0] > 0).astype(np.int64) + (x.reshape(120, -1)[:, 1] > 0)
    return bundle_from_arrays(x, y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_in_the_loop_training_is_augmented_and_evaluation_is_clean(name, tmp_path):
    shape, params = CASES[name]
    data = _toy(shape)
    recipe = {
        "train": {"epochs": 2, "batch_size": 32, "efficiency": False},
        "methods": [{"name": name, **params}],
    }
    torch.manual_seed(0)  # the same initial weights for both runs
    spy = Spy(nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 3)))
    r = tunelab.fit(recipe, data=data, model=spy, out=tmp_path / "run")
    assert r.status == "completed" and r.info[name]
    # Training: no batch is a set of clean training samples.
    clean = {tuple(row.tolist()) for row in data.x_train.flatten(1).round(decimals=5)}
    for x in spy.train_inputs:
        rows = {tuple(row.tolist()) for row in x.flatten(1).round(decimals=5)}
        assert not rows <= clean
    # Evaluation (each epoch, the final val and test): exactly the clean split tensors.
    assert len(spy.eval_inputs) == 2 + 2  # no efficiency run: val per epoch, then val and test
    for x in spy.eval_inputs[:3]:
        assert torch.equal(x, data.x_val)
    assert torch.equal(spy.eval_inputs[3], data.x_test)
    # Same seed, same run; the checkpoint is the plain model's.
    torch.manual_seed(0)
    spy2 = Spy(nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 3)))
    r2 = tunelab.fit(recipe, data=data, model=spy2, save=False)
    assert [h["train"]["loss"] for h in r.history] == [h["train"]["loss"] for h in r2.history]
    state = torch.load(tmp_path / "run" / "final.pt", weights_only=True)
    assert state.keys() == spy.state_dict().keys()


def test_batch_hook_is_not_a_per_sample_loop():
    # One call on a large batch costs about as much as on a small one (vectorized): a per-sample
    # Python loop would take ~100x longer for 100x the samples. Loose bound, robust on a busy CPU.
    import time

    def cost(b: int) -> float:
        x = torch.randn(b, 1, 40)
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            augment_signals(x, shift_max=4, scale=(0.9, 1.1), noise=0.1, time_stretch=(0.9, 1.1))
            best = min(best, time.perf_counter() - t0)
        return best

    cost(8)
    assert cost(1600) < 30 * cost(16)


class _Recorder(Method):
    name = "recorder"

    def __init__(self) -> None:
        self.calls = 0

    def batch(self, state, x, y):
        self.calls += 1
        return x, y


def test_batch_event_fires_only_for_training_steps():
    data = _toy((4,))
    rec = _Recorder()
    r = tunelab.fit(
        {
            "train": {"epochs": 3, "batch_size": 16, "efficiency": False},
            "methods": [{"name": "feature_noise"}],
        },
        data=data,
        model=nn.Linear(4, 3),
        methods=[rec],
        save=False,
    )
    steps_per_epoch = math.ceil(len(data.x_train) / 16)
    assert rec.calls == 3 * steps_per_epoch and r.status == "completed"


def _penguins_embedding(methods):
    from tunelab.recipe import load_recipe
    from tunelab.train import prepare

    recipe = load_recipe(
        {
            "data": {"name": "penguins", "target": "sex"},
            "preprocess": {"encoding": "embedding"},
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"threads": 1},
            "methods": methods,
        }
    )
    return prepare(recipe)


def test_feature_noise_leaves_the_category_codes_of_embeddings_alone():
    prep = _penguins_embedding([{"name": "feature_noise", "std": 0.5}])
    state, method = prep.state, prep.methods[0]
    n = state.data.meta["embeddings"]["numeric"]
    x, y = state.data.x_train[:64], state.data.y_train[:64]
    noisy, _ = method.batch(state, x, y)
    assert torch.equal(noisy[:, n:], x[:, n:])  # codes: untouched
    assert not torch.equal(noisy[:, :n], x[:, :n]) and noisy.shape == x.shape  # numbers: noised
    assert "numeric columns" in state.info["feature_noise"]["columns"]


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_category_codes_for_embeddings_is_refused(name):
    with pytest.raises(RecipeError, match=r"preprocess\.encoding: onehot"):
        _penguins_embedding([{"name": name}])
