"""Frozen pretrained features: token ids ``[N, L]`` -> a frozen encoder's embeddings ``[N, H]``.

``preprocess.features: minilm`` makes the frozen encoder part of the preprocessing: each document's
tokens (from the encoder's own tokenizer) go through the encoder once, and the mean of its token
states (the pooling MiniLM was trained with) becomes the document's H numbers; a new head (``mlp``
or ``linear``) trains on them. Seed 001's transfer example applied to text: the expensive part runs
once, so training the head takes seconds, and a search, ablation or cross-validation over the head
never runs the encoder again.

Features are cached per document in ``tunelab.io.cache_dir()/text_features/``, keyed by the
encoder's fingerprint (``tunelab.encoders.encoder_key``: its weights and config) and the SHA-1 of
the document's token ids; another split, fold, seed or a prediction on the same texts reads them
back. Computing is batched, each batch trimmed to its longest document; padding is masked out, so
a document's features do not depend on its batch (up to float rounding, which the cache removes).
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.cache import write_file
from tunelab.encoders import build_bert, encoder_key, mean_pool
from tunelab.errors import DataError
from tunelab.io import cache_dir

__all__ = ["FeatureStep", "encode_ids"]

BATCH = 32  # documents per encoder call: a few hundred MB of activations at 256 tokens
# Per-process memory of the cache files read so far: encoder fingerprint -> {ids digest: row}.
_MEMORY: dict[str, dict[bytes, np.ndarray]] = {}
_ENCODERS: dict[str, torch.nn.Module] = {}  # encoder source -> the loaded model, once per process


def _encoder(source: str) -> torch.nn.Module:
    found = _ENCODERS.get(source)
    if found is None:
        # Building draws an initialization from the global RNG before the weights replace it:
        # forked, so loading features never shifts a run's seeded random stream.
        with torch.random.fork_rng(devices=[]):
            found = build_bert(source, weights=True, path="preprocess.features").eval()
        _ENCODERS[source] = found
    return found


def _cache_file(key: str) -> Path:
    return cache_dir() / "text_features" / f"{key}.npz"


def _load(key: str) -> dict[bytes, np.ndarray]:
    if key in _MEMORY:
        return _MEMORY[key]
    rows: dict[bytes, np.ndarray] = {}
    try:
        with np.load(_cache_file(key), allow_pickle=False) as f:
            rows = dict(zip((bytes(k) for k in f["keys"]), f["values"], strict=True))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # no cache yet, or a damaged one: computed again
    _MEMORY[key] = rows
    return rows


def _save(key: str, rows: dict[bytes, np.ndarray]) -> None:
    path = _cache_file(key)
    try:
        write_file(
            path,
            lambda f: np.savez(
                f, keys=np.array(list(rows), dtype="S20"), values=np.stack(list(rows.values()))
            ),
        )
    except OSError:
        pass  # a read-only or full disk costs the next run the computation, never the run itself


@torch.inference_mode()
def encode_ids(source: str, ids: np.ndarray, pad_id: int) -> np.ndarray:
    """Mean-pooled features ``[N, H]`` (float32) of the encoder ``source`` on token ids ``[N, L]``,
    read from the cache where it holds them and computed (then cached) where not."""
    key = encoder_key(source)
    rows = _load(key)
    digests = [hashlib.sha1(r.tobytes()).digest() for r in np.ascontiguousarray(ids)]
    todo = sorted({d: i for i, d in enumerate(digests) if d not in rows}.values())
    if todo:
        model = _encoder(source)
        for lo in range(0, len(todo), BATCH):
            chunk = todo[lo : lo + BATCH]
            x = torch.from_numpy(ids[chunk])
            mask = (x != pad_id).long()
            width = max(1, int(mask.sum(1).max()))  # right-padded: trim to the longest document
            x, mask = x[:, :width], mask[:, :width]
            hidden = model(input_ids=x, attention_mask=mask).last_hidden_state  # [B, width, H]
            pooled = mean_pool(hidden, mask).float().numpy()
            for i, row in zip(chunk, pooled, strict=True):
                rows[digests[i]] = row
        _save(key, rows)
    return np.stack([rows[d] for d in digests]).astype(np.float32)


@dataclass(frozen=True)
class FeatureStep:
    """Token ids ``[N, L]`` -> the frozen encoder ``source``'s features ``[N, size]`` (see the module)."""

    source: str
    pad_id: int
    size: int

    @classmethod
    def fit(cls, ids: np.ndarray, source: str, pad_id: int) -> tuple[FeatureStep, np.ndarray]:
        """The step, and the train split's features (computed here once, so not twice)."""
        feats = encode_ids(source, ids, pad_id)
        return cls(source, pad_id, int(feats.shape[1])), feats

    def check(self, a: np.ndarray, what: str) -> None:
        if a.ndim != 2 or a.dtype != np.int64:
            raise DataError(f"{what}: frozen features read token ids [N, L]; got {a.dtype} {list(a.shape)}")

    def apply(self, a: np.ndarray, what: str = "x") -> np.ndarray:
        return encode_ids(self.source, a, self.pad_id)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "features", "encoder": self.source, "pad_id": self.pad_id, "size": self.size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureStep:
        return cls(d["encoder"], int(d["pad_id"]), int(d["size"]))
