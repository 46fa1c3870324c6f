"""``cnn1d`` / ``cnn2d``: one ConvNet parameterized by dimension."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models.cnn import CNN1d, CNN2d, ConvNet


def _count(model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_both_dimensions_are_one_implementation() -> None:
    assert issubclass(CNN1d, ConvNet) and issubclass(CNN2d, ConvNet)
    assert CNN1d.__init__ is CNN2d.__init__ is ConvNet.__init__
    assert _count(CNN1d((1, 40), 10), nn.Conv1d) == 3 and _count(CNN1d((1, 40), 10), nn.Conv2d) == 0
    assert _count(CNN2d((1, 8, 8), 10), nn.Conv2d) == 3 and _count(CNN2d((1, 8, 8), 10), nn.Conv1d) == 0


def test_default_cnn1d_fits_mnist1d() -> None:
    model = CNN1d((1, 40), 10).eval()
    assert model.features(torch.zeros(2, 1, 40)).shape == (2, 128, 5)  # 40 -> 20 -> 10 -> 5
    assert model(torch.zeros(2, 1, 40)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(3, 9, 7), (1, 8, 8), (2, 1, 1)])
def test_cnn2d_handles_odd_and_tiny_images(shape: tuple[int, ...]) -> None:
    assert CNN2d(shape, 4).eval()(torch.zeros(2, *shape)).shape == (2, 4)


def test_extra_blocks_never_shrink_a_map_to_nothing() -> None:
    model = CNN1d((1, 5), 2, channels=[4] * 6).eval()
    assert model.features(torch.zeros(1, 1, 5)).shape == (1, 4, 1)  # 5 -> 3 -> 2 -> 1 -> 1 ...


@pytest.mark.parametrize(("pooling", "kind"), [("max", nn.MaxPool1d), ("avg", nn.AvgPool1d)])
def test_pooling_choice(pooling: str, kind: type[nn.Module]) -> None:
    assert _count(CNN1d((1, 40), 3, pooling=pooling), kind) == 3


def test_no_pooling_keeps_the_length() -> None:
    model = CNN1d((2, 12), 3, channels=[4, 6], pooling="none").eval()
    assert _count(model, (nn.MaxPool1d, nn.AvgPool1d)) == 0
    assert model.features(torch.zeros(1, 2, 12)).shape == (1, 6, 12)


# torch notes that 'same' padding of an even kernel pads asymmetrically; that is what we test.
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_kernel_size_and_same_padding() -> None:
    model = CNN1d((1, 40), 3, kernel_size=4, pooling="none").eval()  # even kernels keep the length too
    assert all(m.kernel_size == (4,) for m in model.modules() if isinstance(m, nn.Conv1d))
    assert model.features(torch.zeros(1, 1, 40)).shape[-1] == 40


def test_dropout_and_batch_norm_insert_and_remove_layers() -> None:
    on = CNN2d((1, 8, 8), 3, channels=[4, 8], hidden=[16], dropout=0.3, batch_norm=True)
    assert _count(on, nn.BatchNorm2d) == 2 and _count(on, nn.BatchNorm1d) == 1 and _count(on, nn.Dropout) == 1
    assert all(m.bias is None for m in on.modules() if isinstance(m, nn.Conv2d))  # BatchNorm shifts
    off = CNN2d((1, 8, 8), 3, channels=[4, 8], hidden=[16], dropout=0.0, batch_norm=False)
    assert _count(off, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) == 0
    assert all(m.bias is not None for m in off.modules() if isinstance(m, nn.Conv2d))


def test_head_without_hidden_layers_still_uses_dropout() -> None:
    model = CNN1d((1, 40), 3, hidden=[], dropout=0.2)
    assert [type(m) for m in model.head] == [nn.Dropout, nn.Linear]


def test_activation_choice() -> None:
    assert _count(CNN1d((1, 40), 3, channels=[4, 4], hidden=[8], activation="gelu"), nn.GELU) == 3


@pytest.mark.parametrize(
    ("cls", "shape", "message"),
    [
        (CNN1d, (4,), "cnn1d needs signal input (C, L); got (4,); use mlp"),
        (CNN1d, (1, 8, 8), "cnn1d needs signal input (C, L); got (1, 8, 8); use cnn2d"),
        (CNN2d, (4,), "cnn2d needs image input (C, H, W); got (4,); use mlp"),
        (CNN2d, (1, 40), "cnn2d needs image input (C, H, W); got (1, 40); use cnn1d"),
    ],
)
def test_shape_mismatch_says_what_to_use(cls: type[ConvNet], shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ModelError) as info:
        cls(shape, 2)
    assert str(info.value) == message


def test_empty_channels_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="at least one block") as info:
        CNN1d((1, 40), 2, channels=[])
    assert info.value.path == "model.channels"
