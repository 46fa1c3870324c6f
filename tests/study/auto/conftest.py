"""What the auto tests share: iris as a user's CSV with copies planted across its splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

PLANTED = 12  # rows copied exactly (the split scatters the copies across train, val and test)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


@pytest.fixture(scope="session")
def planted_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris (150 rows, 1 exact copy of its own) with ``PLANTED`` more rows copied exactly."""
    iris = load_iris()
    rng = np.random.default_rng(0)
    rows = np.concatenate([np.arange(150), rng.choice(150, PLANTED, replace=False)])
    x, y = iris.data[rows], iris.target[rows]
    path = tmp_path_factory.mktemp("planted") / "iris_planted.csv"
    names = ["sl", "sw", "pl", "pw"]
    lines = [",".join([*names, "label"])] + [
        ",".join([*(f"{v:.1f}" for v in xi), f"c{yi}"]) for xi, yi in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


NEAR_PLANTED = 4  # documents copied with their punctuation and case changed: near copies, not exact


@pytest.fixture(scope="session")
def planted_text_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus (120 documents, 1 exact copy of its own) with ``NEAR_PLANTED`` near copies."""
    import csv

    from tests.conftest import tiny_corpus

    docs = tiny_corpus()
    docs += [
        (d.upper().replace(".", "!"), label)
        for d, label in docs[5 : 120 : 120 // NEAR_PLANTED][:NEAR_PLANTED]
    ]
    path = tmp_path_factory.mktemp("planted_text") / "topics.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "target"])
        w.writerows(docs)
    return path
