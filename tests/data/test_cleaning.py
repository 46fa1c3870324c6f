"""Exact duplicate rows: counted within and across splits, dropped or kept as the recipe says."""

from __future__ import annotations

import numpy as np

from tunelab.data import RawData, make_bundle
from tunelab.data.cleaning import find_duplicates, find_near_duplicates, row_keys
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


# --- near duplicates ------------------------------------------------------------------------------


def near_reference(splits, threshold, classification=True):
    """Every pair compared one at a time, in plain NumPy: what find_near_duplicates must agree with."""
    order = list(splits)
    train = splits[order[0]][0].reshape(len(splits[order[0]][0]), -1)
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    z = {n: (x.reshape(len(x), -1) - mean) / std for n, (x, _) in splits.items()}
    drop, within, across = {}, {}, {}
    for k, name in enumerate(order):
        rows = []
        for i in range(len(z[name])):
            sources = [(name, range(i))] + [(e, range(len(z[e]))) for e in order[:k]]
            for src, js in sources:
                same = [
                    j
                    for j in js
                    if np.sqrt(np.mean((z[name][i] - z[src][j]) ** 2)) <= threshold
                    and (not classification or splits[name][1][i] == splits[src][1][j])
                ]
                if same:
                    rows.append(i)
                    key = (within, name) if src == name else (across, f"{name}~{src}")
                    key[0][key[1]] = key[0].get(key[1], 0) + 1
                    break
        drop[name] = rows
    return drop, within, across


def planted(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(90, 6))
    y = rng.integers(0, 3, size=90)
    x[10] = x[3] + 0.01 * rng.normal(size=6)  # a near copy within train
    x[50] = x[5] + 0.01 * rng.normal(size=6)  # val ~ train
    x[75] = x[60] + 0.02 * rng.normal(size=6)  # test ~ val
    x[80] = x[7] + 0.01 * rng.normal(size=6)  # test ~ train, but another class below
    y[[10, 50, 75]] = y[[3, 5, 60]]
    y[80] = (y[7] + 1) % 3
    return {"train": (x[:40], y[:40]), "val": (x[40:70], y[40:70]), "test": (x[70:], y[70:])}


def test_near_duplicates_match_a_pair_by_pair_reference(monkeypatch):
    import tunelab.data.cleaning as cleaning

    splits = planted()
    for block in (2048, 7):  # one block, and blocks that split every split
        monkeypatch.setattr(cleaning, "_BLOCK", block)
        d = find_near_duplicates(splits, 0.05)
        drop, within, across = near_reference(splits, 0.05)
        assert {k: v.tolist() for k, v in d.drop.items()} == drop
        assert {k: v for k, v in d.counts["within"].items() if v} == within
        assert {k: v for k, v in d.counts["across"].items() if v} == across
    assert d.drop["train"].tolist() == [10] and d.drop["val"].tolist() == [10]
    assert d.drop["test"].tolist() == [5]  # the copy of another class (row 80) is not a copy
    # Without labels (regression) the copy of another class counts too.
    assert find_near_duplicates(splits, 0.05, classification=False).drop["test"].tolist() == [5, 10]


def test_a_larger_threshold_finds_more_and_exact_copies_count():
    splits = planted(1)
    assert find_near_duplicates(splits, 0.05).total < find_near_duplicates(splits, 3.0).total
    x, y = splits["train"]
    same = {"train": (np.concatenate([x, x[:2]]), np.concatenate([y, y[:2]]))}
    assert find_near_duplicates(same, 1e-6).drop["train"].tolist() == [40, 41]


def test_make_bundle_drops_near_copies_when_asked_and_reports_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = np.arange(200) % 2
    x[150:] = x[:50] + 0.001 * rng.normal(size=(50, 5)).astype(np.float32)  # 50 near copies
    y[150:] = y[:50]
    raw = RawData(x, y, "classification")
    off = make_bundle(raw, DataSpec(), PreprocessSpec(duplicates="drop"))
    assert "near" not in off.report["duplicates"] and sum(off.summary()["sizes"].values()) == 200
    counted = make_bundle(raw, DataSpec(), PreprocessSpec(duplicates="keep", near_duplicates=0.05))
    near = counted.report["duplicates"]["near"]
    assert sum(near["within"].values()) + sum(near["across"].values()) == 50 and near["threshold"] == 0.05
    assert sum(counted.summary()["sizes"].values()) == 200
    dropped = make_bundle(raw, DataSpec(), PreprocessSpec(duplicates="drop", near_duplicates=0.05))
    assert sum(dropped.summary()["sizes"].values()) == 150
