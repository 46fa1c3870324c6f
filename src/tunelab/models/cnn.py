"""``cnn1d`` and ``cnn2d``: one plain convolutional network, parameterized by dimension.

Each block is conv ('same' padding) -> [BatchNorm] -> activation -> [pool by 2]; the head flattens
the last feature map (keeping where a feature was, which matters for MNIST-1D) and applies a
dense stack. ``cnn1d`` reads signals (C, L), ``cnn2d`` images (C, H, W); both are the class
``ConvNet`` with a different ``dim``, so they share one implementation and one set of defaults.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from torch import Tensor, nn

from tunelab.models._base import (
    MODELS,
    Activation,
    Widths,
    check_input,
    dense_stack,
    make_activation,
    require_blocks,
)
from tunelab.schema import Doc, Range

# The torch layers of each dimension: (conv, batch norm, max pool, average pool).
LAYERS: dict[int, tuple[type[nn.Module], ...]] = {
    1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d),
    2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d),
}


class ConvNet(nn.Module):
    """Conv blocks then a dense head; ``dim`` (1 or 2) is set by the subclasses ``CNN1d``/``CNN2d``.

    >>> import torch
    >>> CNN1d((1, 40), 10)(torch.zeros(3, 1, 40)).shape
    torch.Size([3, 10])
    >>> CNN2d((1, 8, 8), 10, channels=[8, 16])(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """

    dim: ClassVar[int]
    family: ClassVar[str]

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        *,
        # Three blocks of widening channels: MNIST-1D's 40 steps pool to 5, enough for its digits.
        channels: Annotated[Widths, Doc("output channels of each conv block")] = (32, 64, 128),
        # 3 taps, the usual kernel: with pooling between blocks the third block sees 22 steps, about
        # half an MNIST-1D signal, and the dense head sees all of it. On MNIST-1D it scored as well
        # as 5 with fewer weights, and it suits small images too.
        kernel_size: Annotated[int, Range(ge=1), Doc("conv kernel size (odd keeps features centred)")] = 3,
        # Max pooling halves the length per block and keeps the strongest response, which is what
        # detects a pattern wherever it is shifted to.
        pooling: Annotated[Literal["max", "avg", "none"], Doc("downsampling by 2 after each block")] = "max",
        # One hidden layer of 128 mixes the flattened features; [] goes straight to the outputs.
        hidden: Annotated[Widths, Doc("widths of the dense head")] = (128,),
        activation: Annotated[Activation, Doc("nonlinearity after each conv and hidden layer")] = "relu",
        # Dropout in the head only: the conv layers have few weights; the dense head has most of them.
        dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout in the dense head")] = 0.1,
        # BatchNorm after each conv lets Adam's default lr train this depth fast and steadily.
        batch_norm: Annotated[bool, Doc("BatchNorm after each conv and hidden layer")] = True,
    ) -> None:
        super().__init__()
        shape = check_input(self.family, input_shape, ranks=(self.dim + 1,), num_outputs=num_outputs)
        require_blocks({"channels": channels}, "model")
        conv, norm, max_pool, avg_pool = LAYERS[self.dim]
        pool = {"max": max_pool, "avg": avg_pool, "none": None}[pooling]
        layers: list[nn.Module] = []
        width, size = shape[0], list(shape[1:])
        for ch in channels:
            # BatchNorm's shift makes the conv bias redundant.
            layers.append(conv(width, ch, kernel_size, padding="same", bias=not batch_norm))
            if batch_norm:
                layers.append(norm(ch))
            layers.append(make_activation(activation))
            if pool is not None:
                # ceil_mode keeps a length of 1 at 1, so extra blocks never shrink a map to nothing.
                layers.append(pool(2, ceil_mode=True))
                size = [math.ceil(s / 2) for s in size]
            width = ch
        self.features = nn.Sequential(*layers)  # [B, C, *S] -> [B, channels[-1], *S']
        self.head = nn.Sequential(  # [B, channels[-1] * prod(S')] -> [B, num_outputs]
            *dense_stack(
                width * math.prod(size),
                hidden,
                num_outputs,
                activation_name=activation,
                dropout=dropout,
                batch_norm=batch_norm,
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))  # [B, *input_shape] -> [B, num_outputs]


@MODELS.register(
    "cnn1d", "Convolutional network for signals (C, L), e.g. MNIST-1D.", skip=2, validate=require_blocks
)
class CNN1d(ConvNet):
    """``ConvNet`` over signals ``[B, C, L]`` with Conv1d / BatchNorm1d / pooling by 2."""

    dim = 1
    family = "cnn1d"


@MODELS.register("cnn2d", "Convolutional network for images (C, H, W).", skip=2, validate=require_blocks)
class CNN2d(ConvNet):
    """``ConvNet`` over images ``[B, C, H, W]`` with Conv2d / BatchNorm2d / pooling by 2."""

    dim = 2
    family = "cnn2d"
