"""``linear``: flatten + one Linear, for any input shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError
from tunelab.models.linear import linear


@pytest.mark.parametrize("shape", [(5,), (2, 7), (1, 8, 8)])
def test_is_one_linear_map_of_the_flattened_input(shape: tuple[int, ...]) -> None:
    model = linear(shape, 3)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 1 and layers[0].in_features == torch.Size(shape).numel()
    x = torch.randn(4, *shape)
    expected = x.flatten(1) @ layers[0].weight.T + layers[0].bias  # [4, F] @ [F, 3] + [3]
    assert torch.allclose(model(x), expected)


def test_has_no_recipe_parameters_and_no_hidden_layers() -> None:
    model = linear((4,), 1)
    assert sum(p.numel() for p in model.parameters()) == 4 + 1
    with pytest.raises(TypeError):
        linear((4,), 1, dropout=0.1)  # type: ignore[call-arg]


def test_rejects_a_batched_shape() -> None:
    with pytest.raises(ModelError, match="linear needs tabular input"):
        linear((8, 1, 8, 8), 2)
