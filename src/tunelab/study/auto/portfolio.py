"""Known-good starting points of ``tunelab auto``'s search: trials enqueued before TPE samples.

A short search on a loaded machine may never sample a good corner of the playbook's large space:
a 5-minute digits search ended at 98.78% test while a CNN with crop/rotation augmentation and an
EMA of the weights, a point of that same space, reached 99.26%. AutoGluon's answer is a portfolio
of configurations that did well on many datasets, tried first (its "zero-shot" presets); this is
the same idea at tunelab's scale, one or two recipes per modality, taken from the examples that
reproduce published figures (``examples/mnist1d_cnn.yaml``, ``examples/bbc_news.yaml``) and from
the textbook answer for small tables (a logistic model with weight decay, which beat auto's MLP on
breast_cancer). The search then ranks them like any other trial, on val, under ASHA: a portfolio
point that does not suit the data costs one trial, not the result.

Each point names every dimension it uses, as the recipe value (``encoded``: as Optuna stores it):
a dimension left out would be drawn at random, and the point would no longer be the known recipe.
Numbers are then clipped into the space's bounds (``fit_to_space``): the learning rate into the
range lr-find gave (stage 3), the batch size under a quarter of a small train split.

    >>> point = portfolio("signal", [1, 40], n_train=3200)[0]
    >>> point["model.name"], point["methods.signal_augment.shift"], point["optimizer.lr"]
    ('cnn1d', 8, 0.003)
    >>> bounds = {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}
    >>> fit_to_space(point, bounds)["optimizer.lr"]
    0.001
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The six regularizers every modality's space switches (space._methods): off unless a point says.
_BASE_SWITCHES = ("l1", "l2", "elastic_net", "label_smoothing", "grad_clip", "ema")


def _off(*extra: str) -> dict[str, Any]:
    return {f"methods.{name}": False for name in (*_BASE_SWITCHES, *extra)}


def _signal(input_shape: Sequence[int]) -> list[dict[str, Any]]:
    # examples/mnist1d_cnn.yaml: 98.32% val over 5 seeds on MNIST-1D (96.50% without shift + TTA).
    length = int(input_shape[-1])
    return [
        {
            **_off("mixup"),
            "model.name": "cnn1d",
            "model.channels": [32, 64, 128],
            "model.kernel_size": 5,
            "model.hidden": [128],
            "model.dropout": 0.1,
            "model.batch_norm": True,
            "model.init": "kaiming_normal",
            "optimizer.name": "adamw",
            "optimizer.lr": 0.003,
            "optimizer.weight_decay": 0.01,
            "schedule.name": "onecycle",
            "schedule.warmup_epochs": 0,
            "train.batch_size": 64,
            "methods.label_smoothing": True,
            "methods.label_smoothing.eps": 0.05,
            "methods.grad_clip": True,
            "methods.grad_clip.max_norm": 1.0,
            "methods.signal_augment": True,
            "methods.signal_augment.shift": max(1, min(length // 5, max(2, length // 4))),
            "methods.signal_augment.noise": 0.0,
            "methods.tta": True,
            "preprocess.scaling": "standard",
        }
    ]


def _image() -> list[dict[str, Any]]:
    # examples/digits_cnn.yaml's CNN with crop and rotation augmentation and an EMA of the weights.
    return [
        {
            **_off("cutmix", "tta"),
            "model.name": "cnn2d",
            "model.channels": [32, 64],
            "model.kernel_size": 3,
            "model.hidden": [128],
            "model.dropout": 0.2,
            "model.batch_norm": True,
            "model.init": "default",
            "optimizer.name": "adamw",
            "optimizer.lr": 0.002,
            "optimizer.weight_decay": 0.01,
            "schedule.name": "cosine",
            "schedule.warmup_epochs": 0,
            "train.batch_size": 32,
            "methods.image_augment": True,
            "methods.image_augment.crop_padding": 1,
            "methods.image_augment.rotation": 10.0,
            "methods.ema": True,
            "methods.ema.decay": 0.99,
        }
    ]


def _table(n_train: int, missing: bool) -> list[dict[str, Any]]:
    common = {
        **_off("feature_noise", "mixup"),
        "model.dropout": 0.0,
        "model.batch_norm": False,
        "model.init": "default",
        "optimizer.name": "adamw",
        "optimizer.weight_decay": 0.01,
        "schedule.name": "cosine",
        "schedule.warmup_epochs": 0,
        "train.batch_size": 32,
        "preprocess.scaling": "standard",
        "preprocess.outliers": "none",
        **({"preprocess.impute": "median"} if missing else {}),
    }
    # scikit-learn's LogisticRegression() objective: ½‖w‖² + C·Σ loss with C = 1, i.e. the mean loss
    # plus λ/2·‖w‖² with λ = 1/n (tunelab's l2 method adds λ/2·Σw² to the mean loss).
    logistic = {
        **common,
        "model.name": "linear",
        "optimizer.lr": 0.01,
        "methods.l2": True,
        "methods.l2.weight": 1.0 / max(1, n_train),
    }
    # A small MLP with dropout: what the playbook's seeds recommend for a few hundred rows.
    small_mlp = {
        **common,
        "model.name": "mlp",
        "model.hidden": [64],
        "model.dropout": 0.2,
        "optimizer.lr": 0.003,
    }
    return [logistic, small_mlp]


def _text() -> list[dict[str, Any]]:
    # examples/bbc_news.yaml's fastText-style bag of embeddings (96.9% test over 5 seeds).
    return [
        {
            **_off("text_augment"),
            "model.name": "embedding_bag",
            "model.embed_dim": 64,
            "model.dropout": 0.0,
            "optimizer.name": "adamw",
            "optimizer.lr": 0.01,
            "optimizer.weight_decay": 1e-6,
            "schedule.name": "cosine",
            "schedule.warmup_epochs": 0,
            "train.batch_size": 32,
            "preprocess.max_length": 512,
            "preprocess.max_vocab": 50000,
        }
    ]


def portfolio(
    modality: str, input_shape: Sequence[int], n_train: int, *, missing: bool = False
) -> list[dict[str, Any]]:
    """The known-good points of ``modality``'s space (recipe values by dimension path), in order."""
    if modality == "signal":
        return _signal(input_shape)
    if modality == "image":
        return _image()
    if modality == "table":
        return _table(n_train, missing)
    if modality == "text":
        return _text()
    raise ValueError(f"no portfolio for modality {modality!r}")


def fit_to_space(point: Mapping[str, Any], search: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``point`` with each number clipped into its dimension's ``[low, high]`` in ``search``."""
    fitted = dict(point)
    for path, value in point.items():
        dim = search.get(path, {})
        if "low" in dim and "high" in dim and not isinstance(value, bool):
            clipped = min(max(value, dim["low"]), dim["high"])
            fitted[path] = int(clipped) if dim.get("type") == "int" else float(clipped)
    return fitted
