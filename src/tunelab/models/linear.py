"""``linear``: logistic regression (classification) or linear regression: flatten + one Linear.

The baseline every other family has to beat; it takes any input shape and has no parameters.
"""

from __future__ import annotations

from torch import nn

from tunelab.models._base import MODELS, check_input, flat_size


@MODELS.register("linear", "Logistic / linear regression: flatten, then one Linear layer.", skip=2)
def linear(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Flatten ``[B, *input_shape]`` and map it to ``[B, num_outputs]`` with one Linear layer.

    >>> import torch
    >>> linear((1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    shape = check_input("linear", input_shape, ranks=(1, 2, 3), num_outputs=num_outputs)
    return nn.Sequential(nn.Flatten(), nn.Linear(flat_size(shape), num_outputs))
