"""``mlp``: a multilayer perceptron on the flattened input (tabular data, or a baseline on any input)."""

from __future__ import annotations

from typing import Annotated

from torch import nn

from tunelab.models._base import MODELS, Activation, Widths, check_input, dense_stack, flat_size
from tunelab.schema import Doc, Range


@MODELS.register("mlp", "Multilayer perceptron on the flattened input.", skip=2)
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    # Two layers of 128 fit most small tabular sets without the capacity to memorize them quickly.
    hidden: Annotated[Widths, Doc("width of each hidden layer")] = (128, 128),
    activation: Annotated[Activation, Doc("nonlinearity after each hidden layer")] = "relu",
    # A little dropout is a cheap guard against overfitting on a few thousand samples.
    dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout after each hidden layer")] = 0.1,
    # Off by default: on small tabular sets the statistics of a small batch are noisy, and a
    # two-layer MLP trains well with Adam without it.
    batch_norm: Annotated[bool, Doc("BatchNorm1d after each hidden Linear")] = False,
) -> nn.Module:
    """Flatten ``[B, *input_shape]``, then Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer.

    ``hidden=[]`` gives a linear model (with dropout on its inputs if ``dropout > 0``).

    >>> import torch
    >>> net = mlp((4,), 3, hidden=[16], dropout=0.0)
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    """
    shape = check_input("mlp", input_shape, ranks=(1, 2, 3), num_outputs=num_outputs)
    layers = dense_stack(
        flat_size(shape),
        hidden,
        num_outputs,
        activation_name=activation,
        dropout=dropout,
        batch_norm=batch_norm,
    )
    return nn.Sequential(nn.Flatten(), *layers)  # [B, *shape] -> [B, F] -> [B, num_outputs]
