"""Cleaning: exact and near-duplicate rows, found within each split and across splits (leakage).

A row is a sample's inputs and its target. A duplicate *within* a split weighs one sample twice;
a val or test row equal to a train row (or a test row equal to a val row) is *leakage*: the model
is scored on a sample it was trained (or selected) on, and every figure after it is inflated.

``find_duplicates`` counts both and says which rows to drop: the later copies within a split,
and the val/test rows that repeat an earlier split's. Dropping them or only reporting them is
``preprocess.duplicates``.

``find_near_duplicates`` does the same for samples that are copies up to small changes (a resaved
image, a rounded value): with every feature standardized on train, a row is a near copy of an
earlier one of the same class when their root-mean-square difference per feature is at most the
threshold (``preprocess.near_duplicates``; 0.05 = 5% of a feature's spread on average). It is
exact, not sampled: every pair is compared, in blocks, as one matrix product per block
(O(N² d): about 0.1 s for 5,000 samples of 40 features on one core, a minute near 50,000 of 784).

    >>> import numpy as np
    >>> x = np.array([[1.0], [1.0], [2.0], [1.0]])
    >>> y = np.array([0, 0, 1, 0])
    >>> d = find_duplicates({"train": (x[:2], y[:2]), "val": (x[2:], y[2:])})
    >>> d.counts, {k: v.tolist() for k, v in d.drop.items()}
    ({'within': {'train': 1, 'val': 0}, 'across': {'val~train': 1}}, {'train': [1], 'val': [1]})
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Duplicates", "find_duplicates", "find_near_duplicates", "row_digests", "row_keys"]

# Rows compared at once in find_near_duplicates: a block of 2,048 against 50,000 others is a
# 400 MB float32 matrix of distances; smaller blocks cost more Python, larger ones more memory.
_BLOCK = 2048


def row_keys(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """One digest per sample of its inputs and target (text cells and documents by their text,
    numbers by bytes).

    >>> a = row_keys(np.array([["a", None]], dtype=object), np.array([1]))
    >>> b = row_keys(np.array([["a", None]], dtype=object), np.array([2]))
    >>> a == b
    False
    """
    keys = []
    flat_y = np.asarray(y).reshape(len(y), -1)
    if x.dtype == object and x.ndim == 1:  # documents: one string per sample
        x = x[:, None]
    if x.dtype == object:
        for row, t in zip(x, flat_y, strict=True):
            keys.append(hashlib.sha1(repr((tuple(row.tolist()), t.tobytes())).encode()).digest())
        return keys
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    for row, t in zip(flat, flat_y, strict=True):
        keys.append(hashlib.sha1(row.tobytes() + b"|" + t.tobytes()).digest())
    return keys


def row_digests(x: np.ndarray) -> np.ndarray:
    """A SHA-1 digest of each sample's inputs, ``uint8 [N, 20]``: rows to find duplicates by without
    copying them (``find_duplicates({split: (digests[rows], y[rows])})`` finds what it finds on the
    rows themselves, up to a SHA-1 collision).

    >>> d = row_digests(np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]]))
    >>> d.shape, bool((d[0] == d[1]).all()), bool((d[0] == d[2]).all())
    ((3, 20), True, False)
    """
    if x.dtype == object and x.ndim == 1:  # documents: one string per sample
        x = x[:, None]
    if x.dtype == object:
        rows = (repr(tuple(row.tolist())).encode() for row in x)
    else:
        rows = (row.tobytes() for row in np.ascontiguousarray(x.reshape(len(x), -1)))
    joined = b"".join(hashlib.sha1(r).digest() for r in rows)
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(x), 20)


@dataclass(frozen=True)
class Duplicates:
    counts: dict[str, dict[str, int]]  # {"within": {split: n}, "across": {"val~train": n, ...}}
    drop: dict[str, np.ndarray]  # split -> positions of its rows that are copies

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.drop.values())

    def report(self, dropped: bool, policy: str = "drop") -> dict[str, Any]:
        """What the run's info says about them (``policy``: the ``preprocess.duplicates`` asked)."""
        if dropped:
            action = "dropped"
        elif policy == "auto":
            action = "kept (preprocess.duplicates: auto keeps those of arrays; drop removes them)"
        else:
            action = "kept (preprocess.duplicates: keep)"
        return {**self.counts, "action": action}


def find_duplicates(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Duplicates:
    """Duplicates of ``{split: (x, y)}``, in the order given (train, val, test): a row is a copy
    when an earlier row of its split, or a row of an earlier split, is equal to it."""
    seen: dict[bytes, str] = {}
    within: dict[str, int] = {}
    across: dict[str, int] = {}
    drop: dict[str, np.ndarray] = {}
    order = list(splits)
    for name in order:
        x, y = splits[name]
        here: set[bytes] = set()
        rows = []
        for i, key in enumerate(row_keys(np.asarray(x), np.asarray(y))):
            if key in here:
                within[name] = within.get(name, 0) + 1
                rows.append(i)
            elif key in seen:
                pair = f"{name}~{seen[key]}"
                across[pair] = across.get(pair, 0) + 1
                rows.append(i)
            here.add(key)
        for key in here:
            seen.setdefault(key, name)
        drop[name] = np.array(rows, dtype=np.int64)
        within.setdefault(name, 0)
    for k, later in enumerate(order):
        for earlier in order[:k]:
            across.setdefault(f"{later}~{earlier}", 0)
    return Duplicates({"within": within, "across": across}, drop)


def find_near_duplicates(
    splits: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float, *, classification: bool = True
) -> Duplicates:
    """Near copies among ``{split: (x, y)}`` in the order given (train, val, test).

    Features are flattened and standardized with the first split's mean and std (a constant
    feature keeps scale 1); a row is a near copy when an earlier row of its split, or any row of an
    earlier split, lies within ``threshold`` in root-mean-square difference per feature (and, for
    ``classification``, has the same label). Exact copies count too: call ``find_duplicates`` first
    and pass what it left to count only the near ones.

    >>> x = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 1.01], [5.0, 5.0]])
    >>> y = np.array([0, 1, 1, 0])
    >>> d = find_near_duplicates({"train": (x[:2], y[:2]), "test": (x[2:], y[2:])}, 0.05)
    >>> d.counts["across"], d.drop["test"].tolist()
    ({'test~train': 1}, [0])
    """
    import torch

    order = list(splits)
    flat = {n: np.asarray(x, dtype=np.float64).reshape(len(x), -1) for n, (x, _) in splits.items()}
    first = flat[order[0]]
    mean = first.mean(axis=0) if len(first) else 0.0
    std = first.std(axis=0) if len(first) else 1.0
    std = np.where(np.asarray(std) > 0, std, 1.0)
    z = {n: torch.from_numpy((a - mean) / std) for n, a in flat.items()}
    labels = {n: torch.from_numpy(np.asarray(y).reshape(len(y), -1)) for n, (_, y) in splits.items()}
    d = first.shape[1] if first.ndim == 2 else 1
    limit = threshold**2 * d  # squared Euclidean distance of an RMS difference of `threshold`
    within: dict[str, int] = {}
    across: dict[str, int] = {}
    drop: dict[str, np.ndarray] = {}
    for k, name in enumerate(order):
        earlier = order[:k]
        rows = []
        for i, where in _near_rows(z, labels, name, earlier, limit, classification):
            if where == name:
                within[name] = within.get(name, 0) + 1
            else:
                pair = f"{name}~{where}"
                across[pair] = across.get(pair, 0) + 1
            rows.append(i)
        drop[name] = np.array(sorted(rows), dtype=np.int64)
        within.setdefault(name, 0)
        for e in earlier:
            across.setdefault(f"{name}~{e}", 0)
    return Duplicates({"within": within, "across": across}, drop)


def _near_rows(
    z: dict[str, Any],
    labels: dict[str, Any],
    name: str,
    earlier: list[str],
    limit: float,
    classification: bool,
) -> list[tuple[int, str]]:
    """(row, where its nearest earlier copy is) for each row of ``name`` with a near copy: an
    earlier row of ``name`` first, else a row of the first of ``earlier`` that has one."""
    import torch

    a, ya = z[name], labels[name]
    sq = {n: (z[n] ** 2).sum(1) for n in (name, *earlier)}
    # Squared distances from |a|² + |b|² - 2ab carry rounding error; float64 keeps it ~1e-12.
    tol = limit + 1e-9 * (1.0 + limit)
    out: list[tuple[int, str]] = []
    for lo in range(0, len(a), _BLOCK):
        block, yb, nb = a[lo : lo + _BLOCK], ya[lo : lo + _BLOCK], sq[name][lo : lo + _BLOCK]
        rows = torch.arange(lo, lo + len(block))
        where: list[str | None] = [None] * len(block)
        for source in (name, *earlier):
            other = z[source][: lo + len(block)] if source == name else z[source]
            for lo2 in range(0, len(other), _BLOCK):
                ob = other[lo2 : lo2 + _BLOCK]
                d2 = nb[:, None] + sq[source][lo2 : lo2 + len(ob)][None, :] - 2.0 * block @ ob.T  # [b, o]
                close = d2 <= tol
                if classification:
                    close &= (yb[:, None, :] == labels[source][lo2 : lo2 + len(ob)][None, :, :]).all(-1)
                if source == name:  # only rows before each row: the first copy stays
                    close &= torch.arange(lo2, lo2 + len(ob))[None, :] < rows[:, None]
                for i in torch.nonzero(close.any(1)).flatten().tolist():
                    where[i] = where[i] or source
        out += [(lo + i, w) for i, w in enumerate(where) if w is not None]
    return out
