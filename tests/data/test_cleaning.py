"""Exact duplicate rows: counted within and across splits, dropped or kept as the recipe says."""

from __future__ import annotations

import numpy as np

from tunelab.data import RawData, make_bundle
from tunelab.data.cleaning import find_duplicates, row_keys
from tunelab.spec import DataSpec, PreprocessSpec


def test_within_and_across_counts_and_which_rows_go():
    x = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = np.array([0, 0, 1, 1])
    val_x, val_y = np.array([[3.0, 4.0], [3.0, 4.0], [7.0, 8.0]]), np.array([1, 1, 0])
    test_x, test_y = np.array([[7.0, 8.0], [1.0, 2.0], [1.0, 2.0]]), np.array([0, 0, 1])
    d = find_duplicates({"train": (x, y), "val": (val_x, val_y), "test": (test_x, test_y)})
    assert d.counts == {
        "within": {"train": 1, "val": 1, "test": 0},
        "across": {"val~train": 1, "test~val": 1, "test~train": 1},
    }
    # The third test row ([1, 2] with label 1) differs from train's by its label: not a copy.
    assert {k: v.tolist() for k, v in d.drop.items()} == {"train": [1], "val": [0, 1], "test": [0, 1]}
    assert d.total == 5


def test_text_cells_and_targets_make_the_key():
    a = np.array([["x", None], ["x", None], ["x", ""]], dtype=object)
    keys = row_keys(a, np.array([0, 0, 0]))
    assert keys[0] == keys[1] != keys[2]
    assert row_keys(a[:1], np.array([0])) != row_keys(a[:1], np.array([1]))


def table_with_copies() -> RawData:
    rng = np.random.default_rng(0)
    cells = np.array([[str(v), "ab"[i % 2]] for i, v in enumerate(rng.permutation(1000)[:200])], dtype=object)
    cells[150:] = cells[:50]  # 50 exact copies of rows (with the same targets below)
    y = np.arange(200) % 2
    y[150:] = y[:50]
    return RawData(cells, y, "classification", feature_names=["v", "c"], name="t")


def test_make_bundle_drops_copies_of_a_text_table_and_reports_where_they_were():
    b = make_bundle(table_with_copies(), DataSpec())
    dup = b.report["duplicates"]
    within, across = sum(dup["within"].values()), sum(dup["across"].values())
    assert within + across == 50 and across > 0 and dup["action"] == "dropped"
    assert sum(b.summary()["sizes"].values()) == 150
    rows = [tuple(r) for r in np.concatenate([b.x_train, b.x_val, b.x_test]).tolist()]
    labels = np.concatenate([b.y_train, b.y_val, b.y_test]).tolist()
    assert len({(*r, t) for r, t in zip(rows, labels, strict=True)}) == 150  # no copy left anywhere


def test_arrays_keep_their_copies_by_default_and_drop_them_when_asked():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    x[80:] = x[:20]
    y = np.arange(100) % 2
    y[80:] = y[:20]
    raw = RawData(x, y, "classification")
    kept = make_bundle(raw, DataSpec())
    assert sum(kept.summary()["sizes"].values()) == 100
    dup = kept.report["duplicates"]
    assert sum(dup["within"].values()) + sum(dup["across"].values()) == 20
    assert dup["action"].startswith("kept (preprocess.duplicates: auto")
    dropped = make_bundle(raw, DataSpec(), PreprocessSpec(duplicates="drop"))
    assert sum(dropped.summary()["sizes"].values()) == 80
    text = make_bundle(table_with_copies(), DataSpec(), PreprocessSpec(duplicates="keep"))
    assert sum(text.summary()["sizes"].values()) == 200
