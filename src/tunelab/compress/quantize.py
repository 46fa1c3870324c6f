"""Post-training dynamic int8 quantization of Linear layers, on torchao's ``quantize_`` API.

``torch.ao.quantization.quantize_dynamic`` is deprecated in torch 2.13 (its warning points to
torchao's eager ``quantize_``), so tunelab uses ``quantize_(model,
Int8DynamicActivationInt8WeightConfig())``: each Linear weight becomes int8 with one float scale
per output row, and each activation is quantized to int8 per row at run time.

Measured on this CPU (torch 2.13, torchao 0.18, one thread), torchao's eager int8 path is *slower*
than fp32 at batch 1 (it quantizes the activations in Python-level ops around an int8 matmul);
under ``torch.compile`` the quantize and matmul fuse and a batch of 1024 runs several times faster
than fp32. That is why latency is measured, never assumed, and compiled when the recipe asks
(``train.compile``).

A quantized ``state_dict`` holds torchao tensor subclasses: it loads with torchao installed, not
tunelab, into the architecture quantized the same way::

    model = build the float architecture; quantize_(model, Int8DynamicActivationInt8WeightConfig())
    model.load_state_dict(torch.load("model.pt", weights_only=True), assign=True)
"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor, nn

from tunelab.errors import ModelError, TunelabError

__all__ = [
    "QUANT_CONFIG",
    "SCHEMES",
    "dequantized",
    "linear_weight_bytes",
    "quantize_dynamic_int8",
    "quantize_int8",
    "tensor_bytes",
]

QUANT_CONFIG = "Int8DynamicActivationInt8WeightConfig"  # recorded beside each saved model
# The schemes a recipe can name (methods.quantize.scheme) -> torchao's config class. Weight-only
# keeps float activations and dequantizes the int8 weights inside the matmul: the same 4x smaller
# weights, and on this CPU ~6x lower batch-1 latency than dynamic int8 (still ~2x fp32's).
SCHEMES = {"int8_dynamic": QUANT_CONFIG, "int8_weight_only": "Int8WeightOnlyConfig"}


def _torchao() -> Any:
    """Import torchao quietly: on a CPU build it logs a warning for each CUDA kernel library it
    cannot load (mxfp8, cutlass), which concerns GPUs only and would alarm a CPU user."""

    # torch's pytree also warns, once, that torchao registers an Enum the new way is to skip.
    logs = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        import torchao.quantization as q
    except ImportError as e:
        raise TunelabError(
            "int8 quantization needs torchao: pip install --no-deps torchao==0.18.0 "
            "(--no-deps keeps pip from replacing the installed torch)"
        ) from e
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)
    return q


def quantize_int8(model: nn.Module, scheme: str = "int8_dynamic") -> nn.Module:
    """Quantize every ``nn.Linear`` of ``model`` in place with one of ``SCHEMES``; returns ``model``.

    >>> import torch
    >>> net = quantize_int8(nn.Sequential(nn.Linear(64, 4)), "int8_weight_only")
    >>> type(net[0].weight).__name__, net(torch.zeros(2, 64)).shape
    ('Int8Tensor', torch.Size([2, 4]))
    """
    if scheme not in SCHEMES:
        raise TunelabError(f"quantization scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ModelError(
            f"{type(model).__name__} has no nn.Linear layer to quantize; int8 quantization "
            "applies to Linear layers only (drop --quantize)"
        )
    q = _torchao()
    model.eval()
    q.quantize_(model, getattr(q, SCHEMES[scheme])())
    return model


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Quantize every ``nn.Linear`` of ``model`` in place to dynamic int8 (weights and activations).

    Other layers (convolutions, norms) stay in float. The model is put in eval mode: the result
    is for inference (int8 weights have no gradient). Returns ``model``.

    >>> import torch
    >>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> q = quantize_dynamic_int8(net)
    >>> type(q[0].weight).__name__, q(torch.zeros(2, 64)).shape
    ('Int8Tensor', torch.Size([2, 4]))
    """
    return quantize_int8(model, "int8_dynamic")


def tensor_bytes(t: Tensor) -> int:
    """Bytes of a tensor's storage; for a tensor subclass (torchao), the sum of its inner tensors.

    >>> import torch
    >>> tensor_bytes(torch.zeros(10, 4)), tensor_bytes(torch.zeros(3, dtype=torch.int8))
    (160, 3)
    """
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None and type(t) not in (Tensor, nn.Parameter):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights of all ``nn.Linear`` layers (int8 data plus scales once quantized).

    >>> linear_weight_bytes(nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2)))  # (50 + 10) · 4
    240
    """
    return sum(tensor_bytes(m.weight) for m in model.modules() if isinstance(m, nn.Linear))


def dequantized(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with every quantized tensor (a torchao subclass) replaced by its float values.

    How a checkpoint of a quantized run loads into the float architecture (to fine-tune it or
    compress it further); plain tensors pass through unchanged.

    >>> import torch
    >>> dequantized({"w": torch.ones(2)})
    {'w': tensor([1., 1.])}
    """
    from tunelab.metrics.efficiency import dense_values

    return {k: dense_values(v) for k, v in state.items()}
