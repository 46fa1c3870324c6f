"""Which parameters a penalty or weight decay applies to: one rule, used everywhere.

Biases and normalization scales/shifts (every parameter with fewer than two dimensions) only
shift or rescale activations; decaying them does not limit capacity and can hurt, so they are
excluded unless the recipe says otherwise (``optimizer.decay_bias_and_norm``).
"""

from __future__ import annotations

from torch import nn


def is_decayed(param: nn.Parameter) -> bool:
    """True for weight matrices and kernels (ndim >= 2), False for biases and norm parameters."""
    return param.ndim >= 2


def split_decay(
    model: nn.Module, include_bias_and_norm: bool = False
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed) trainable parameters of ``model``.

    >>> import torch
    >>> d, nd = split_decay(torch.nn.Linear(3, 2))
    >>> [p.shape for p in d], [p.shape for p in nd]
    ([torch.Size([2, 3])], [torch.Size([2])])
    """
    decayed, other = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decayed if include_bias_and_norm or is_decayed(p) else other).append(p)
    return decayed, other
