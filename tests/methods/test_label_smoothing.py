from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.errors import RecipeError
from tunelab.methods.label_smoothing import LabelSmoothing, smooth_labels
from tunelab.recipe import Recipe
from tunelab.spec import MethodSpec, TrainSpec


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reference cross entropy against a target distribution, written out."""
    return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def test_closed_form():
    out = smooth_labels(torch.tensor([1, 0]), num_classes=4, eps=0.2)
    expected = torch.tensor([[0.05, 0.85, 0.05, 0.05], [0.85, 0.05, 0.05, 0.05]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(1), torch.ones(2))
    torch.testing.assert_close(smooth_labels(torch.tensor([2]), 3, 0.0), torch.tensor([[0.0, 0.0, 1.0]]))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_matches_torch_label_smoothing_on_indices(eps):
    torch.manual_seed(0)
    logits, y = torch.randn(32, 5), torch.randint(0, 5, (32,))
    torch.testing.assert_close(
        _soft_ce(logits, smooth_labels(y, 5, eps)), F.cross_entropy(logits, y, label_smoothing=eps)
    )


def test_soft_targets_are_smoothed_once():
    # A mixup target: torch applies the same formula to probabilities, so smoothing in the
    # criterion equals smoothing the mixed target once.
    torch.manual_seed(1)
    logits = torch.randn(16, 4)
    a, b = torch.randint(0, 4, (16,)), torch.randint(0, 4, (16,))
    mixed = 0.7 * F.one_hot(a, 4).float() + 0.3 * F.one_hot(b, 4).float()
    torch.testing.assert_close(
        F.cross_entropy(logits, mixed, label_smoothing=0.1), _soft_ce(logits, smooth_labels(mixed, 4, 0.1))
    )
    with pytest.raises(ValueError):
        smooth_labels(mixed, 5, 0.1)  # the wrong number of classes


def test_adapter_replaces_criterion(state_factory):
    state = state_factory(nn.Linear(3, 4))
    LabelSmoothing(eps=0.2).setup(state)
    torch.manual_seed(2)
    logits, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    torch.testing.assert_close(state.criterion(logits, y), F.cross_entropy(logits, y, label_smoothing=0.2))
    assert not torch.allclose(state.criterion(logits, y), F.cross_entropy(logits, y))


def test_regression_is_refused(state_factory):
    state = state_factory(nn.Linear(3, 1), task="regression")
    with pytest.raises(RecipeError) as e:
        LabelSmoothing().setup(state)
    assert e.value.path == "methods.label_smoothing"
    assert "classification only" in str(e.value)
    with pytest.raises(RecipeError):
        LabelSmoothing.validate_recipe(Recipe(train=TrainSpec(loss="mse")), MethodSpec("label_smoothing"))
    LabelSmoothing.validate_recipe(Recipe(), MethodSpec("label_smoothing"))
