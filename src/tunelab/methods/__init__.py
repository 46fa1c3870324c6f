"""Training methods: each one a pure function plus a thin ``Method`` adapter hooking it into the loop.

``METHODS`` lists every method a recipe can name (``methods: [{name: l2, weight: 1e-4}]``); an
entry's parameters are its adapter's keyword arguments. The loop and its events are described in
``tunelab.methods._base``.

    >>> from tunelab.methods import METHODS
    >>> METHODS.get("l2").build(weight=1e-3).weight
    0.001
"""

from __future__ import annotations

# Each module registers its adapters into METHODS (defined in _base) on import; the modules are
# listed explicitly (no discovery magic).
from tunelab.methods import (
    augment,
    augment_mix,
    augment_text,
    augment_tta,
    clipping,
    early_stopping,
    ema,
    label_smoothing,
    pruning,
    quantization,
    regularization,
    transfer,
)
from tunelab.methods._base import EVENTS, METHODS, Method, TrainState, hooks_of

__all__ = [
    "EVENTS",
    "METHODS",
    "Method",
    "TrainState",
    "augment",
    "augment_mix",
    "augment_text",
    "augment_tta",
    "clipping",
    "early_stopping",
    "ema",
    "hooks_of",
    "label_smoothing",
    "pruning",
    "quantization",
    "regularization",
    "transfer",
]
