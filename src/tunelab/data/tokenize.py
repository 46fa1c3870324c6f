"""The tokenizer step of a text run's preprocessing: documents ``[N]`` (str) -> token ids ``[N, L]``.

Tokenization is Hugging Face ``tokenizers``, never hand-written. ``preprocess.tokenizer`` says
which one:

* ``word``: a word-level vocabulary fit on the train split only: BERT's normalizer (lower case when
  ``preprocess.lowercase``), words and punctuation split apart, then the ``preprocess.max_vocab``
  most frequent tokens seen at least ``preprocess.min_freq`` times (ties in alphabetical order, so
  the same split always gives the same ids); ``[PAD]`` is id 0 and ``[UNK]`` (any other token) 1;
* a pretrained encoder's own tokenizer (``minilm``, or a directory: ``tunelab.encoders``), as the
  model was trained with it (WordPiece, ``[CLS] ... [SEP]``).

Every document is truncated to ``preprocess.max_length`` tokens and padded to exactly that length
with ``[PAD]`` (fixed padding: the ids are one int64 tensor on the device, batched by index like
any other input; BBC News at 256 tokens takes 4.4 MB). The fitted tokenizer is saved in the run
directory as ``tokenizer.json`` and ``preprocess.json`` names it with its SHA-256, so
``tunelab.load_run`` tokenizes new text exactly as training did.

    >>> import numpy as np
    >>> from tunelab.spec import PreprocessSpec
    >>> docs = np.array(["the cat sat", "the dog sat", "a cat"], dtype=object)
    >>> step, _ = TextStep.fit(docs, PreprocessSpec(min_freq=1, max_length=4))
    >>> step.apply(np.array(["The cat ran"], dtype=object)).tolist()  # 'ran' is unknown: [UNK] = 1
    [[4, 2, 1, 0]]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.encoders import require, tokenizer_file
from tunelab.errors import DataError
from tunelab.spec import PreprocessSpec

__all__ = ["PAD", "UNK", "TextStep", "is_documents"]

PAD, UNK = "[PAD]", "[UNK]"
TOKENIZER_FILE = "tokenizer.json"


def is_documents(a: np.ndarray) -> bool:
    """True for raw text documents: a 1-D array of objects (strings).

    >>> is_documents(np.array(["a", "b"], dtype=object)), is_documents(np.zeros(3))
    (True, False)
    """
    return a.ndim == 1 and a.dtype == object


def _word_tokenizer(docs: np.ndarray, spec: PreprocessSpec) -> Any:
    tokenizers = require("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tok = tokenizers.Tokenizer(WordLevel(unk_token=UNK))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=spec.lowercase
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()  # words and punctuation apart
    trainer = WordLevelTrainer(
        vocab_size=spec.max_vocab, min_frequency=spec.min_freq, special_tokens=[PAD, UNK], show_progress=False
    )
    tok.train_from_iterator([str(d) for d in docs], trainer)
    return tok


@dataclass(frozen=True)
class TextStep:
    """Raw documents ``[N]`` -> int64 token ids ``[N, max_length]``, padded with ``pad_id``.

    ``source``: ``word`` or the encoder whose tokenizer this is; ``tokenizer_json``: the fitted HF
    tokenizer, serialized; ``special_ids``: ids that are no words (padding, unknown, ``[CLS]``,
    ``[SEP]``), which augmentation leaves alone; ``start_id`` / ``end_id``: the tokens a
    pretrained tokenizer puts around every document (None for ``word``).
    """

    source: str
    tokenizer_json: str
    max_length: int
    pad_id: int
    special_ids: tuple[int, ...]
    start_id: int | None
    end_id: int | None
    vocab_size: int
    _tok: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def fit(cls, docs: np.ndarray, spec: PreprocessSpec) -> tuple[TextStep, dict[str, Any]]:
        """The tokenizer of ``spec.tokenizer``, fit on the train documents ``docs`` (``word``)."""
        tokenizers = require("tokenizers")
        if spec.tokenizer == "word":
            tok = _word_tokenizer(docs, spec)
        else:
            tok = tokenizers.Tokenizer.from_file(str(tokenizer_file(spec.tokenizer)))
        step = cls._from_tokenizer(spec.tokenizer, tok, spec.max_length)
        ids = step.apply(docs)
        lengths = (ids != step.pad_id).sum(1)
        notes = {
            "tokenizer": spec.tokenizer,
            "vocab_size": step.vocab_size,
            "max_length": spec.max_length,
            "truncated_documents": int((lengths == spec.max_length).sum()),
            "mean_tokens": round(float(lengths.mean()), 1),
            "unknown_token_rate": round(
                float((ids == tok.token_to_id(UNK)).sum() / max(1, lengths.sum())), 4
            ),
        }
        return step, {"text": notes}

    @classmethod
    def _from_tokenizer(cls, source: str, tok: Any, max_length: int) -> TextStep:
        tok.no_padding()
        tok.no_truncation()
        around = tok.encode("").ids  # what the post-processor puts around every document
        pad = tok.token_to_id(PAD)
        if pad is None:
            raise DataError(
                f"preprocess.tokenizer: the tokenizer of {source!r} has no {PAD} token to pad with"
            )
        specials = {pad, *around}
        for name in (UNK, "[MASK]"):
            if tok.token_to_id(name) is not None:
                specials.add(tok.token_to_id(name))
        tok.enable_truncation(max_length)
        tok.enable_padding(pad_id=pad, pad_token=PAD, length=max_length)
        return cls(
            source=source,
            tokenizer_json=tok.to_str(),
            max_length=max_length,
            pad_id=pad,
            special_ids=tuple(sorted(specials)),
            start_id=around[0] if len(around) == 2 else None,
            end_id=around[-1] if len(around) == 2 else None,
            vocab_size=tok.get_vocab_size(),
            _tok=tok,
        )

    @property
    def tokenizer(self) -> Any:
        """The HF ``tokenizers.Tokenizer`` (with this step's truncation and padding)."""
        return self._tok

    def vocabulary(self) -> list[str]:
        """Each id's token, in id order."""
        vocab = self._tok.get_vocab()
        out = [""] * self.vocab_size
        for token, i in vocab.items():
            if i < self.vocab_size:
                out[i] = token
        return out

    def info(self) -> dict[str, Any]:
        """What a text model and text augmentation need (``DataBundle.meta["text"]``)."""
        return {
            "tokenizer": self.source,
            "vocab_size": self.vocab_size,
            "pad_id": self.pad_id,
            "special_ids": list(self.special_ids),
            "start_id": self.start_id,
            "end_id": self.end_id,
            "max_length": self.max_length,
        }

    def check(self, a: np.ndarray, what: str) -> None:
        if not is_documents(a):
            raise DataError(
                f"{what}: this run reads text documents (one string per sample), got an array of shape "
                f"{list(a.shape)} and type {a.dtype}; give a list of strings, a .txt file with one document "
                "per line, or a CSV with the text column"
            )

    def apply(self, a: np.ndarray, what: str = "x") -> np.ndarray:
        """int64 ids ``[N, max_length]``; None (a missing document) reads as the empty text."""
        self.check(a, what)
        encodings = self._tok.encode_batch(["" if d is None else str(d) for d in a])
        out = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(a), self.max_length)
        return out

    def files(self) -> dict[str, str]:
        return {TOKENIZER_FILE: self.tokenizer_json}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "tokenizer": self.source,
            "file": TOKENIZER_FILE,
            "sha256": hashlib.sha256(self.tokenizer_json.encode()).hexdigest(),
            "max_length": self.max_length,
            "pad_id": self.pad_id,
            "special_ids": list(self.special_ids),
            "start_id": self.start_id,
            "end_id": self.end_id,
            "vocab_size": self.vocab_size,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], base: Path | None = None, text: str | None = None) -> TextStep:
        """Read back what ``to_json`` wrote; the tokenizer comes from ``text`` or ``base / d["file"]``."""
        tokenizers = require("tokenizers")
        if text is None:
            path = (base or Path(".")) / d["file"]
            if not path.is_file():
                raise DataError(f"{path}: missing; the run's preprocess.json names it as its tokenizer")
            text = path.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode()).hexdigest() != d["sha256"]:
            raise DataError(
                f"{d['file']}: does not match the SHA-256 that preprocess.json recorded; the run directory "
                "was edited or damaged: train it again"
            )
        tok = tokenizers.Tokenizer.from_str(text)
        return cls(
            source=d["tokenizer"],
            tokenizer_json=text,
            max_length=int(d["max_length"]),
            pad_id=int(d["pad_id"]),
            special_ids=tuple(int(i) for i in d["special_ids"]),
            start_id=d.get("start_id"),
            end_id=d.get("end_id"),
            vocab_size=int(d["vocab_size"]),
            _tok=tok,
        )
