"""The compared-runs section: every run's loss curves from its own history, each run's final val
figures, and the recipe fields that differ."""

import pytest

from tunelab.errors import TunelabError
from tunelab.report.pages.compare import compare_section
from tunelab.report.pages.run import read_run_dir
from tunelab.train import fit

RECIPE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 3, "threads": 1, "efficiency": False, "tensorboard": False},
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    a = fit(RECIPE, out=tmp / "a")
    b = fit({**RECIPE, "optimizer": {"name": "adam", "lr": 0.01}}, out=tmp / "b")
    return a, b


def test_the_overlay_draws_each_runs_own_losses(two_runs):
    a, b = two_runs
    section = compare_section([read_run_dir(a.run_dir), read_run_dir(b.run_dir)])
    figure, table, note = section.items
    series = {s.name: s for s in figure.series}
    assert set(series) == {"a train", "a val", "b train", "b val"}
    assert series["a val"].y == [h["val"]["loss"] for h in a.history]
    assert series["b train"].y == [h["train"]["loss"] for h in b.history]
    assert series["b val"].x == [1, 2, 3]
    rows = {row[0]: row for row in table.rows}
    accuracy = table.columns.index("val accuracy")
    assert rows["a"][accuracy] == a.val["accuracy"] and rows["b"][accuracy] == b.val["accuracy"]
    assert rows["a"][table.columns.index("processes")] == 1
    assert "optimizer.lr" in note.text and "0.01" in note.text


def test_the_same_recipe_says_so_and_one_run_is_not_a_comparison(two_runs):
    a, _ = two_runs
    files = read_run_dir(a.run_dir)
    same = compare_section([files, files])
    assert same.items[2].text == "The recipes are the same, field for field."
    with pytest.raises(TunelabError, match="at least one other run"):
        compare_section([files])
