"""``resnet``: one residual network whose dimension follows the input rank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models import MODELS
from tunelab.models.resnet import ResidualBlock, ResNet


def _count(model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_dimension_follows_input_rank() -> None:
    signal, image = ResNet((1, 40), 10), ResNet((3, 8, 8), 10)
    assert _count(signal, nn.Conv1d) > 0 and _count(signal, nn.Conv2d) == 0
    assert _count(image, nn.Conv2d) > 0 and _count(image, nn.Conv1d) == 0
    assert image.eval()(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


def test_stages_halve_resolution_and_set_width() -> None:
    model = ResNet((1, 40), 10, channels=[8, 16, 32], blocks_per_stage=2).eval()
    assert _count(model, ResidualBlock) == 6
    feats = model.blocks(model.stem(torch.zeros(1, 1, 40)))
    assert feats.shape == (1, 32, 10)  # 40 -> 20 -> 10 over stages 2 and 3


def test_shortcut_projects_only_when_the_shape_changes() -> None:
    same, changed = ResidualBlock(2, 8, 8), ResidualBlock(2, 8, 16, stride=2)
    assert isinstance(same.shortcut, nn.Identity)
    assert isinstance(changed.shortcut[0], nn.Conv2d) and changed.shortcut[0].stride == (2, 2)


def test_block_adds_the_shortcut() -> None:
    block = ResidualBlock(1, 4, 4, batch_norm=False)
    with torch.no_grad():
        for conv in (block.main[0], block.main[2]):  # zero residual branch: the block is act(x)
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.randn(2, 4, 9)
    assert torch.equal(block(x), torch.relu(x))


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 11), (2, 12), (1, 7, 5)])
def test_odd_kernels_keep_branches_aligned_on_odd_and_even_sizes(
    kernel_size: int, shape: tuple[int, ...]
) -> None:
    model = ResNet(shape, 3, channels=[4, 8, 8], kernel_size=kernel_size).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 3)


def test_even_kernel_is_a_recipe_error_at_validation_and_build() -> None:
    with pytest.raises(RecipeError, match="must be odd") as info:
        MODELS.get("resnet").check({"kernel_size": 4}, "model")
    assert info.value.path == "model.kernel_size"
    with pytest.raises(RecipeError, match="must be odd"):
        ResNet((1, 40), 3, kernel_size=2)


def test_dropout_and_batch_norm_insert_and_remove_layers() -> None:
    on = ResNet((1, 40), 3, channels=[4, 8], dropout=0.2, batch_norm=True)
    assert _count(on, nn.Dropout) == 1
    # stem 1 + block 1: 2 + block 2: 2 + its projection shortcut 1
    assert _count(on, nn.BatchNorm1d) == 6
    off = ResNet((1, 40), 3, channels=[4, 8], dropout=0.0, batch_norm=False)
    assert _count(off, (nn.Dropout, nn.BatchNorm1d)) == 0
    assert all(m.bias is not None for m in off.modules() if isinstance(m, nn.Conv1d))


def test_activation_choice() -> None:
    model = ResNet((1, 40), 3, channels=[4], activation="elu")
    assert _count(model, nn.ELU) == 3 and _count(model, nn.ReLU) == 0  # stem, inside and after the block


def test_tabular_input_is_rejected_with_a_fix() -> None:
    with pytest.raises(ModelError) as info:
        ResNet((6,), 2)
    assert str(info.value) == "resnet needs signal input (C, L) or image input (C, H, W); got (6,); use mlp"
