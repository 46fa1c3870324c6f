"""Model families, the user's own factories, and weight initialization.

``MODELS`` lists the families (``tunelab models`` prints it); ``build_model`` turns the recipe's
``model:`` section into an ``nn.Module`` mapping ``[B, *input_shape]`` to ``[B, num_outputs]``.

    >>> from tunelab.spec import ModelSpec
    >>> net = build_model(ModelSpec("mlp", init="kaiming_normal", params={"hidden": [32]}), (4,), 3)
    >>> describe_model(net)["parameters"]
    259

Each family module registers itself when imported below; ``_base`` holds the registry and the
helpers they share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from tunelab.errors import ModelError
from tunelab.models import cnn, custom, gru, linear, mlp, resnet, text, transformer
from tunelab.models._base import ACTIVATIONS, MODELS, check_input
from tunelab.models.init import init_weights
from tunelab.spec import ModelSpec

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "build_model",
    "check_input",
    "cnn",
    "custom",
    "describe_model",
    "gru",
    "init_weights",
    "linear",
    "mlp",
    "resnet",
    "text",
    "transformer",
]


def build_model(
    spec: ModelSpec,
    input_shape: Sequence[int],
    num_outputs: int,
    embeddings: Mapping[str, Any] | None = None,
    *,
    text: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the family ``spec.name`` with ``spec.params`` and initialize it with ``spec.init``.

    ``embeddings``: the data's category codes (``DataBundle.meta["embeddings"]``, set by
    ``preprocess.encoding: embedding``), for a family that embeds them (``mlp``). ``text``: the
    data's token ids (``DataBundle.meta["text"]``: vocabulary size, padding id), for the families
    that read them (``embedding_bag``, ``textcnn``, ``gru``, ``transformer``).

    The parameters are checked again (a hand-made ModelSpec gets the recipe's errors); the init's
    nonlinearity is the model's ``activation`` parameter when it has one.

    >>> import torch
    >>> from tunelab.spec import ModelSpec
    >>> net = build_model(ModelSpec("cnn1d", params={"channels": [8, 16]}), (1, 40), 10)
    >>> net(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    """
    entry = MODELS.get(spec.name, "model.name")
    params = entry.check(spec.params, "model")
    if embeddings and not entry.tags.get("embeddings"):
        raise ModelError(
            f"model.name: {entry.name} does not embed categories; preprocess.encoding: embedding needs "
            "model mlp (or use preprocess.encoding: onehot or ordinal)"
        )
    reads_text = entry.tags.get("text")  # True: token ids only; "optional": token ids or numbers
    if text and not reads_text:
        raise ModelError(
            f"model.name: {entry.name} does not read token ids; for text use embedding_bag, textcnn, gru or "
            "transformer (or preprocess.features: minilm with an mlp head)"
        )
    if reads_text:
        model = entry.build(tuple(input_shape), num_outputs, text, **params)
    elif entry.tags.get("embeddings"):
        model = entry.build(tuple(input_shape), num_outputs, embeddings, **params)
    else:
        model = entry.build(tuple(input_shape), num_outputs, **params)
    # kaiming's gain follows the family's activation; families without one (linear, gru, custom)
    # get ReLU's, the activation most networks use.
    declared = {p.name: p.default for p in entry.params}
    nonlinearity = params.get("activation", declared["activation"]) if "activation" in declared else "relu"
    init_weights(model, spec.init, nonlinearity=nonlinearity)
    return model


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Parameter counts and one row per leaf layer (name, type, parameters).

    >>> d = describe_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> d["parameters"], [row["type"] for row in d["layers"]]
    (58, ['Linear', 'ReLU', 'Linear'])
    """
    layers = []
    for name, m in model.named_modules():
        if next(m.children(), None) is not None:
            continue  # a container: its leaves are listed
        layers.append(
            {"name": name, "type": type(m).__name__, "parameters": sum(p.numel() for p in m.parameters())}
        )
    return {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "layers": layers,
    }
