"""Mixup and CutMix: soft targets, the right pairs, per-sample weights, and label smoothing."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tunelab
from tunelab.data import bundle_from_arrays
from tunelab.errors import RecipeError
from tunelab.methods import METHODS, Method
from tunelab.methods.augment_mix import CutMix, Mixup, cutmix, cutmix_mask, mix_targets, mixup
from tunelab.methods.label_smoothing import LabelSmoothing, smooth_labels
from tunelab.recipe import load_recipe


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reference cross entropy against a target distribution, written out."""
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def _labelled(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample i is the constant i and has class i: the mixed input shows which pair and how much."""
    b = shape[0]
    x = torch.arange(b, dtype=torch.float32).view(b, *[1] * (len(shape) - 1)).expand(shape).contiguous()
    return x, torch.arange(b)


def _shares(xm: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per sample, the share of its entries holding each class's value: [B, C]."""
    flat = xm.flatten(1).round().long()  # [B, N]
    return F.one_hot(flat, num_classes).float().mean(dim=1)


def test_mix_targets_closed_form_and_soft_inputs():
    out = mix_targets(torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), torch.tensor([0.7, 1.0, 0.25]), 3)
    expected = torch.tensor([[0.7, 0.0, 0.3], [0.0, 1.0, 0.0], [0.0, 0.75, 0.25]])
    torch.testing.assert_close(out, expected)
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(
        mix_targets(soft, torch.tensor([1, 0]), torch.tensor([0.5, 0.5]), 3),
        torch.tensor([[0.25, 0.25, 0.5], [0.25, 0.25, 0.5]]),
    )


def test_mixup_mixes_the_right_pair_by_the_same_weight():
    x = torch.eye(16)  # sample i is the unit vector e_i and has class i
    torch.manual_seed(0)
    xm, ym = mixup(x, torch.arange(16), num_classes=16, alpha=1.0)
    # x̃_i = λ_i·e_i + (1 − λ_i)·e_perm[i]: with these inputs the target must be the input itself.
    torch.testing.assert_close(ym, xm)
    torch.testing.assert_close(ym.sum(1), torch.ones(16))
    lam = ym.diagonal()
    assert lam.unique().numel() > 8  # one weight per sample
    partners = (xm - torch.diag(lam)).argmax(1)
    assert sorted(partners[lam < 1].tolist()) == sorted(set(partners[lam < 1].tolist()))  # a permutation


@pytest.mark.parametrize("shape", [(32, 3, 8, 8), (32, 2, 40), (32, 12)])
def test_cutmix_target_shares_equal_the_input_shares(shape):
    x, y = _labelled(shape)
    torch.manual_seed(0)
    xm, ym = cutmix(x, y, num_classes=32, alpha=1.0)
    assert xm.shape == x.shape and ym.shape == (32, 32)
    torch.testing.assert_close(ym.sum(1), torch.ones(32))
    # The target weights each label by exactly the share of the sample it owns.
    torch.testing.assert_close(ym, _shares(xm, 32))
    assert ym.diagonal().unique().numel() > 5  # per-sample regions
    for c in range(1, x.shape[1] if len(shape) > 2 else 1):
        assert torch.equal(xm[:, c], xm[:, 0])  # all channels cut together


def test_cutmix_regions_are_a_box_a_segment_and_a_feature_count():
    torch.manual_seed(0)
    lam = torch.rand(64)
    box = cutmix_mask((64, 3, 16, 16), lam)[:, 0]  # [B, H, W]
    inside = 0
    for m, lm in zip(box, lam, strict=True):
        if m.any():
            rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
            assert bool(m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all())  # one rectangle
            assert m.sum() == len(rows) * len(cols)
            if 0 < rows.min() and rows.max() < 15 and 0 < cols.min() and cols.max() < 15:
                # Not clipped by a border: each side is √(1 − λ)·16 up to rounding.
                inside += 1
                side = float((1 - lm).sqrt()) * 16
                assert abs(len(rows) - side) <= 1 and abs(len(cols) - side) <= 1
    assert inside > 5
    seg = cutmix_mask((64, 1, 40), lam)[:, 0]  # [B, L]
    for m in seg:
        idx = m.nonzero().flatten()
        if len(idx):
            assert idx.max() - idx.min() + 1 == len(idx)  # contiguous
    feats = cutmix_mask((64, 10), lam)  # [B, F]
    torch.testing.assert_close(feats.sum(1).float(), ((1 - lam) * 10).round())
    assert len({tuple(m.tolist()) for m in feats}) > 20  # different subsets per sample


@pytest.mark.parametrize("fn", [mixup, cutmix])
def test_p_zero_is_the_identity_and_the_seed_decides(fn):
    x, y = torch.randn(16, 1, 20), torch.randint(0, 4, (16,))
    xm, ym = fn(x, y, 4, 1.0, p=0.0)
    assert torch.equal(xm, x) and torch.equal(ym, F.one_hot(y, 4).float())
    torch.manual_seed(3)
    a = fn(x, y, 4, 0.5)
    torch.manual_seed(3)
    b = fn(x, y, 4, 0.5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.manual_seed(4)
    assert not torch.equal(fn(x, y, 4, 0.5)[0], a[0])


def test_p_mixes_about_that_share_of_samples():
    x, y = torch.eye(2000), torch.arange(2000)
    torch.manual_seed(0)
    _, ym = mixup(x, y, 2000, alpha=1.0, p=0.3)
    mixed = (ym.diagonal() < 1).float().mean()
    assert 0.25 < float(mixed) < 0.35


# --- label smoothing: combined correctly, applied once -------------------------------------------


@pytest.mark.parametrize("fn", [mixup, cutmix])
def test_label_smoothing_of_mixed_targets_is_applied_exactly_once(fn, state_factory):
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 20), torch.randint(0, 5, (32,))
    _, soft = fn(x, y, 5, 1.0)
    logits = torch.randn(32, 5)
    state = state_factory(nn.Linear(3, 5))
    LabelSmoothing(eps=0.2).setup(state)  # the criterion the loop will use
    once = _soft_ce(logits, smooth_labels(soft, 5, 0.2))
    torch.testing.assert_close(state.criterion(logits, soft), once)
    twice = _soft_ce(logits, smooth_labels(smooth_labels(soft, 5, 0.2), 5, 0.2))
    assert not torch.allclose(once, twice)
    # (1 − eps)·ỹ + eps/C, written out: no other smoothing anywhere.
    torch.testing.assert_close(once, _soft_ce(logits, 0.8 * soft + 0.2 / 5))


class _LossProbe(Method):
    """Records the loss the loop computed and the targets it computed it from."""

    name = "probe"

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def loss(self, state, loss, out, y):
        self.seen.append((loss.detach(), out.detach(), y.detach()))
        return loss


@pytest.mark.parametrize("order", [["mixup", "label_smoothing"], ["label_smoothing", "mixup"]])
def test_in_the_loop_mixup_with_label_smoothing_is_one_smoothing_whatever_the_order(order):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    probe = _LossProbe()
    methods = [{"name": n, **({"eps": 0.1} if n == "label_smoothing" else {"alpha": 0.4})} for n in order]
    r = tunelab.fit(
        {
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"epochs": 1, "efficiency": False},
            "methods": methods,
        },
        data=bundle_from_arrays(x, y),
        methods=[probe],
        save=False,
    )
    assert r.status == "completed" and probe.seen
    for loss, out, soft in probe.seen:
        assert soft.shape == (len(out), 3) and soft.is_floating_point()
        torch.testing.assert_close(loss, _soft_ce(out, smooth_labels(soft, 3, 0.1)))


# --- refusals ------------------------------------------------------------------------------------


def test_mixup_and_cutmix_together_are_refused():
    with pytest.raises(RecipeError) as e:
        load_recipe({"methods": [{"name": "mixup"}, {"name": "cutmix"}]})
    assert "mixed twice" in str(e.value) and e.value.path in ("methods.mixup", "methods.cutmix")


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_regression_and_non_cross_entropy_losses_are_refused(name, state_factory):
    with pytest.raises(RecipeError) as e:
        load_recipe({"train": {"loss": "mse"}, "methods": [{"name": name}]})
    assert e.value.path == f"methods.{name}"
    state = state_factory(nn.Linear(3, 1), task="regression")
    state.data = SimpleNamespace(task="regression", input_shape=(3,), num_classes=None)
    with pytest.raises(RecipeError, match="classification only"):
        METHODS.get(name).build().setup(state)


@pytest.mark.parametrize("cls", [Mixup, CutMix])
def test_already_soft_targets_are_refused_in_the_batch(cls, state_factory):
    state = state_factory(nn.Linear(4, 3))
    state.data = SimpleNamespace(task="classification", input_shape=(4,), num_classes=3, meta={})
    method = cls()
    method.setup(state)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    xm, ym = method.batch(state, x, y)
    assert ym.shape == (8, 3)
    with pytest.raises(RecipeError, match="already mixed"):
        method.batch(state, xm, ym)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_trains_in_the_loop_deterministically_on_each_modality(name, tmp_path):
    rng = np.random.default_rng(0)
    for shape in [(6,), (1, 16), (1, 6, 6)]:
        x = rng.normal(size=(120, *shape)).astype(np.float32)
        flat = x.reshape(120, -1)
        y = (flat[:, 0] > 0).astype(np.int64) + (flat[:, 1] > 0)
        data = bundle_from_arrays(x, y)
        recipe = {
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"epochs": 2, "batch_size": 32, "efficiency": False},
            "methods": [{"name": name}],
        }
        build = functools.partial(tunelab.fit, recipe, data=data)
        a, b = build(out=tmp_path / f"{name}{len(shape)}"), build(save=False)
        assert a.status == "completed" and a.val == b.val
        assert [h["train"]["loss"] for h in a.history] == [h["train"]["loss"] for h in b.history]
        assert torch.load(tmp_path / f"{name}{len(shape)}" / "final.pt", weights_only=True).keys() == (
            a.model.state_dict().keys()
        )
