"""The two MNIST-1D recipes the compression benchmarks share, written out here (not read from
examples/) so that the figures in the notes stay reproducible when an example recipe changes."""

from __future__ import annotations

from typing import Any

# An MLP 40-512-512-10: wide enough to be over-parameterized (288k weights), the usual case for
# pruning and int8; MNIST-1D is hard for an MLP (~68% val), a CNN reaches ~96%.
MLP: dict[str, Any] = {
    "data": {"name": "mnist1d"},
    "model": {"name": "mlp", "hidden": [512, 512], "dropout": 0.1},
    "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.01},
    "schedule": {"name": "onecycle"},
    "train": {"epochs": 40, "batch_size": 64},
    "methods": [{"name": "label_smoothing", "eps": 0.05}],
}

# examples/mnist1d_cnn.yaml as of the compression work (conv 32/64/128, kernel 5, dense 128).
CNN: dict[str, Any] = {
    "data": {"name": "mnist1d"},
    "model": {
        "name": "cnn1d",
        "channels": [32, 64, 128],
        "kernel_size": 5,
        "hidden": [128],
        "dropout": 0.1,
        "batch_norm": True,
        "init": "kaiming_normal",
    },
    "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01},
    "schedule": {"name": "onecycle"},
    "train": {"epochs": 30, "batch_size": 64, "seed": 0},
    "methods": [{"name": "label_smoothing", "eps": 0.05}, {"name": "grad_clip", "max_norm": 1.0}],
}
