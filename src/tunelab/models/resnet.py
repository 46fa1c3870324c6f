"""``resnet``: a small residual network for signals (C, L) or images (C, H, W).

The dimension follows the input rank, so one implementation serves 1-D and 2-D data:
stem conv -> stages of residual blocks (the first block of every stage after the first halves the
resolution and changes the width) -> global average pool -> [Dropout] -> Linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from torch import Tensor, nn

from tunelab.errors import RecipeError
from tunelab.models._base import MODELS, Activation, Widths, check_input, make_activation, require_blocks
from tunelab.models.cnn import LAYERS
from tunelab.schema import Doc, Range


class ResidualBlock(nn.Module):
    """Two convs with a shortcut: ``act(conv-norm-act-conv-norm(x) + shortcut(x))`` (He et al. 2016).

    ``dim`` is 1 or 2; ``kernel_size`` must be odd.

    >>> import torch
    >>> ResidualBlock(1, 8, 16, stride=2)(torch.zeros(2, 8, 9)).shape
    torch.Size([2, 16, 5])
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        kernel_size: int = 3,
        activation: str = "relu",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        conv, norm = LAYERS[dim][:2]
        # An odd k with padding k // 2 gives ceil(L / 2) at stride 2, the length of the 1x1 strided
        # shortcut, and keeps L at stride 1; no symmetric padding does both for an even k.
        pad = kernel_size // 2
        # BatchNorm's shift makes the conv bias redundant.
        bias = not batch_norm
        self.main = nn.Sequential(
            conv(in_channels, out_channels, kernel_size, stride=stride, padding=pad, bias=bias),
            *([norm(out_channels)] if batch_norm else []),
            make_activation(activation),
            conv(out_channels, out_channels, kernel_size, padding=pad, bias=bias),
            *([norm(out_channels)] if batch_norm else []),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # A 1x1 projection matches width and resolution when the block changes them.
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, 1, stride=stride, bias=bias),
                *([norm(out_channels)] if batch_norm else []),
            )
        self.act = make_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.main(x) + self.shortcut(x))  # [B, Cin, *S] -> [B, Cout, *S/stride]


def check_resnet(params: Mapping[str, Any], path: str) -> None:
    """``validate=`` hook: at least one stage, and an odd kernel so both branches of a block align."""
    require_blocks(params, path)
    k = params.get("kernel_size")
    if k is not None and k % 2 == 0:
        raise RecipeError(
            f"{path}.kernel_size", k, "must be odd (e.g. 3 or 5) so a block's conv and shortcut outputs align"
        )


@MODELS.register(
    "resnet",
    "Small residual network for signals (C, L) or images (C, H, W).",
    skip=2,
    validate=check_resnet,
)
class ResNet(nn.Module):
    """Residual network; 1-D convolutions for ``(C, L)`` input, 2-D for ``(C, H, W)``.

    >>> import torch
    >>> ResNet((1, 40), 10)(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    >>> ResNet((3, 8, 8), 4, channels=[8, 16], blocks_per_stage=1)(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        *,
        # Three stages (resolution 1, 1/2, 1/4): MNIST-1D's 40 steps end at 10, 8x8 images at 2x2.
        channels: Annotated[Widths, Doc("width of each stage of residual blocks")] = (32, 64, 128),
        # One block per stage (7 conv layers in all) is deep enough for small data and fast on a CPU.
        blocks_per_stage: Annotated[int, Range(ge=1), Doc("residual blocks in each stage")] = 1,
        # 3 is the usual residual kernel; depth grows the receptive field.
        kernel_size: Annotated[int, Range(ge=1), Doc("conv kernel size (odd)")] = 3,
        activation: Annotated[Activation, Doc("nonlinearity inside and after each block")] = "relu",
        # A little dropout before the classifier guards against overfitting on a few thousand samples.
        dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout before the final Linear")] = 0.1,
        # Residual stacks train reliably with BatchNorm; without it, the sums grow with depth.
        batch_norm: Annotated[bool, Doc("BatchNorm after each conv")] = True,
    ) -> None:
        super().__init__()
        shape = check_input("resnet", input_shape, ranks=(2, 3), num_outputs=num_outputs)
        check_resnet({"channels": channels, "kernel_size": kernel_size}, "model")
        dim = len(shape) - 1
        conv, norm = LAYERS[dim][:2]
        self.stem = nn.Sequential(  # [B, C, *S] -> [B, channels[0], *S]
            conv(shape[0], channels[0], kernel_size, padding=kernel_size // 2, bias=not batch_norm),
            *([norm(channels[0])] if batch_norm else []),
            make_activation(activation),
        )
        blocks: list[nn.Module] = []
        width = channels[0]
        for stage, ch in enumerate(channels):
            for b in range(blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(
                    ResidualBlock(
                        dim,
                        width,
                        ch,
                        stride=stride,
                        kernel_size=kernel_size,
                        activation=activation,
                        batch_norm=batch_norm,
                    )
                )
                width = ch
        self.blocks = nn.Sequential(*blocks)  # [B, channels[0], *S] -> [B, channels[-1], *S']
        pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(  # [B, channels[-1], *S'] -> [B, num_outputs]
            pool,
            nn.Flatten(),
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(width, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))  # [B, *input_shape] -> [B, num_outputs]
