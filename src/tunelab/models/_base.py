"""What the model families share: the registry, input-shape checks and the dense stack.

Every family is registered in ``MODELS`` as ``factory(input_shape, num_outputs, *, <params>)``
returning an ``nn.Module`` that maps ``[B, *input_shape]`` to ``[B, num_outputs]``. The keyword
parameters of the factory are the recipe schema of the ``model:`` section (see
``tunelab.registry``), so each default is written once, in the factory signature.

``input_shape`` is per sample and its rank says what the data is:

    (F,)        tabular: F features
    (C, L)      signal: C channels of length L (MNIST-1D is (1, 40))
    (C, H, W)   image: C channels of H x W pixels (sklearn digits are (1, 8, 8))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.registry import Registry
from tunelab.schema import Range

MODELS = Registry("model")

# Layer widths or channel counts, one per layer or block: a YAML list of positive integers.
Widths = tuple[Annotated[int, Range(ge=1)], ...]
Activation = Literal["relu", "gelu", "tanh", "sigmoid", "leaky_relu", "elu", "silu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}

# What each input rank is called in messages, and the family that fits it best.
_KIND = {1: "tabular input (F,)", 2: "signal input (C, L)", 3: "image input (C, H, W)"}
_FITS = {1: "mlp", 2: "cnn1d", 3: "cnn2d"}


def check_input(
    family: str, input_shape: Sequence[int], ranks: Sequence[int], num_outputs: int
) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple if ``family`` accepts its rank; ModelError otherwise.

    The error names the family, the shape it got, the shape it needs and the family to use.

    >>> check_input("cnn1d", [1, 40], ranks=(2,), num_outputs=10)
    (1, 40)
    >>> check_input("cnn2d", (4,), ranks=(3,), num_outputs=2)
    Traceback (most recent call last):
    ...
    tunelab.errors.ModelError: cnn2d needs image input (C, H, W); got (4,); use mlp
    """
    shape = tuple(input_shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ModelError(f"{family}: input_shape must be positive integers per sample; got {shape}")
    if not isinstance(num_outputs, int) or isinstance(num_outputs, bool) or num_outputs < 1:
        raise ModelError(f"{family}: num_outputs must be a positive integer; got {num_outputs!r}")
    if len(shape) in ranks:
        return shape
    needs = " or ".join(_KIND[r] for r in ranks)
    if len(shape) in _FITS:
        fix = f"use {_FITS[len(shape)]}"
    else:
        fix = "give the shape of one sample without the batch dimension: (F,), (C, L) or (C, H, W)"
    raise ModelError(f"{family} needs {needs}; got {shape}; {fix}")


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name: ``make_activation("gelu")`` -> ``nn.GELU()``."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise RecipeError("model.activation", name, "must be one of " + ", ".join(ACTIVATIONS)) from None


def dense_stack(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation_name: str,
    dropout: float,
    batch_norm: bool,
) -> list[nn.Module]:
    """Layers of a fully connected stack on flat features ``[B, in_features] -> [B, out_features]``.

    Each hidden layer is Linear -> BatchNorm1d (if ``batch_norm``) -> activation -> Dropout (if
    ``dropout > 0``). With no hidden layer, the dropout acts on the input of the single Linear, so
    a dropout the recipe asks for is never silently ignored.

    >>> [type(m).__name__ for m in dense_stack(4, [8], 2, activation_name="relu", dropout=0.1,
    ...                                        batch_norm=True)]
    ['Linear', 'BatchNorm1d', 'ReLU', 'Dropout', 'Linear']
    """
    layers: list[nn.Module] = []
    if not hidden and dropout > 0:
        layers.append(nn.Dropout(dropout))
    width = in_features
    for h in hidden:
        # BatchNorm's shift makes the Linear bias redundant.
        layers.append(nn.Linear(width, h, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(make_activation(activation_name))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return layers


def require_blocks(params: Mapping[str, Any], path: str) -> None:
    """``validate=`` hook of the conv families: ``channels`` must name at least one block."""
    if "channels" in params and len(params["channels"]) == 0:
        raise RecipeError(
            f"{path}.channels", params["channels"], "must list at least one block, e.g. [32, 64]"
        )


def flat_size(shape: Sequence[int]) -> int:
    """Number of features of one sample: ``flat_size((1, 8, 8)) == 64``."""
    return math.prod(shape)


def eager_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` that runs eagerly, even when ``model`` was compiled in place.

    ``nn.Module.compile()`` stores the compiled call on the module; a plain ``deepcopy`` would
    copy that reference, and the copy would then run the *original* module's forward.

    >>> import torch
    >>> net = nn.Linear(2, 1); net.compile(); twin = eager_copy(net)
    >>> twin.weight is net.weight, twin._compiled_call_impl is None
    (False, True)
    """
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if getattr(m, "_compiled_call_impl", None) is not None:
            m._compiled_call_impl = None
    return twin
