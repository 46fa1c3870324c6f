"""Text augmentation on token ids: random insertion, deletion, swap, synonym replacement, cropping.

The seeds' four operations for text (随机插入、删除、替换和切割: insertion, deletion, replacement
and cutting), which are EDA's (Wei & Zou 2019: synonym replacement, random insertion, random swap,
random deletion) plus a crop. ``text_augment`` applies them to every training batch, each with its
own rate, named after it:

===========  ===================================================================================
``replace``  each word is replaced by one of its synonyms with this probability
``insert``   after each word, with this probability, one of its synonyms is inserted
``swap``     each word is picked with this probability; the picked words of a document trade
             places (a random cycle: every picked word moves when two or more are picked)
``delete``   each word is deleted with this probability (a document keeps at least one word)
``crop``     this fraction of each document's words is cut away: a random contiguous window of
             the rest is kept (the seed's "cutting")
===========  ===================================================================================

They run in that order. A "word" is a token that is no special token: padding, ``[UNK]`` and a
pretrained tokenizer's ``[CLS]`` / ``[SEP]`` are never picked, and ``[CLS]`` ... ``[SEP]`` stay
around the document. Documents stay right-padded to the same length (an insertion past the end
is cut off).

**Synonyms** are mapped to token ids once, at setup: a table ``[vocab, K]`` of each token's
synonyms that are single tokens of the vocabulary, so each batch is a few tensor operations, with
no Python loop over words. ``synonyms: auto`` reads WordNet (``tunelab.wordnet``) when installed,
else falls back to random words of the training vocabulary and says so in ``info["text_augment"]``;
``wordnet`` requires it, ``vocabulary`` asks for the fallback, and a path names a synonyms file.
With synonyms, a word that has none is left as it is (EDA's rule).

Randomness comes from a generator of the method's own, seeded from ``train.seed`` (runs repeat
exactly); its state is the method's ``state_dict`` so a resumed run continues the same stream.
The ``batch`` event fires only while training: evaluation always sees the documents as written.

    >>> ids = torch.tensor([[5, 6, 7, 8, 0, 0]])
    >>> augment_tokens(ids, TokenSpec(pad_id=0, special=torch.tensor([True, True] + [False] * 8)),
    ...                crop=0.5, generator=torch.Generator().manual_seed(0)).tolist()
    [[6, 7, 0, 0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import torch
from torch import Tensor

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range

if TYPE_CHECKING:
    from tunelab.recipe import Recipe

__all__ = ["OPERATIONS", "TextAugment", "TokenSpec", "augment_tokens", "synonym_table"]

OPERATIONS = ("replace", "insert", "swap", "delete", "crop")
Rate = Annotated[float, Range(ge=0, lt=1)]


@dataclass(frozen=True)
class TokenSpec:
    """What the operations need to know of the token ids.

    ``special``: bool ``[vocab]``, True for ids that are no words; ``start_id`` / ``end_id``: the
    tokens a pretrained tokenizer puts around each document; ``table`` / ``counts``: each id's
    synonym ids ``[vocab, K]`` (padded with 0) and how many it has ``[vocab]``, or None, in which
    case a replaced or inserted word is any word of ``words`` (ids ``[W]``).
    """

    pad_id: int
    special: Tensor
    start_id: int | None = None
    end_id: int | None = None
    table: Tensor | None = None
    counts: Tensor | None = None
    words: Tensor | None = None


def synonym_table(
    vocab: list[str], synonyms: Mapping[str, list[str]], special: Tensor
) -> tuple[Tensor, Tensor]:
    """``(table [V, K], counts [V])``: each token's synonyms that are words of ``vocab`` itself.

    >>> t, c = synonym_table(["[PAD]", "film", "movie", "cat"], {"film": ["movie", "motion"]},
    ...                      torch.tensor([True, False, False, False]))
    >>> t.tolist(), c.tolist()
    ([[0], [2], [0], [0]], [0, 1, 0, 0])
    """
    index = {w: i for i, w in enumerate(vocab) if w and not special[i]}
    rows = [
        [index[s] for s in synonyms.get(w, []) if s in index and s != w] if i in index.values() else []
        for i, w in enumerate(vocab)
    ]
    width = max(1, max(len(r) for r in rows))
    table = torch.zeros((len(vocab), width), dtype=torch.long)
    for i, r in enumerate(rows):
        table[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return table, torch.tensor([len(r) for r in rows], dtype=torch.long)


def _draw(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    # Drawn on the CPU from the method's generator (the same numbers on every device), then moved.
    return torch.rand(shape, generator=generator).to(device)


def _new_words(c: Tensor, spec: TokenSpec, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """For each position: a replacement word for its token, and whether one exists."""
    u = _draw(tuple(c.shape), generator, c.device)
    if spec.table is not None and spec.counts is not None:
        table, counts = spec.table.to(c.device), spec.counts.to(c.device)
        k = counts[c]  # [B, W]
        pick = (u * k).long().clamp(max=table.shape[1] - 1)
        return table[c, pick], k > 0
    assert spec.words is not None
    words = spec.words.to(c.device)
    return words[(u * len(words)).long().clamp(max=len(words) - 1)], torch.ones_like(c, dtype=torch.bool)


def _compact(c: Tensor, keep: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Kept tokens moved to the front in order, padding after them; and the new lengths."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept positions first
    out = c.gather(1, order)
    n = keep.sum(1)
    j = torch.arange(c.shape[1], device=c.device)
    return torch.where(j < n[:, None], out, torch.full_like(out, pad_id)), n


def _insert(
    c: Tensor, n: Tensor, word: Tensor, rate: float, spec: TokenSpec, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    b, w = c.shape
    new, has = _new_words(c, spec, g)
    add = word & has & (_draw((b, w), g, c.device) < rate)
    before = torch.cumsum(add.long(), 1) - add.long()  # insertions before each position
    j = torch.arange(w, device=c.device)
    trash = 2 * w  # scatter target of what falls outside: one column past the end, dropped
    out = torch.full((b, 2 * w + 1), spec.pad_id, dtype=c.dtype, device=c.device)
    pos = j + before  # where each original token lands
    out.scatter_(1, torch.where(j < n[:, None], pos, trash), c)
    out.scatter_(1, torch.where(add, pos + 1, trash), new)
    return out[:, :w], (n + add.sum(1)).clamp(max=w)


def _swap(c: Tensor, word: Tensor, rate: float, g: torch.Generator) -> Tensor:
    b, w = c.shape
    pick = word & (_draw((b, w), g, c.device) < rate)
    k = pick.sum(1, keepdim=True)  # [B, 1]
    key = torch.where(pick, _draw((b, w), g, c.device), torch.full((b, w), 2.0, device=c.device))
    order = torch.argsort(key, dim=1)  # the picked positions first, in random order
    j = torch.arange(w, device=c.device)
    source = order.gather(1, torch.where(j < k - 1, j + 1, torch.zeros_like(j)).expand(b, w))
    moved = (j < k) & (k >= 2)  # position order[j] takes the token of order[j + 1 mod k]
    return c.scatter(1, order, torch.where(moved, c.gather(1, source), c.gather(1, order)))


def _delete(
    c: Tensor, n: Tensor, word: Tensor, rate: float, spec: TokenSpec, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    b, w = c.shape
    drop = word & (_draw((b, w), g, c.device) < rate)
    # A document that would lose all its words keeps one at random (EDA's rule).
    lost = word.any(1) & ~(word & ~drop).any(1)
    keep_one = torch.where(
        word, _draw((b, w), g, c.device), torch.full((b, w), -1.0, device=c.device)
    ).argmax(1)
    drop[lost, keep_one[lost]] = False
    j = torch.arange(w, device=c.device)
    return _compact(c, (j < n[:, None]) & ~drop, spec.pad_id)


def _crop(c: Tensor, n: Tensor, rate: float, pad_id: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    b, w = c.shape
    kept = torch.where(n > 0, (n.float() * (1 - rate)).round().long().clamp(min=1), n)
    start = (_draw((b,), g, c.device) * (n - kept + 1).float()).long().clamp(min=0)
    j = torch.arange(w, device=c.device)
    out = c.gather(1, (start[:, None] + j).clamp(max=w - 1))
    return torch.where(j < kept[:, None], out, torch.full_like(out, pad_id)), kept


def augment_tokens(
    ids: Tensor,
    spec: TokenSpec,
    *,
    replace: float = 0.0,
    insert: float = 0.0,
    swap: float = 0.0,
    delete: float = 0.0,
    crop: float = 0.0,
    generator: torch.Generator,
) -> Tensor:
    """The operations of the module docstring on right-padded token ids ``[B, L]`` -> ``[B, L]``.

    With every rate 0 the ids come back unchanged (the same values, a new tensor).
    """
    b, length = ids.shape
    off = 1 if spec.start_id is not None else 0
    tail = 1 if spec.end_id is not None else 0
    w = length - off - tail  # room for the document's words
    n = ((ids != spec.pad_id).sum(1) - off - tail).clamp(min=0)  # [B] words of each document
    j = torch.arange(w, device=ids.device)
    c = ids[:, off : off + w]
    c = torch.where(j < n[:, None], c, torch.full_like(c, spec.pad_id))  # the words alone
    special = spec.special.to(ids.device)

    def words() -> Tensor:
        return (j < n[:, None]) & ~special[c]

    if replace > 0:
        new, has = _new_words(c, spec, generator)
        chosen = words() & has & (_draw((b, w), generator, ids.device) < replace)
        c = torch.where(chosen, new, c)
    if insert > 0:
        c, n = _insert(c, n, words(), insert, spec, generator)
    if swap > 0:
        c = _swap(c, words(), swap, generator)
    if delete > 0:
        c, n = _delete(c, n, words(), delete, spec, generator)
    if crop > 0:
        c, n = _crop(c, n, crop, spec.pad_id, generator)
    out = torch.full_like(ids, spec.pad_id)
    if spec.start_id is not None:
        out[:, 0] = spec.start_id
    out[:, off : off + w] = c
    if spec.end_id is not None:
        out.scatter_(1, (off + n)[:, None], spec.end_id)  # right after the last word
    return out


@METHODS.register(
    "text_augment", "Text augmentation on token ids: insert, delete, swap, synonym replace, crop (EDA)."
)
class TextAugment(Method):
    """``augment_tokens`` on every training batch of token ids (see the module docstring).

    Reports ``info["text_augment"]``: the rates, where the synonyms came from and how many
    vocabulary tokens have at least one.
    """

    name = "text_augment"

    def __init__(
        self,
        *,
        # EDA's alpha = 0.1 for each operation: its recommended strength for data sets of a few
        # thousand sentences. A crop cuts more at once: off unless asked for.
        insert: Annotated[Rate, Doc("probability of inserting a synonym after each word")] = 0.1,
        delete: Annotated[Rate, Doc("probability of deleting each word")] = 0.1,
        swap: Annotated[Rate, Doc("probability that a word trades places with another picked word")] = 0.1,
        replace: Annotated[Rate, Doc("probability of replacing each word by a synonym")] = 0.1,
        crop: Annotated[Rate, Doc("fraction of each document cut away (a random window is kept)")] = 0.0,
        synonyms: Annotated[
            str, Doc("auto (WordNet, else vocabulary words), wordnet, vocabulary, or a synonyms file")
        ] = "auto",
    ) -> None:
        self.rates = {"replace": replace, "insert": insert, "swap": swap, "delete": delete, "crop": crop}
        self.synonyms = synonyms
        self.generator = torch.Generator()
        self.spec: TokenSpec | None = None

    @classmethod
    def validate_recipe(cls, recipe: Recipe, spec: Any) -> None:
        if all(spec.params.get(op, 0.1 if op != "crop" else 0.0) == 0 for op in OPERATIONS):
            raise RecipeError(
                "methods.text_augment", spec.params, "every rate is 0, so it would change nothing; set one"
            )
        if recipe.preprocess.features is not None:
            raise RecipeError(
                "methods.text_augment",
                spec.params,
                "works on token ids, but preprocess.features replaces them by an encoder's features "
                "(computed once, so never augmented); remove one of the two",
            )

    def setup(self, state: TrainState) -> None:
        text = state.data.meta.get("text")
        if not text:
            raise RecipeError(
                "methods.text_augment",
                self.synonyms,
                f"works on text (token ids); this data has samples of shape {tuple(state.data.input_shape)}",
            )
        # Seeded from train.seed, but not the same stream as the loop's batch order.
        self.generator.manual_seed(state.recipe.train.seed * 7919 + 1)
        vocab = state.data.preprocessing.text.vocabulary()
        special = torch.zeros(len(vocab), dtype=torch.bool)
        special[list(text["special_ids"])] = True
        table = counts = words = None
        source = self._source()
        if source == "vocabulary":
            words = torch.nonzero(~special).flatten()
        else:
            table, counts = synonym_table(vocab, self._read(source, vocab, special), special)
        self.spec = TokenSpec(
            int(text["pad_id"]), special, text["start_id"], text["end_id"], table, counts, words
        )
        state.info["text_augment"] = {
            "rates": dict(self.rates),
            "synonyms": {
                "wordnet": "WordNet 3.0 (Debian's wordnet-base, read with nltk)",
                "vocabulary": "none: replace and insert draw random words of the training vocabulary"
                + (
                    " (WordNet is not installed: apt-get install wordnet-base)"
                    if self.synonyms == "auto"
                    else ""
                ),
            }.get(source, f"the file {source}"),
            "tokens_with_synonyms": None if counts is None else int((counts > 0).sum()),
        }

    def _source(self) -> str:
        from tunelab.wordnet import wordnet_dir

        if self.synonyms == "auto":
            return "wordnet" if wordnet_dir() is not None else "vocabulary"
        return self.synonyms

    @staticmethod
    def _read(source: str, vocab: list[str], special: Tensor) -> dict[str, list[str]]:
        from tunelab.wordnet import read_synonyms_file, wordnet_synonyms

        if source == "wordnet":
            return wordnet_synonyms(w for i, w in enumerate(vocab) if w and not special[i])
        return read_synonyms_file(source)

    def batch(self, state: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        assert self.spec is not None
        return augment_tokens(x, self.spec, generator=self.generator, **self.rates), y

    def state_dict(self) -> dict[str, Any]:
        """The generator's state: a resumed run draws what the uninterrupted run would have."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
