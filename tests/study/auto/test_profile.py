from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.study.auto.conftest import NEAR_PLANTED, PLANTED

from tunelab.data import load_data
from tunelab.data.near_text import JACCARD, THRESHOLD
from tunelab.errors import DataError, RecipeError
from tunelab.recipe import load_recipe
from tunelab.study.auto.profile import FAMILIES, modality_of, profile_data


def test_planted_copies_across_splits_are_found_reported_and_dropped(planted_csv):
    p = profile_data(load_recipe({"data": {"name": "csv", "path": str(planted_csv), "target": "label"}}))
    assert (p.modality, p.task, p.family) == ("table", "classification", "mlp")
    # iris holds one exact copy of its own (two rows 143 and 102 agree); the planted ones add 12.
    assert p.exact_total == PLANTED + 1
    assert sum(p.leakage.values()) > 0  # some copies landed in another split than their original
    assert any("leakage" in n for n in p.notes) and any(f"{PLANTED + 1} exact" in n for n in p.notes)
    assert p.to_dict()["dropped"]["exact"] == PLANTED + 1
    assert p.sizes["train"] + p.sizes["val"] + p.sizes["test"] == 150 + PLANTED


def _near_rows():
    rows = [(i * 0.37, (i * 7.3) % 13, i % 2) for i in range(60)]
    return [*rows, (1.851, 10.501, 1), (6.291, 7.101, 1)]  # near copies of rows 5 and 17 (same class)


def test_near_copies_of_arrays_are_counted_and_set_the_recipes_threshold(tmp_path):
    rows = np.array(_near_rows())
    path = tmp_path / "near.npz"
    np.savez(path, x=rows[:, :2].astype("float32"), y=rows[:, 2].astype("int64"))
    p = profile_data(load_recipe({"data": {"name": "npz", "path": str(path)}}))
    assert p.exact_total == 0 and p.near_total == 2
    assert p.near_duplicates is not None and p.to_dict()["dropped"]["near"] == 2


def test_near_copies_in_a_csv_are_counted_not_claimed_dropped(tmp_path):
    # The data layer compares a CSV's cells for exact copies only: the profile says so, and sets no
    # threshold that the data layer would refuse.
    lines = ["a,b,label"] + [f"{a:.3f},{b:.3f},{'xy'[int(c)]}" for a, b, c in _near_rows()]
    path = tmp_path / "near.csv"
    path.write_text("\n".join(lines) + "\n")
    recipe = load_recipe({"data": {"name": "csv", "path": str(path), "target": "label"}})
    p = profile_data(recipe)
    assert p.near_total == 2 and p.near_duplicates is None and p.to_dict()["dropped"]["near"] == 0
    assert any("2 near-duplicate rows: counted, not dropped" in n for n in p.notes)
    with pytest.raises(RecipeError, match=r"preprocess\.near_duplicates: got 0\.05; compares numeric arrays"):
        load_data(recipe.data, dataclasses.replace(recipe.preprocess, near_duplicates=0.05))


def test_modality_picks_the_family_and_refuses_other_shapes():
    assert [modality_of(s) for s in [(4,), (1, 40), (1, 8, 8)]] == ["table", "signal", "image"]
    assert FAMILIES["signal"] == ("cnn1d", "resnet", "gru")
    with pytest.raises(DataError, match="reshape"):
        modality_of((1, 2, 3, 4))


def test_text_copies_exact_and_near_are_counted_within_and_across_splits(planted_text_csv):
    p = profile_data(load_recipe({"data": {"name": "text_csv", "path": str(planted_text_csv)}}))
    assert (p.modality, p.family, p.families) == ("text", "embedding_bag", list(FAMILIES["text"]))
    # Read with the copies kept: 121 + the planted near copies, split as they would fall.
    assert sum(p.sizes.values()) == 121 + NEAR_PLANTED
    assert p.exact_total == 1 and p.near_total == NEAR_PLANTED
    assert p.near["jaccard"] == JACCARD and p.near["threshold"] == THRESHOLD and not p.near["sampled"]
    # Near copies of text are dropped like those of arrays: the recipes set the text threshold.
    assert p.near_duplicates == THRESHOLD and p.to_dict()["dropped"] == {"exact": 1, "near": NEAR_PLANTED}
    across = sum(p.near["across"].values()) + sum(p.duplicates["across"].values())
    assert sum(p.leakage.values()) == across
    assert p.notes[0].startswith("text data (256 tokens per sample)")
    assert any(f"{NEAR_PLANTED} near-duplicate documents: dropped" in n for n in p.notes)
