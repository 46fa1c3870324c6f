"""Cleaning: exact duplicate rows, found within each split and across splits (leakage).

A row is a sample's inputs and its target. A duplicate *within* a split weighs one sample twice;
a val or test row equal to a train row (or a test row equal to a val row) is *leakage*: the model
is scored on a sample it was trained (or selected) on, and every figure after it is inflated.

``find_duplicates`` counts both and says which rows to drop: the later copies within a split,
and the val/test rows that repeat an earlier split's. Dropping them or only reporting them is
``preprocess.duplicates``.

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

__all__ = ["Duplicates", "find_duplicates", "row_keys"]


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
