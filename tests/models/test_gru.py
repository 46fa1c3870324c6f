"""``gru``: how each input kind becomes a sequence, and the recurrent network's options."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError
from tunelab.models.gru import GRUNet, as_sequence


def test_tabular_is_one_feature_per_step() -> None:
    x = torch.randn(2, 5)
    seq = as_sequence(x)  # [2, 5, 1]
    assert seq.shape == (2, 5, 1) and torch.equal(seq[:, 3, 0], x[:, 3])


def test_signal_is_one_position_per_step() -> None:
    x = torch.randn(2, 3, 7)
    seq = as_sequence(x)  # [2, 7, 3]
    assert seq.shape == (2, 7, 3) and torch.equal(seq[:, 4], x[:, :, 4])


def test_image_is_read_row_by_row() -> None:
    x = torch.randn(2, 3, 8, 5)
    seq = as_sequence(x)  # [2, 8, 15]
    assert seq.shape == (2, 8, 15)
    assert torch.equal(seq[:, 6], x[:, :, 6, :].reshape(2, 15))


@pytest.mark.parametrize(("shape", "features"), [((6,), 1), ((2, 12), 2), ((3, 8, 5), 15)])
def test_gru_input_size_matches_the_step_features(shape: tuple[int, ...], features: int) -> None:
    model = GRUNet(shape, 4).eval()
    assert model.rnn.input_size == features
    assert model(torch.zeros(2, *shape)).shape == (2, 4)


def test_output_depends_on_step_order() -> None:
    torch.manual_seed(0)
    model = GRUNet((1, 12), 2).eval()
    x = torch.randn(3, 1, 12)
    assert not torch.allclose(model(x), model(x.flip(-1)))


def test_bidirectional_doubles_the_head_input() -> None:
    model = GRUNet((1, 12), 2, hidden_size=8, bidirectional=True).eval()
    assert model.head[-1].in_features == 16
    assert model(torch.zeros(3, 1, 12)).shape == (3, 2)


def test_dropout_between_layers_and_before_the_head() -> None:
    deep = GRUNet((1, 12), 2, num_layers=2, dropout=0.3)
    assert deep.rnn.dropout == 0.3 and isinstance(deep.head[0], nn.Dropout)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nn.GRU warns about dropout on a single layer: we avoid it
        shallow = GRUNet((1, 12), 2, num_layers=1, dropout=0.3)
    assert shallow.rnn.dropout == 0.0 and isinstance(shallow.head[0], nn.Dropout)
    assert not any(isinstance(m, nn.Dropout) for m in GRUNet((1, 12), 2, dropout=0.0).modules())


def test_batched_shape_is_rejected() -> None:
    with pytest.raises(ModelError, match=r"gru needs .*; got \(4, 1, 8, 8\); give the shape of one sample"):
        GRUNet((4, 1, 8, 8), 2)
