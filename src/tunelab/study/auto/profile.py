"""Stage 1 of ``tunelab auto``: look at the data before anything trains.

``profile_data(recipe)`` loads the recipe's data once, with every copy kept, and reports:

* the task, the input shape and the modality it implies (``(F,)`` a table, ``(C, L)`` a signal,
  ``(C, H, W)`` an image; token ids ``(L,)`` are text), the split sizes and the class balance;
* missing values (cells of a table read as missing, NaN in arrays), per column for tables;
* exact duplicate rows and near copies, within each split and across splits (leakage: a val or
  test sample the model was trained or selected on). Near copies are the data layer's own rule
  (``tunelab.data.cleaning.find_near_duplicates``: RMS difference per standardized feature of at
  most ``NEAR_THRESHOLD``, same class), counted on every pair up to ``FULL_LIMIT`` samples and on a
  random sample of ``SAMPLE`` rows per split above it (then the counts are an estimate, and say so);
* for text, the copies of documents: exact ones counted as read with ``data.dedupe`` off (the
  recipes keep it on, so they are dropped before the split), near ones by the data layer's measure
  for documents (``tunelab.data.near_text``: ``1 - Jaccard`` of word shingles at most
  ``TEXT_NEAR_THRESHOLD``, same class), on every pair up to ``SAMPLE`` documents per split;
* the model family for the modality (``FAMILIES``: the first is the baseline's).

What ``auto`` does about the copies is decided here and written into every recipe it trains:
exact duplicates are dropped (``preprocess.duplicates: drop``), and near copies too when any were
found (``preprocess.near_duplicates``: ``NEAR_THRESHOLD`` for arrays, ``TEXT_NEAR_THRESHOLD`` for
documents), so ``best.yaml`` repeats the same cleaning. The data layer drops the later copy of each
group (train before val before test) as it makes the split.

    >>> from tunelab.recipe import load_recipe
    >>> p = profile_data(load_recipe({"data": {"name": "iris"}}))  # doctest: +SKIP
    >>> p.modality, p.family, p.duplicates["across"]  # doctest: +SKIP
    ('table', 'mlp', {'val~train': 0, 'test~train': 1, 'test~val': 0})
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tunelab.data import DataBundle, load_data
from tunelab.data.cleaning import find_duplicates, find_near_duplicates
from tunelab.data.near_text import JACCARD, SHINGLE, find_near_documents
from tunelab.data.near_text import THRESHOLD as TEXT_NEAR_THRESHOLD
from tunelab.data.table import is_missing
from tunelab.errors import DataError
from tunelab.recipe import Recipe

Modality = Literal["table", "signal", "image", "text"]
MODALITIES: dict[int, Modality] = {1: "table", 2: "signal", 3: "image"}
# The families that fit each modality; the first is the baseline's. A GRU reads a signal step by
# step; an MLP reads an image's pixels; a linear model is the table's logistic regression. Text
# leaves out the MiniLM ``transformer``: fine-tuning it costs about 4.4 s per step on 2 cores
# (batch 16, 256 tokens), so one epoch of BBC News takes minutes where embedding_bag takes a second;
# a user who wants it gives auto a recipe naming it.
FAMILIES: dict[str, tuple[str, ...]] = {
    "text": ("embedding_bag", "textcnn", "gru"),
    "signal": ("cnn1d", "resnet", "gru"),
    "image": ("cnn2d", "resnet", "mlp"),
    "table": ("mlp", "linear"),
}
# 5% of a feature's spread on average: a digit image with one pixel one grey level off is a copy,
# two independent noisy draws of one MNIST-1D template are not (none of the built-in sets has one).
NEAR_THRESHOLD = 0.05
FULL_LIMIT = 20_000  # samples compared pair by pair (O(N^2 d): seconds at this size)
# Rows (documents) per split compared above FULL_LIMIT (for documents: above SAMPLE in any split;
# 5,000 documents per split are ~25M pairs of one sparse product, a few seconds).
SAMPLE = 5_000


@dataclass(frozen=True)
class DataProfile:
    """What stage 1 found; ``to_dict()`` is the ``profile`` of ``--json``."""

    dataset: str
    task: str
    modality: Modality
    input_shape: list[int]
    num_classes: int | None
    sizes: dict[str, int]
    class_counts: dict[str, dict[str, int]]  # split -> class -> count (classification)
    imbalance: float | None  # largest / smallest class count in train
    missing: dict[str, Any]  # {"cells": n, "columns": {name: n}} (tables) or {"values": n}
    duplicates: dict[str, dict[str, int]]  # exact: {"within": {...}, "across": {...}}
    near: dict[str, Any]  # near copies beyond the exact ones, same form, + threshold, sampled
    family: str
    families: list[str]
    near_duplicates: float | None  # what the recipes set: NEAR_THRESHOLD when near copies exist
    notes: list[str] = field(default_factory=list)

    @property
    def exact_total(self) -> int:
        return sum(self.duplicates["within"].values()) + sum(self.duplicates["across"].values())

    @property
    def near_total(self) -> int:
        return sum(self.near.get("within", {}).values()) + sum(self.near.get("across", {}).values())

    @property
    def leakage(self) -> dict[str, int]:
        """Copies across splits (exact and near), by pair: "test~train" -> n."""
        out: dict[str, int] = {}
        for counts in (self.duplicates["across"], self.near.get("across", {})):
            for pair, n in counts.items():
                if n:
                    out[pair] = out.get(pair, 0) + int(n)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(leakage=self.leakage, dropped={"exact": self.exact_total, "near": self.dropped_near})
        return d

    @property
    def dropped_near(self) -> int:
        """Near copies the recipes drop (an estimate when the profile counted them on a sample)."""
        return self.near_total if self.near_duplicates is not None else 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataProfile:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def modality_of(input_shape: tuple[int, ...] | list[int]) -> Modality:
    """The modality a per-sample input shape implies.

    >>> modality_of((4,)), modality_of((1, 40)), modality_of((1, 8, 8))
    ('table', 'signal', 'image')
    """
    try:
        return MODALITIES[len(input_shape)]
    except KeyError:
        raise DataError(
            f"inputs of shape {tuple(input_shape)} per sample: auto knows tables (F,), signals (C, L) and "
            "images (C, H, W); reshape the data to one of them"
        ) from None


def profile_data(recipe: Recipe) -> DataProfile:
    """Stage 1: the data's task, shapes, balance, missing values, copies and model family."""
    keep = dataclasses.replace(recipe.preprocess, duplicates="keep", near_duplicates=None)
    bundle = load_data(recipe.data, keep, keep_raw=True)
    # Text (token ids: the data layer's meta["text"]) drops exact copies before its split
    # (data.dedupe): read it again with them kept, so the profile counts where they would have
    # landed (within and across splits). The recipes auto trains keep data.dedupe on.
    text = bool(bundle.meta.get("text"))
    if text and recipe.data.params.get("dedupe", True):
        data = dataclasses.replace(recipe.data, params={**recipe.data.params, "dedupe": False})
        bundle = load_data(data, keep, keep_raw=True)
    summary = bundle.summary()
    modality: Modality = "text" if text else bundle.meta.get("modality") or modality_of(bundle.input_shape)
    exact = bundle.report.get("duplicates") or {}
    exact = {"within": dict(exact.get("within", {})), "across": dict(exact.get("across", {}))}
    near = _near_documents(bundle) if text else _near(bundle)
    cells = not text and bundle.raw is not None and bundle.raw.x.dtype == object  # a CSV's cells
    counts = summary.get("class_counts") or {}
    train_counts = [c for c in (counts.get("train") or {}).values()]
    imbalance = (max(train_counts) / max(1, min(train_counts))) if train_counts else None
    found_near = sum(near.get("within", {}).values()) + sum(near.get("across", {}).values())
    families = list(FAMILIES[modality])
    profile = DataProfile(
        dataset=recipe.data.name,
        task=bundle.task,
        modality=modality,
        input_shape=list(bundle.input_shape),
        num_classes=bundle.num_classes,
        sizes=dict(summary["sizes"]),
        class_counts={s: dict(c) for s, c in counts.items()},
        imbalance=imbalance,
        missing=_missing(bundle),
        duplicates=exact,
        near=near,
        family=families[0],
        families=families,
        # The data layer drops near copies of documents and arrays; a table of cells (a CSV file)
        # is compared for exact copies only, so its near copies are counted, not dropped.
        near_duplicates=None if not found_near or cells else TEXT_NEAR_THRESHOLD if text else NEAR_THRESHOLD,
    )
    return dataclasses.replace(profile, notes=_notes(profile, text))


def _near(bundle: DataBundle) -> dict[str, Any]:
    """Near copies beyond the exact ones, within and across splits (every pair, or a sample)."""
    splits = {s: (bundle.split(s)[0].numpy(), bundle.split(s)[1].numpy()) for s in ("train", "val", "test")}
    sampled = sum(len(x) for x, _ in splits.values()) > FULL_LIMIT
    if sampled:
        splits = sample_splits(splits, SAMPLE)
    exact = find_duplicates(splits)
    rest = {
        s: (np.delete(x, exact.drop[s], 0), np.delete(y, exact.drop[s], 0)) for s, (x, y) in splits.items()
    }
    found = find_near_duplicates(rest, NEAR_THRESHOLD, classification=bundle.task == "classification")
    return {**found.counts, "threshold": NEAR_THRESHOLD, "sampled": sampled}


def _near_documents(bundle: DataBundle) -> dict[str, Any]:
    """Near-copy documents beyond the exact ones, within and across the splits of the documents as
    read (``bundle`` was loaded with ``keep_raw`` and ``data.dedupe`` off): every pair, or a sample
    of ``SAMPLE`` per split."""
    pool = bundle.raw
    about = {"threshold": TEXT_NEAR_THRESHOLD, "jaccard": JACCARD, "shingle": SHINGLE}
    if pool is None or pool.x_test is None or pool.y_test is None:
        return {"within": {}, "across": {}, **about, "sampled": False}
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
    rest = {s: (np.delete(x, exact.drop[s]), np.delete(y, exact.drop[s])) for s, (x, y) in splits.items()}
    found = find_near_documents(rest, TEXT_NEAR_THRESHOLD, classification=bundle.task == "classification")
    return {**found.counts, **about, "sampled": sampled}


def sample_splits(splits: dict[str, tuple[Any, Any]], n: int) -> dict[str, tuple[Any, Any]]:
    """At most ``n`` samples of each split, a seeded random choice kept in the split's order (the
    pairwise comparisons of the profile grow with the square of a split's size)."""
    rng = np.random.default_rng(0)
    return {
        s: (x[idx], y[idx])
        for s, (x, y) in splits.items()
        for idx in [np.sort(rng.choice(len(x), min(len(x), n), replace=False))]
    }


def _missing(bundle: DataBundle) -> dict[str, Any]:
    """Missing cells of the raw data (train, val and test), per column for a table."""
    pool = bundle.raw
    if pool is None:
        return {"cells": 0}
    parts = [pool.x] + ([pool.x_test] if pool.x_test is not None else [])
    x = np.concatenate([np.asarray(p).reshape(len(p), -1) for p in parts])
    if x.dtype == object:
        mask = np.vectorize(is_missing, otypes=[bool])(x) if x.size else np.zeros(x.shape, bool)
    else:
        mask = np.isnan(x.astype(np.float64))
    out: dict[str, Any] = {"cells": int(mask.sum())}
    table = bundle.preprocessing.table
    names = list(table.columns) if table is not None else bundle.feature_names
    if len(bundle.input_shape) == 1 and mask.any():
        cols = names or [f"x{i}" for i in range(x.shape[1])]
        out["columns"] = {cols[i]: int(n) for i, n in enumerate(mask.sum(axis=0)) if n and i < len(cols)}
    return out


def _notes(p: DataProfile, text: bool) -> list[str]:
    """The profile in sentences: what auto will do about what it found."""
    unit = " tokens" if text else ""
    shape = "x".join(map(str, p.input_shape))
    notes = [f"{p.modality} data ({shape}{unit} per sample): model family {p.family}"]
    if p.imbalance is not None and p.imbalance >= 3:
        notes.append(f"imbalanced classes: the largest is {p.imbalance:.1f}x the smallest in train")
    if p.missing.get("cells"):
        notes.append(f"{p.missing['cells']} missing values, imputed on train statistics (preprocess.impute)")
    leak = p.leakage
    if leak:
        where = ", ".join(f"{n} {pair}" for pair, n in leak.items())
        notes.append(f"leakage: copies across splits ({where}) would inflate val and test; they are dropped")
    if p.exact_total:
        how = "documents dropped before the split (data.dedupe)" if text else "rows dropped before training"
        policy = "" if text else " (preprocess.duplicates: drop)"
        if p.exact_total == 1:
            how = how.replace("documents", "document").replace("rows", "row")
        notes.append(f"{p.exact_total} exact duplicate {how}{policy}")
    if p.near_total:
        sampled = " (estimated on a sample)" if p.near.get("sampled") else ""
        dropped = (
            "dropped (preprocess.near_duplicates)"
            if p.near_duplicates
            else "counted, not dropped (a CSV's rows are compared for exact copies only)"
        )
        what = ("document" if text else "row") + ("s" if p.near_total != 1 else "")
        notes.append(f"{p.near_total} near-duplicate {what}{sampled}: {dropped}")
    if text:
        notes.append(
            f"text: near copies are documents of one label whose word {SHINGLE}-grams overlap by a Jaccard "
            f"similarity >= {JACCARD:.1f} (preprocess.near_duplicates: {TEXT_NEAR_THRESHOLD} = 1 - Jaccard)"
        )
    return notes
