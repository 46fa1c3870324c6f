"""Shared helpers of the families: input-shape checks, activations, the dense stack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models._base import (
    ACTIVATIONS,
    check_input,
    dense_stack,
    flat_size,
    make_activation,
    require_blocks,
)


@pytest.mark.parametrize(
    ("family", "shape", "ranks", "message"),
    [
        ("cnn2d", (4,), (3,), "cnn2d needs image input (C, H, W); got (4,); use mlp"),
        ("cnn2d", (1, 40), (3,), "cnn2d needs image input (C, H, W); got (1, 40); use cnn1d"),
        ("cnn1d", (1, 8, 8), (2,), "cnn1d needs signal input (C, L); got (1, 8, 8); use cnn2d"),
        (
            "resnet",
            (4,),
            (2, 3),
            "resnet needs signal input (C, L) or image input (C, H, W); got (4,); use mlp",
        ),
    ],
)
def test_wrong_rank_names_family_shape_need_and_fix(
    family: str, shape: tuple[int, ...], ranks: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ModelError) as info:
        check_input(family, shape, ranks, num_outputs=2)
    assert str(info.value) == message


def test_batched_or_empty_shapes_are_explained() -> None:
    with pytest.raises(ModelError, match=r"got \(32, 1, 8, 8\); give the shape of one sample"):
        check_input("mlp", (32, 1, 8, 8), (1, 2, 3), num_outputs=2)
    with pytest.raises(ModelError, match=r"got \(\); give the shape of one sample"):
        check_input("mlp", (), (1, 2, 3), num_outputs=2)


@pytest.mark.parametrize("shape", [(0,), (3, -1), (2.5,)])
def test_non_positive_or_non_integer_dims_fail(shape: tuple) -> None:
    with pytest.raises(ModelError, match="input_shape must be positive integers"):
        check_input("mlp", shape, (1, 2), num_outputs=2)


@pytest.mark.parametrize("num_outputs", [0, -1, 2.0, True])
def test_num_outputs_must_be_a_positive_int(num_outputs: object) -> None:
    with pytest.raises(ModelError, match="num_outputs must be a positive integer"):
        check_input("mlp", (3,), (1,), num_outputs=num_outputs)  # type: ignore[arg-type]


def test_check_input_returns_a_tuple() -> None:
    assert check_input("gru", [2, 9], (1, 2, 3), num_outputs=1) == (2, 9)


def test_every_activation_name_builds_its_torch_module() -> None:
    for name, cls in ACTIVATIONS.items():
        assert type(make_activation(name)) is cls
    with pytest.raises(RecipeError, match="must be one of relu"):
        make_activation("swish")


def _types(layers: list[nn.Module]) -> list[str]:
    return [type(m).__name__ for m in layers]


def test_dense_stack_orders_norm_activation_dropout() -> None:
    layers = dense_stack(6, [8, 4], 2, activation_name="tanh", dropout=0.2, batch_norm=True)
    assert _types(layers) == [
        "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear",
    ]  # fmt: skip
    assert layers[0].bias is None and layers[-1].bias is not None  # BatchNorm shifts instead
    assert nn.Sequential(*layers).eval()(torch.zeros(3, 6)).shape == (3, 2)


def test_dense_stack_without_hidden_layers_drops_out_its_inputs() -> None:
    assert _types(dense_stack(6, [], 2, activation_name="relu", dropout=0.3, batch_norm=True)) == [
        "Dropout",
        "Linear",
    ]
    assert _types(dense_stack(6, [], 2, activation_name="relu", dropout=0.0, batch_norm=True)) == ["Linear"]


def test_require_blocks_rejects_empty_channels_only() -> None:
    require_blocks({"channels": (8,)}, "model")
    require_blocks({}, "model")  # not given: the default applies
    with pytest.raises(RecipeError) as info:
        require_blocks({"channels": ()}, "model")
    assert info.value.path == "model.channels"


def test_flat_size() -> None:
    assert flat_size((3, 8, 8)) == 192 and flat_size((7,)) == 7
