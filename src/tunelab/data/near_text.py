"""Near-copy documents: the Jaccard similarity of word shingles, within each split and across.

Two documents are near copies when the sets of their word ``SHINGLE``-grams (lowercased, as
scikit-learn's ``HashingVectorizer`` splits words) overlap by a Jaccard similarity of at least
``1 - threshold`` and they carry the same label: a reposted article with a changed headline or a
fixed typo. ``preprocess.near_duplicates`` is that threshold for documents, so the one field means
"how different at most" for every kind of data: a distance in [0, 1) here (``1 - Jaccard``), an RMS
difference per standardized feature for arrays (``tunelab.data.cleaning.find_near_duplicates``).
``THRESHOLD`` (0.2: 80% of the shingles shared) is what ``tunelab auto`` sets.

The shingles are hashed into ``2**20`` buckets (collisions at this size change a Jaccard of a few
hundred shingles by well under 1%), and every pair is compared exactly through one sparse product
(shared shingles) per block of documents; only the pairs that share a shingle are looked at, so
memory follows the pairs that overlap, not N². BBC News (2,127 documents) takes about a second on
one core, so no MinHash approximation is needed at the sizes text datasets have here.

``find_near_documents`` returns a ``tunelab.data.cleaning.Duplicates`` with the counts and rows of
``find_near_duplicates``: a document with an earlier near copy (train before val before test, then
by position) is counted once, within its split when an earlier document of its split is a copy,
else across, against the first earlier split that holds one; its position is in ``drop``.

    >>> docs = np.array(["the cat sat on the mat today", "The cat sat on the mat today!", "a dog ran"],
    ...                 dtype=object)
    >>> d = find_near_documents({"train": (docs[:1], np.array([0])), "test": (docs[1:], np.array([0, 1]))})
    >>> d.counts["across"], d.drop["test"].tolist()
    ({'test~train': 1}, [0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.data.cleaning import Duplicates
from tunelab.errors import RecipeError

__all__ = ["JACCARD", "SHINGLE", "THRESHOLD", "check_threshold", "find_near_documents", "near_pairs"]

SHINGLE = 3  # word 3-grams: two articles sharing stock phrases share 1-grams and 2-grams, not 3-grams
THRESHOLD = 0.2  # 1 - Jaccard: 80% of the shingles shared is the same document edited, not two on a topic
JACCARD = 1 - THRESHOLD
# Rows of the sparse product at once: the product keeps only the pairs that share a shingle, so a
# block's memory is its overlapping pairs; more rows cost memory, fewer cost Python per block.
_BLOCK = 1_000


def check_threshold(threshold: float) -> None:
    """A RecipeError unless ``threshold`` is a distance ``1 - Jaccard`` in (0, 1): at 1 or above
    every document of a class would be a copy of its first one.

    >>> check_threshold(0.2)
    >>> try:
    ...     check_threshold(5.0)
    ... except RecipeError as e:
    ...     print(str(e)[:80])
    preprocess.near_duplicates: got 5.0; for documents a distance 1 - Jaccard simila
    """
    if not 0 < threshold < 1:
        raise RecipeError(
            "preprocess.near_duplicates",
            threshold,
            f"for documents a distance 1 - Jaccard similarity of word {SHINGLE}-grams in (0, 1)",
            f"{THRESHOLD} drops a document sharing at least {JACCARD:.0%} of its shingles with an earlier "
            "one of its class; null turns it off",
        )


def _shingles(docs: np.ndarray) -> Any:
    """Binary CSR ``[N, 2**20]``: which hashed word shingles each document holds."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(
        ngram_range=(SHINGLE, SHINGLE), binary=True, norm=None, alternate_sign=False, n_features=2**20
    )
    # A document shorter than SHINGLE words has no shingle: its words stand in for them.
    short = HashingVectorizer(binary=True, norm=None, alternate_sign=False, n_features=2**20)
    texts = [str(d) if d is not None else "" for d in docs]
    m = vec.transform(texts).tocsr()
    empty = np.flatnonzero(np.diff(m.indptr) == 0)
    if len(empty):
        m = m.tolil()
        m[empty] = short.transform([texts[i] for i in empty])
        m = m.tocsr()
    m.data[:] = 1.0
    return m


def near_pairs(
    docs: np.ndarray, labels: np.ndarray | None, threshold: float = THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """``(later, earlier)`` index arrays of every near-copy pair, ``earlier < later``: ``1 - Jaccard
    <= threshold`` and, unless ``labels`` is None, the same label. Equal documents are pairs too.

    >>> docs = np.array(["one two three four", "One two, three four!", "five six"], dtype=object)
    >>> [p.tolist() for p in near_pairs(docs, np.array([0, 0, 0]))]
    [[1], [0]]
    """
    m = _shingles(docs)
    sizes = np.asarray(m.sum(axis=1)).ravel()
    flat = None if labels is None else np.asarray(labels).reshape(len(docs), -1)
    later_parts, earlier_parts = [], []
    for start in range(0, len(docs), _BLOCK):
        stop = min(start + _BLOCK, len(docs))
        # Shared shingles of each document of the block with every document up to the block's end;
        # sparse, so only pairs that share a shingle (the only ones that can be close) are kept.
        inter = (m[start:stop] @ m[:stop].T).tocoo()
        later, earlier, shared = inter.row + start, inter.col, inter.data
        union = sizes[later] + sizes[earlier] - shared
        # shared / union >= 1 - threshold, without dividing; the slack absorbs 1 - threshold's rounding.
        close = (earlier < later) & (shared >= (1 - threshold) * union - 1e-9 * union) & (union > 0)
        later, earlier = later[close], earlier[close]
        if flat is not None:
            same = (flat[later] == flat[earlier]).all(axis=1)
            later, earlier = later[same], earlier[same]
        later_parts.append(later)
        earlier_parts.append(earlier)
    if not later_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    later, earlier = np.concatenate(later_parts), np.concatenate(earlier_parts)
    order = np.lexsort((earlier, later))
    return later[order].astype(np.int64), earlier[order].astype(np.int64)


def find_near_documents(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    threshold: float = THRESHOLD,
    *,
    classification: bool = True,
) -> Duplicates:
    """Near-copy documents among ``{split: (documents, y)}`` in the order given (train, val, test):
    a document whose word shingles are within ``1 - Jaccard <= threshold`` of an earlier document of
    its split or of any document of an earlier split (and, for ``classification``, has its label).
    Exact copies count too: call ``find_duplicates`` first and pass what it left to count only the
    near ones (as for ``find_near_duplicates``)."""
    check_threshold(threshold)
    order = list(splits)
    docs = np.concatenate([np.asarray(splits[s][0], dtype=object).reshape(-1) for s in order])
    owner = np.concatenate([np.full(len(splits[s][0]), k) for k, s in enumerate(order)]).astype(np.int64)
    starts = np.cumsum([0] + [len(splits[s][0]) for s in order])
    labels = None
    if classification:
        labels = np.concatenate([np.asarray(splits[s][1]).reshape(len(splits[s][1]), -1) for s in order])
    later, earlier = near_pairs(docs, labels, threshold) if len(docs) else (np.zeros(0, int),) * 2
    # Where each copy is counted: its own split first, else the first earlier split holding a copy
    # (the rule of find_near_duplicates). Rank 0 is the own split, 1 + k the k-th split.
    rank = np.where(owner[earlier] == owner[later], 0, 1 + owner[earlier])
    best = np.full(len(docs), len(order) + 1)
    np.minimum.at(best, later, rank)
    within: dict[str, int] = {}
    across: dict[str, int] = {}
    drop: dict[str, np.ndarray] = {}
    for k, name in enumerate(order):
        here = best[starts[k] : starts[k + 1]]
        within[name] = int((here == 0).sum())
        for e, source in enumerate(order[:k]):
            across[f"{name}~{source}"] = int((here == 1 + e).sum())
        drop[name] = np.flatnonzero(here <= len(order)).astype(np.int64)
    return Duplicates({"within": within, "across": across}, drop)
