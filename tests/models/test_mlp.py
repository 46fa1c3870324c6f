"""``mlp``: hidden widths, activation, dropout and batch norm switch real layers on and off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.models._base import ACTIVATIONS
from tunelab.models.mlp import mlp


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_hidden_widths_make_the_layers() -> None:
    model = mlp((10,), 4, hidden=[32, 16, 8])
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [(10, 32), (32, 16), (16, 8), (8, 4)]


def test_dropout_and_batch_norm_insert_and_remove_layers() -> None:
    both = mlp((10,), 2, hidden=[8, 8], dropout=0.3, batch_norm=True)
    assert _count(both, nn.Dropout) == 2 and _count(both, nn.BatchNorm1d) == 2
    assert all(m.p == 0.3 for m in both.modules() if isinstance(m, nn.Dropout))
    neither = mlp((10,), 2, hidden=[8, 8], dropout=0.0, batch_norm=False)
    assert _count(neither, nn.Dropout) == 0 and _count(neither, nn.BatchNorm1d) == 0


def test_dropout_changes_training_outputs_only() -> None:
    torch.manual_seed(0)
    model = mlp((10,), 2, dropout=0.5)
    x = torch.randn(16, 10)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_choice_is_used_after_each_hidden_layer(name: str) -> None:
    model = mlp((4,), 2, hidden=[8, 8], activation=name)
    assert _count(model, ACTIVATIONS[name]) == 2


def test_no_hidden_layer_is_a_linear_model_with_input_dropout() -> None:
    model = mlp((6,), 3, hidden=[], dropout=0.2)
    assert [type(m) for m in model] == [nn.Flatten, nn.Dropout, nn.Linear]


def test_flattens_signals_and_images() -> None:
    assert mlp((1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert mlp((1, 40), 10)(torch.zeros(2, 1, 40)).shape == (2, 10)
