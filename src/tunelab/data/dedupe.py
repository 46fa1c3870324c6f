"""The split's cleaning: exact and near copies within and across train, val and test, found by
``tunelab.data.cleaning`` (arrays) and ``tunelab.data.near_text`` (documents), dropped or counted
as ``preprocess.duplicates`` says, before anything is fit on train."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.data.cleaning import find_duplicates, find_near_duplicates, row_digests
from tunelab.data.near_text import SHINGLE, find_near_documents
from tunelab.data.tokenize import is_documents
from tunelab.errors import RecipeError
from tunelab.spec import PreprocessSpec

__all__ = ["NEAR_CELLS", "drop_duplicates"]

Splits = dict[str, tuple[np.ndarray, np.ndarray]]
NEAR_CELLS = (
    "compares numeric arrays and documents; a table of cells (a CSV file) is compared for exact "
    "copies only (preprocess.duplicates): remove preprocess.near_duplicates"
)


def drop_duplicates(
    sources: Splits,
    index: dict[str, np.ndarray],
    preprocess: PreprocessSpec,
    text: bool,
    classification: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Exact duplicate rows within and across the splits (``tunelab.data.cleaning``), then, with
    ``preprocess.near_duplicates``, near copies among what is left: dropped or only counted, as
    ``preprocess.duplicates`` says (auto: dropped for tables and documents read from text). Near
    copies of documents are by word shingles (``tunelab.data.near_text``), of arrays by standardized
    features; a table of cells (a CSV file) is refused: its cells are not numbers.

    Each split is the rows ``index[split]`` of ``sources[split]`` = ``(x, y)``; what is returned are
    the rows kept. Exact duplicates are found from each source's row digests, so the samples are not
    copied for it (an image set would be, whole); near copies compare the samples themselves."""
    digests = {id(x): row_digests(x) for x, _ in sources.values()}  # train and val share one source
    found = find_duplicates({n: (digests[id(x)][index[n]], y[index[n]]) for n, (x, y) in sources.items()})
    drop = preprocess.duplicates == "drop" or (preprocess.duplicates == "auto" and text)
    kept = _without(index, found.drop) if drop and found.total else index
    report = found.report(drop, preprocess.duplicates)
    if preprocess.near_duplicates is None:
        return kept, report
    documents = is_documents(sources["train"][0])
    if text and not documents:
        raise RecipeError("preprocess.near_duplicates", preprocess.near_duplicates, NEAR_CELLS)
    rest = kept if drop else _without(index, found.drop)  # near copies beyond the exact ones
    parts = {n: (x[rest[n]], y[rest[n]]) for n, (x, y) in sources.items()}
    if documents:
        near = find_near_documents(parts, preprocess.near_duplicates, classification=classification)
        measure = {"measure": f"1 - Jaccard of word {SHINGLE}-grams"}
    else:
        near = find_near_duplicates(parts, preprocess.near_duplicates, classification=classification)
        measure = {}
    if drop and near.total:
        kept = _without(kept, near.drop)
    report["near"] = {**near.counts, "threshold": preprocess.near_duplicates, **measure}
    return kept, report


def _without(index: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: np.delete(i, rows[n]) for n, i in index.items()}
