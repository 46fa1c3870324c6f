"""tunelab.study.scaffold: the metric a study compares, the base recipe, what makes two studies the
same, and StudyRuns (each run made once, with the quiet overrides, counted)."""

from __future__ import annotations

import optuna
import pytest

from tunelab.errors import TunelabError
from tunelab.recipe import load_recipe
from tunelab.study.scaffold import (
    QUIET_OVERRIDES,
    RunOutcome,
    StudyRuns,
    compared_metric,
    override_text,
    study_fingerprint,
    study_identity,
    study_recipe,
    value_label,
)

IRIS = {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2}}


@pytest.mark.parametrize(
    ("monitor", "task", "expected"),
    [
        ("auto", "classification", ("val.accuracy", "accuracy", "max", "val.accuracy", "maximize")),
        ("auto", "regression", ("val.loss", "loss", "min", "val.loss", "minimize")),
        ("val.f1", None, ("val.f1", "f1", "max", "val.f1", "maximize")),
        ("train.loss", None, ("train.loss", "loss", "min", "val.loss", "minimize")),  # compared on val
    ],
)
def test_compared_metric_reads_the_monitor_on_val(monitor, task, expected):
    m = compared_metric(load_recipe({"train": {"monitor": monitor}}), task)
    assert (m.monitor, m.metric, m.mode, m.objective, m.direction) == expected


def test_an_auto_monitor_needs_the_task():
    with pytest.raises(ValueError, match="the data's task is needed"):
        compared_metric(load_recipe({}), None)


def test_study_recipe_loads_and_applies_overrides_once():
    r = load_recipe(IRIS)
    assert study_recipe(r) is r
    assert study_recipe(r, ["train.epochs=5"]).train.epochs == 5
    assert study_recipe(IRIS, ["optimizer.lr=0.1"]).optimizer.params["lr"] == 0.1


def test_only_what_changes_a_result_is_the_identity():
    raw = load_recipe(
        {**IRIS, "search": {"optimizer.lr": {"type": "uniform", "low": 0.1, "high": 1}}}
    ).to_dict()
    identity = study_identity(raw)
    assert "search" not in identity and "tensorboard" not in identity["train"]
    assert "efficiency" not in identity["train"] and identity["train"]["epochs"] == 2
    assert "loggers" not in identity["train"]
    quiet = load_recipe(IRIS, list(QUIET_OVERRIDES)).to_dict()
    assert study_fingerprint(quiet) == study_fingerprint(load_recipe(IRIS).to_dict())
    logged = load_recipe(IRIS, ["train.loggers=[mlflow]"]).to_dict()
    assert study_fingerprint(logged) == study_fingerprint(quiet)  # a logger changes no result
    assert study_fingerprint(load_recipe(IRIS, ["train.threads=2"]).to_dict()) != study_fingerprint(quiet)


def test_values_as_overrides_and_labels():
    assert override_text("optimizer.name", "sgd") == 'optimizer.name="sgd"'
    assert load_recipe(IRIS, [override_text("model.hidden", [4, 4])]).model.params["hidden"] == (4, 4)
    assert [value_label(v) for v in (0.01, False, "adamw", [64, 64], {"decay": 0.99})] == [
        "0.01", "false", "adamw", "[64, 64]", "{decay: 0.99}",
    ]  # fmt: skip


class Recorder:
    """A runner that records the recipes it is given and scores each by its learning rate."""

    def __init__(self):
        self.recipes = []

    def __call__(self, recipe, bundle, out):
        self.recipes.append(recipe)
        lr = recipe.optimizer.params.get("lr", 0.001)
        return RunOutcome("completed", {"accuracy": lr}, {"accuracy": 2 * lr}, seconds=1.0, run_dir=out)


def study_runs(storage, runner, **changes):
    base = load_recipe({**IRIS, "ablation": {"add": [{"name": "ema"}]}}, changes.pop("overrides", []))
    kwargs = {
        "kind": "ablation",
        "storage": storage,
        "study_name": "s",
        "metric": compared_metric(base, "classification"),
        "runner": runner,
        "study": {"monitor": "val.accuracy"},
        **changes,
    }
    return StudyRuns(base, **kwargs)


def test_each_run_is_made_once_with_the_quiet_overrides_and_counted():
    storage, runner = optuna.storages.InMemoryStorage(), Recorder()
    runs = study_runs(storage, runner)
    first = runs.run({"seed": 0}, ["optimizer.lr=0.1"], bundle=None, attrs={"variant": "lr"})
    again = runs.run({"seed": 0}, ["optimizer.lr=0.1"], bundle=None)
    assert (first.value, first.cached, again.cached, again.value) == (0.1, False, True, 0.1)
    assert (runs.computed, runs.reused) == (1, 1) and len(runner.recipes) == 1
    (recipe,) = runner.recipes
    assert recipe.train.tensorboard is False and recipe.train.efficiency is False
    assert recipe.ablation.add == []  # the study's own section is not part of a run's recipe
    assert first.attrs["variant"] == "lr" and "test" not in first.attrs  # selection runs keep no test
    kept = runs.run({"seed": 0, "phase": "test"}, [], bundle=None, out="runs/x", keep_test=True)
    assert kept.attrs["test"] == {"accuracy": 0.002} and kept.attrs["run_dir"] == "runs/x"


def test_seed_in_keys_lets_a_study_serve_another_base_seed_and_other_recipes_are_refused():
    storage = optuna.storages.InMemoryStorage()
    study_runs(storage, Recorder(), seed_in_keys=True).run({"seed": 2}, ["train.seed=2"], None)
    moved = study_runs(storage, Recorder(), seed_in_keys=True, overrides=["train.seed=2"])
    assert moved.run({"seed": 2}, ["train.seed=2"], None).cached
    with pytest.raises(TunelabError, match=r"different recipe \(train\.seed: \(absent\) -> 2\)"):
        study_runs(storage, Recorder(), overrides=["train.seed=2"])
    with pytest.raises(
        TunelabError, match=r"different recipe \(study\.monitor: val\.accuracy -> val\.loss\)"
    ):
        study_runs(storage, Recorder(), seed_in_keys=True, study={"monitor": "val.loss"})
