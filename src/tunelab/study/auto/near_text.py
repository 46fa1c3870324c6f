"""Near-duplicate documents for ``tunelab auto``'s profile: the Jaccard similarity of word shingles.

Two documents are near copies when the sets of their word ``SHINGLE``-grams (lowercased, as
scikit-learn's ``HashingVectorizer`` splits words) overlap by a Jaccard similarity of at least
``JACCARD`` and they carry the same label: a reposted article with a changed headline or a fixed
typo. The shingles are hashed into ``2**20`` buckets (collisions at this size change a Jaccard of
a few hundred shingles by well under 1%), and every pair is compared exactly through one sparse
product (intersections) per block of documents: no MinHash approximation is needed at the sizes
auto profiles, since at most ``SAMPLE`` documents per split are compared (a seeded sample above
that, and the counts then say ``sampled``). BBC News (2,225 documents) takes about a second.

Counts have the form of ``tunelab.data.cleaning``'s: each document that has an earlier copy (train
before val before test, then by position) counts once, within its split or across ("test~train").
Exact copies are left to the exact count and not counted again here.

    >>> import numpy as np
    >>> docs = np.array(["the cat sat on the mat today", "the cat sat on the mat today!", "a dog ran"],
    ...                 dtype=object)
    >>> near_pairs(docs, np.array([0, 0, 1]))
    [(0, 1)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.data import DataBundle
from tunelab.data.cleaning import find_duplicates

SHINGLE = 3  # word 3-grams: two articles sharing stock phrases share 1-grams and 2-grams, not 3-grams
JACCARD = 0.8  # 80% of the shingles shared: the same document edited, not two on one topic
SAMPLE = 5_000  # documents per split compared (every pair): ~25M pairs, a few seconds
_BLOCK = 1_000  # rows of the sparse product at once: 1,000 x 15,000 floats at most (~120 MB)
_ORDER = ("train", "val", "test")


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


def near_pairs(docs: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """(earlier, later) index pairs of near copies: Jaccard >= ``JACCARD``, same label, not equal."""
    m = _shingles(docs)
    sizes = np.asarray(m.sum(axis=1)).ravel()
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(docs), _BLOCK):
        block = m[start : start + _BLOCK]
        inter = (block @ m[: start + _BLOCK].T).toarray()  # [b, start + b]: shared shingles
        union = sizes[start : start + _BLOCK, None] + sizes[None, : start + _BLOCK] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        for i, j in zip(*np.nonzero(jac >= JACCARD), strict=True):
            later, earlier = start + int(i), int(j)
            if earlier < later and labels[earlier] == labels[later] and docs[earlier] != docs[later]:
                pairs.append((earlier, later))
    return pairs


def near_documents(bundle: DataBundle) -> dict[str, Any]:
    """The profile's ``near`` of a text bundle (loaded with ``keep_raw``): counts within and across
    the splits of the documents as read, exact copies left out."""
    pool = bundle.raw
    if pool is None or pool.x_test is None or pool.y_test is None:
        return {"within": {}, "across": {}, "jaccard": JACCARD, "shingle": SHINGLE, "sampled": False}
    n = pool.n_train
    splits = {
        "train": (pool.x[:n], pool.y[:n]),
        "val": (pool.x[n:], pool.y[n:]),
        "test": (pool.x_test, pool.y_test),
    }
    sampled = any(len(x) > SAMPLE for x, _ in splits.values())
    if sampled:
        splits = sample_splits(splits, SAMPLE)
    exact = find_duplicates(splits)
    splits = {s: (np.delete(x, exact.drop[s]), np.delete(y, exact.drop[s])) for s, (x, y) in splits.items()}
    docs = np.concatenate([splits[s][0] for s in _ORDER])
    labels = np.concatenate([np.asarray(splits[s][1]).reshape(-1) for s in _ORDER])
    owner = np.concatenate([np.full(len(splits[s][0]), k) for k, s in enumerate(_ORDER)])
    within = {s: 0 for s in _ORDER}
    across: dict[str, int] = {"val~train": 0, "test~train": 0, "test~val": 0}
    counted: set[int] = set()
    for earlier, later in near_pairs(docs, labels):
        if later in counted:
            continue  # one count per document, at its first earlier copy
        counted.add(later)
        a, b = _ORDER[owner[later]], _ORDER[owner[earlier]]
        if a == b:
            within[a] += 1
        else:
            across[f"{a}~{b}"] += 1
    return {"within": within, "across": across, "jaccard": JACCARD, "shingle": SHINGLE, "sampled": sampled}


def sample_splits(splits: dict[str, tuple[Any, Any]], n: int) -> dict[str, tuple[Any, Any]]:
    """At most ``n`` samples of each split, a seeded random choice kept in the split's order (the
    pairwise comparisons of the profile grow with the square of a split's size)."""
    rng = np.random.default_rng(0)
    return {
        s: (x[idx], y[idx])
        for s, (x, y) in splits.items()
        for idx in [np.sort(rng.choice(len(x), min(len(x), n), replace=False))]
    }
