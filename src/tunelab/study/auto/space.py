"""What ``tunelab auto`` trains: the baseline recipe of a modality (stage 2) and the search space
around it (stage 4), as plain recipe data.

The baseline is a sensible, plain recipe for the modality: the family ``profile`` picked, AdamW
with a cosine schedule, early stopping, and nothing else; every choice reads val loss
(``train.monitor``). The search space covers the playbook
(the seeds' methods), each as a ``search:`` dimension of ``tunelab search``
(``tunelab.study.search.space``):

* the model family among those that fit the modality, with its width, depth, kernel size,
  dropout, batch norm and weight init;
* the optimizer (SGD, momentum, Nesterov, Adam, AdamW, RMSprop), the learning rate over the range
  lr-find gave (stage 3), weight decay and momentum; the schedule (step, exponential, cosine,
  one-cycle, cyclic) with warmup; the batch size;
* L1, L2 and elastic-net penalties, label smoothing, EMA of the weights, gradient clipping, each
  switched on or off with its strength;
* the augmentation of the modality (signal shifts and noise, image crops and rotations, feature
  noise for tables), test-time augmentation for signals and images, and mixup (signals, tables)
  or cutmix (images): the two cannot share a recipe, so each modality gets the one made for it;
  text gets ``text_augment``'s rates and neither (mixing token ids has no meaning);
* the preprocessing choices of tables (scaling, outlier clipping, imputation when values are
  missing), signals (scaling) and text (``max_length``, ``max_vocab``).

Early stopping is always on (its patience a fifth of the epochs, at least 5) and the epochs are
fixed per auto run (``epochs_for_budget``), so trials compare at equal length under ASHA.

    >>> from tunelab.recipe import load_recipe
    >>> base = baseline_recipe({"name": "mnist1d"}, "signal", "cnn1d", epochs=20)
    >>> load_recipe(base).model.name, [m["name"] for m in base["methods"]]
    ('cnn1d', ['early_stopping'])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tunelab.study.auto.profile import FAMILIES

# Epochs of the baseline per modality (early stopping ends most runs sooner): the reference
# MNIST-1D and digits recipes train 30; small tables need more passes over fewer samples.
BASELINE_EPOCHS = {"signal": 30, "image": 30, "table": 50, "text": 20}  # text: examples/bbc_news.yaml
# Epochs of the search's trials (and what follows them): as many as let about this many full
# trials fit in the search's share of the budget (ASHA runs many more, most of them cut short).
FULL_TRIALS = 30
MIN_EPOCHS, MAX_EPOCHS = 5, 100

_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]
_SCHEDULES = ["step", "exponential", "cosine", "onecycle", "cyclic"]
_TEXT_OPS = ("insert", "delete", "swap", "replace")


def early_stopping(epochs: int) -> dict[str, Any]:
    """Early stopping, always on: patience a fifth of the epochs (at least 5)."""
    return {"name": "early_stopping", "patience": max(5, epochs // 5)}


def baseline_recipe(
    data: Mapping[str, Any], modality: str, family: str, *, epochs: int, preprocess: Mapping[str, Any] = ()
) -> dict[str, Any]:
    """The plain recipe of stage 2 for ``modality``: ``family`` with its usual width, AdamW at
    3e-3 with weight decay 0.01, a cosine schedule, early stopping."""
    model: dict[str, Any] = {"name": family}
    if family in ("cnn1d", "cnn2d"):
        model.update(
            channels=[32, 64, 128] if modality == "signal" else [32, 64], kernel_size=3, hidden=[128]
        )
        model.update(dropout=0.1, batch_norm=True)
    elif family == "mlp":
        model.update(hidden=[128, 128] if modality == "table" else [256, 128], dropout=0.1)
    elif modality == "text":
        model.update(embed_dim=64)  # examples/bbc_news.yaml's fastText: 98% val on BBC News
    return {
        "data": dict(data),
        "preprocess": dict(preprocess),
        "model": model,
        "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01},
        "schedule": {"name": "cosine"},
        # One thread: the models auto trains are small, and on a shared machine two threads per
        # process were measured 20x slower than one (oversubscription); --workers uses the cores.
        # Selection (early stopping, the search, the ablation) reads val loss, not accuracy: on the
        # small val splits auto meets, accuracy saturates (breast_cancer, 91 val samples: 13 search
        # trials tied at 1.0, the first of them won and read 95.8% test); the loss still ranks them.
        "train": {
            "epochs": epochs,
            "batch_size": 32 if modality in ("table", "text") else 64,
            "threads": 1,
            "monitor": "val.loss",
        },
        "methods": [early_stopping(epochs)],
    }


def epochs_for_budget(seconds_left: float, seconds_per_epoch: float, runs_after: float) -> int:
    """The epochs of every run from the search on: a full run costs ``seconds_left`` shared by
    ``FULL_TRIALS`` search trials and ``runs_after`` runs of the later stages, clamped to
    [``MIN_EPOCHS``, ``MAX_EPOCHS``].

    >>> epochs_for_budget(3300, 0.7, 31)
    77
    """
    per_run = seconds_left / max(1.0, FULL_TRIALS + runs_after)
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, per_run / max(seconds_per_epoch, 1e-6))))


def _loguniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "loguniform", "low": float(low), "high": float(high)}


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "uniform", "low": float(low), "high": float(high)}


def _int(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": int(low), "high": int(high), **({"log": True} if log else {})}


def _choice(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


_SWITCH = _choice(True, False)


def search_recipe(
    baseline: Mapping[str, Any],
    modality: str,
    input_shape: list[int],
    n_train: int,
    *,
    lr_range: tuple[float, float],
    epochs: int,
    missing: bool = False,
) -> dict[str, Any]:
    """The search's base recipe (the baseline with every candidate method in it, so a switch has
    its parameters) and its ``search:`` section."""
    raw = copy.deepcopy(dict(baseline))
    lo, hi = lr_range
    raw["optimizer"] = {"name": "adamw", "lr": float(f"{(lo * hi) ** 0.5:.2g}"), "weight_decay": 0.01}
    raw["train"] = {**raw.get("train", {}), "epochs": epochs}
    methods, space = _methods(modality, input_shape)
    raw["methods"] = [early_stopping(epochs), *methods]
    space.update(_model_space(modality))
    space.update(
        {
            "optimizer.name": _choice(*_OPTIMIZERS),
            "optimizer.lr": _loguniform(lo, hi),
            "optimizer.weight_decay": _loguniform(1e-6, 0.1),
            "optimizer.momentum": _uniform(0.8, 0.99),
            "schedule.name": _choice(*_SCHEDULES),
            "schedule.warmup_epochs": _int(0, max(1, epochs // 10)),
            "train.batch_size": _int(
                16 if modality != "table" else 8,
                min(128 if modality == "text" else 256, max(16, n_train // 4)),
                log=True,
            ),
        }
    )
    space.update(_preprocess_space(modality, missing))
    raw["search"] = space
    return raw


def _model_space(modality: str) -> dict[str, Any]:
    families = list(FAMILIES[modality])
    if modality == "text":
        # Each dimension reaches the families that take it (textcnn's channels, gru's hidden_size);
        # no batch norm or init switch: the text models have neither.
        return {
            "model.name": _choice(*families),
            "model.embed_dim": _choice(32, 64, 128),
            "model.dropout": _uniform(0.0, 0.5),
            "model.channels": _choice(50, 100),
            "model.hidden_size": _choice(64, 128),
            "model.bidirectional": _SWITCH,
        }
    space: dict[str, Any] = {
        "model.name": _choice(*families),
        "model.dropout": _uniform(0.0, 0.5),
        "model.batch_norm": _SWITCH,
        "model.init": _choice("default", "kaiming_normal", "xavier_uniform"),
    }
    if modality == "signal":
        space["model.channels"] = _choice([32, 64], [32, 64, 128], [64, 128, 256])
        space["model.kernel_size"] = _choice(3, 5, 7)
        space["model.hidden"] = _choice([64], [128], [256])
        space["model.blocks_per_stage"] = _int(1, 2)
        space["model.hidden_size"] = _choice(64, 128, 256)
        space["model.num_layers"] = _int(1, 2)
        space["model.bidirectional"] = _SWITCH
    elif modality == "image":
        space["model.channels"] = _choice([16, 32], [32, 64], [64, 128], [32, 64, 128])
        space["model.kernel_size"] = _choice(3, 5)
        space["model.hidden"] = _choice([64], [128], [256], [256, 128])
        space["model.blocks_per_stage"] = _int(1, 2)
    else:
        space["model.hidden"] = _choice([32], [64], [128], [64, 64], [128, 128], [256, 256])
    return space


def _methods(modality: str, input_shape: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The candidate methods (in the base recipe) and the switches and strengths that search them."""
    methods: list[dict[str, Any]] = [
        {"name": "l1", "weight": 1e-5},
        {"name": "l2", "weight": 1e-4},
        {"name": "elastic_net", "weight": 1e-4, "l1_ratio": 0.5},
        {"name": "label_smoothing", "eps": 0.1},
        {"name": "grad_clip", "max_norm": 1.0},
        {"name": "ema", "decay": 0.99},
    ]
    space: dict[str, Any] = {f"methods.{m['name']}": _SWITCH for m in methods}
    space.update(
        {
            "methods.l1.weight": _loguniform(1e-7, 1e-3),
            "methods.l2.weight": _loguniform(1e-6, 1e-2),
            "methods.elastic_net.weight": _loguniform(1e-6, 1e-2),
            "methods.elastic_net.l1_ratio": _uniform(0.1, 0.9),
            "methods.label_smoothing.eps": _uniform(0.01, 0.2),
            "methods.grad_clip.max_norm": _loguniform(0.5, 5.0),
            "methods.ema.decay": _uniform(0.9, 0.999),
        }
    )
    if modality == "signal":
        length = input_shape[-1]
        methods += [
            {"name": "signal_augment", "shift": max(1, length // 5)},
            {"name": "mixup", "alpha": 0.2},
            {"name": "tta", "shifts": [1, 2] if length > 2 else [1], "shift_mode": "circular"},
        ]
        space.update(
            {
                "methods.signal_augment.shift": _int(1, max(2, length // 4)),
                "methods.signal_augment.noise": _uniform(0.0, 0.1),
                "methods.mixup.alpha": _uniform(0.1, 0.4),
            }
        )
    elif modality == "image":
        methods += [
            {"name": "image_augment", "crop_padding": 1, "rotation": 10.0},
            {"name": "cutmix", "alpha": 1.0, "p": 0.5},
            {"name": "tta", "hflip": False, "shifts": [1]},
        ]
        space.update(
            {
                "methods.image_augment.crop_padding": _int(1, max(2, min(input_shape[-2:]) // 8)),
                "methods.image_augment.rotation": _uniform(0.0, 15.0),
                "methods.cutmix.p": _uniform(0.1, 0.6),
            }
        )
    elif modality == "text":
        # EDA's four operations and the seed's crop. No mixup: it would blend token ids, which are
        # names, not quantities (and cutmix / tta / the other modalities' augmentations do not apply).
        methods += [{"name": "text_augment", "insert": 0.1, "delete": 0.1, "swap": 0.1, "replace": 0.1}]
        space.update({f"methods.text_augment.{op}": _uniform(0.0, 0.2) for op in _TEXT_OPS})
        space["methods.text_augment.crop"] = _uniform(0.0, 0.3)
    else:
        methods += [{"name": "feature_noise", "std": 0.1}, {"name": "mixup", "alpha": 0.2}]
        space.update(
            {"methods.feature_noise.std": _uniform(0.01, 0.3), "methods.mixup.alpha": _uniform(0.1, 0.4)}
        )
    for m in methods[6:]:
        space[f"methods.{m['name']}"] = _SWITCH
    return methods, space


def _preprocess_space(modality: str, missing: bool) -> dict[str, Any]:
    if modality == "image":
        return {}
    if modality == "text":
        # Cheap: the tokenizer is refit per trial in well under a second (BBC News); 512 tokens
        # keep all but the longest articles, and cost a GRU twice the time of 256.
        return {
            "preprocess.max_length": _choice(128, 256, 512),
            "preprocess.max_vocab": _choice(10000, 20000, 50000),
        }
    if modality == "signal":
        return {"preprocess.scaling": _choice("standard", "minmax")}
    space = {
        "preprocess.scaling": _choice("standard", "minmax", "robust"),
        "preprocess.outliers": _choice("none", "quantile", "zscore"),
    }
    if missing:
        space["preprocess.impute"] = _choice("median", "mean")
    return space
