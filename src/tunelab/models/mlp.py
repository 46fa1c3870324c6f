"""``mlp``: a multilayer perceptron on the flattened input (tabular data, or a baseline on any input).

With categorical columns encoded for embeddings (``preprocess.encoding: embedding``), the data
tells the model which inputs are category codes (``DataBundle.meta["embeddings"]``), and the mlp
puts an ``nn.Embedding`` per categorical column in front of its dense stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from tunelab.errors import ModelError
from tunelab.models._base import MODELS, Activation, Widths, check_input, dense_stack, flat_size
from tunelab.schema import Doc, Range


def embedding_width(cardinality: int, cap: int) -> int:
    """fastai's rule of thumb, ``min(cap, round(1.6 * cardinality ** 0.56))``: wide enough for the
    categories to separate, and growing slowly so a many-valued column does not dominate.

    >>> embedding_width(3, 16), embedding_width(1000, 16)
    (3, 16)
    """
    return max(1, min(cap, round(1.6 * cardinality**0.56)))


class CategoryEmbeddings(nn.Module):
    """``[B, numeric + C]`` -> ``[B, numeric + sum(widths)]``: the first ``numeric`` inputs pass
    through; each of the last C is a category code (a float holding 0..K) looked up in its own
    embedding table (code 0 is the category unseen in train)."""

    def __init__(self, numeric: int, cardinalities: Sequence[int], cap: int) -> None:
        super().__init__()
        self.numeric = numeric
        self.tables = nn.ModuleList(nn.Embedding(k, embedding_width(k, cap)) for k in cardinalities)
        self.out_features = numeric + sum(t.embedding_dim for t in self.tables)

    def forward(self, x: Tensor) -> Tensor:
        codes = x[:, self.numeric :].round().long()  # [B, C]
        looked_up = [table(codes[:, i]) for i, table in enumerate(self.tables)]  # C x [B, width]
        return torch.cat([x[:, : self.numeric], *looked_up], dim=1)


@MODELS.register("mlp", "Multilayer perceptron on the flattened input.", skip=3, embeddings=True)
def mlp(
    input_shape: tuple[int, ...],
    num_outputs: int,
    embeddings: Mapping[str, Any] | None = None,
    *,
    # Two layers of 128 fit most small tabular sets without the capacity to memorize them quickly.
    hidden: Annotated[Widths, Doc("width of each hidden layer")] = (128, 128),
    activation: Annotated[Activation, Doc("nonlinearity after each hidden layer")] = "relu",
    # A little dropout is a cheap guard against overfitting on a few thousand samples.
    dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout after each hidden layer")] = 0.1,
    # Off by default: on small tabular sets the statistics of a small batch are noisy, and a
    # two-layer MLP trains well with Adam without it.
    batch_norm: Annotated[bool, Doc("BatchNorm1d after each hidden Linear")] = False,
    # 16 holds the few categories of a table's column; the width also grows with the categories.
    embedding_dim: Annotated[
        int,
        Range(ge=1),
        Doc("largest embedding width per categorical column (preprocess.encoding: embedding)"),
    ] = 16,
) -> nn.Module:
    """Flatten ``[B, *input_shape]``, then Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer.

    ``hidden=[]`` gives a linear model (with dropout on its inputs if ``dropout > 0``).
    ``embeddings`` (``{"numeric": n, "cardinalities": [...]}``, given by the data, not the
    recipe) adds a ``CategoryEmbeddings`` layer first.

    >>> import torch
    >>> net = mlp((4,), 3, hidden=[16], dropout=0.0)
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    >>> net = mlp((3,), 2, {"numeric": 1, "cardinalities": [4, 3]}, hidden=[8])
    >>> net(torch.tensor([[0.5, 3.0, 0.0]])).shape
    torch.Size([1, 2])
    """
    shape = check_input("mlp", input_shape, ranks=(1, 2, 3), num_outputs=num_outputs)
    front: list[nn.Module] = [nn.Flatten()]
    width = flat_size(shape)
    if embeddings:
        numeric, cards = int(embeddings["numeric"]), [int(k) for k in embeddings["cardinalities"]]
        if len(shape) != 1 or numeric + len(cards) != shape[0]:
            raise ModelError(
                f"mlp: the data says {numeric} numeric inputs and {len(cards)} category codes, but the "
                f"input shape is {shape}"
            )
        layer = CategoryEmbeddings(numeric, cards, embedding_dim)
        front, width = [layer], layer.out_features
    layers = dense_stack(
        width,
        hidden,
        num_outputs,
        activation_name=activation,
        dropout=dropout,
        batch_norm=batch_norm,
    )
    return nn.Sequential(*front, *layers)  # [B, *shape] -> [B, F] -> [B, num_outputs]
