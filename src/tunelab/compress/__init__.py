"""Compression: a smaller, faster model at the same quality, measured on this machine.

* ``prune``       unstructured magnitude pruning (exact sparsity, global or per layer, gradual
                  schedules) and sparse storage; the ``prune`` training method
                  (``tunelab.methods.pruning``) hooks it into the loop
* ``structured``  channel / neuron removal with Torch-Pruning's dependency graph
* ``quantize``    dynamic int8 quantization of Linear layers (torchao ``quantize_``)
* ``artifacts``   saving each compressed model in a form that loads without tunelab

These are pure functions of a model: ``tunelab.study.compress.compress_run`` (``tunelab compress
RUN_DIR``) orchestrates them over a finished run.

    >>> import torch
    >>> from torch import nn
    >>> from tunelab.compress import prune_magnitude_, weight_sparsity
    >>> net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 3))
    >>> _ = prune_magnitude_(net, 0.9)
    >>> weight_sparsity(net)["zeros"]  # round(0.9 · 1150)
    1035
"""

from __future__ import annotations

from tunelab.compress.prune import (
    apply_masks_,
    dense_state_dict,
    magnitude_masks,
    prunable_weights,
    prune_magnitude_,
    sparse_state_dict,
    sparsity_schedule,
    weight_sparsity,
)
from tunelab.compress.quantize import linear_weight_bytes, quantize_dynamic_int8, tensor_bytes
from tunelab.compress.structured import ChannelPruning, mask_removed_inputs_, prune_channels

__all__ = [
    "ChannelPruning",
    "apply_masks_",
    "dense_state_dict",
    "linear_weight_bytes",
    "magnitude_masks",
    "mask_removed_inputs_",
    "prunable_weights",
    "prune_channels",
    "prune_magnitude_",
    "quantize_dynamic_int8",
    "sparse_state_dict",
    "sparsity_schedule",
    "tensor_bytes",
    "weight_sparsity",
]
