from __future__ import annotations

import time

from tunelab.recipe import load_recipe
from tunelab.study.auto import ablation
from tunelab.study.scaffold import RunOutcome, study_free_raw

WINNER = study_free_raw(
    load_recipe(
        {
            "data": {"name": "iris"},
            "model": {"name": "mlp", "hidden": [8], "dropout": 0.2},
            "methods": [{"name": "early_stopping"}, {"name": "l2", "weight": 1e-3}, {"name": "ema"}],
        }
    )
)


def noise(recipe):
    """Noise that differs per seed and per variant, so each paired difference has a spread."""
    d = recipe.to_dict()
    return 0.002 * ((d["train"]["seed"] * 7 + len(d["methods"]) * 3 + int(d["model"]["dropout"] * 10)) % 5)


def scripted(effects):
    """A runner whose val accuracy is 0.9 + per-seed noise, minus ``effects[name]`` for each
    method or regularizer missing from the recipe (what removing it costs)."""
    seen = []

    def runner(recipe, bundle, out=None):
        # The bundle's test slot holds val: the real test split never reaches a selection run.
        assert bundle.x_test is bundle.x_val
        names = {m.name for m in recipe.methods}
        value = 0.9 + noise(recipe)
        for name, cost in effects.items():
            missing = recipe.to_dict()["model"]["dropout"] == 0 if name == "dropout" else name not in names
            value -= cost if missing else 0.0
        seen.append(recipe)
        return RunOutcome("completed", {"accuracy": value}, {}, 0.01, 3)

    return runner, seen


def test_occam_keeps_what_helped_and_drops_the_rest_with_its_interval(monkeypatch, tmp_path):
    runner, seen = scripted({"l2": 0.05, "ema": 0.0, "dropout": 0.0})
    monkeypatch.setattr(ablation, "select_runner", runner)
    storage = f"sqlite:///{tmp_path / 'a.db'}"
    rec = ablation.run_ablation_stage(
        WINNER, seeds=[1, 2, 3, 4], storage=storage, deadline=time.time() + 60, round_seconds=0.0
    )
    assert [k["name"] for k in rec["kept"]] == ["l2"]
    assert sorted(d["name"] for d in rec["dropped"]) == ["dropout", "ema"]
    kept = rec["kept"][0]
    assert kept["delta"] < 0 and kept["ci_high"] < 0  # removal detectably worse: earned its place
    assert all(d["ci_low"] <= 0 <= d["ci_high"] for d in rec["dropped"])
    final = load_recipe(rec["recipe"])
    assert [m.name for m in final.methods] == ["early_stopping", "l2"] and final.to_dict()["model"][
        "dropout"
    ] == 0
    assert rec["occam"]["verdict"] == "no detectable difference"
    assert {r.train.seed for r in seen} == {1, 2, 3, 4}  # the ablation's seeds, nothing else
    # Early stopping is always on: never a variant.
    assert all(any(m.name == "early_stopping" for m in r.methods) for r in seen)
    assert not any(v["name"] == "-early_stopping" for v in rec["variants"])


def test_occam_keeps_the_winner_whole_when_the_drops_hurt_together(monkeypatch, tmp_path):
    # Each of ema and dropout alone costs nothing; both gone costs 0.05 (they stand in for each other).
    def runner(recipe, bundle, out=None):
        names = {m.name for m in recipe.methods}
        both_gone = "ema" not in names and recipe.to_dict()["model"]["dropout"] == 0
        value = 0.9 + noise(recipe) - (0.05 if both_gone else 0.0)
        return RunOutcome("completed", {"accuracy": value}, {}, 0.01, 3)

    monkeypatch.setattr(ablation, "select_runner", runner)
    rec = ablation.run_ablation_stage(
        WINNER,
        seeds=[1, 2, 3],
        storage=f"sqlite:///{tmp_path / 'b.db'}",
        deadline=time.time() + 60,
        round_seconds=0.0,
    )
    assert rec["dropped"] == [] and rec["occam"]["verdict"] == "worse"
    assert load_recipe(rec["recipe"]).to_dict() == load_recipe(WINNER).to_dict()
    assert "whole" in rec["note"]


def test_no_round_starts_past_the_deadline(monkeypatch, tmp_path):
    runner, _seen = scripted({})
    monkeypatch.setattr(ablation, "select_runner", runner)
    rec = ablation.run_ablation_stage(
        WINNER,
        seeds=[1, 2, 3],
        storage=f"sqlite:///{tmp_path / 'c.db'}",
        deadline=time.time() + 5,
        round_seconds=100.0,
    )
    # The first round always runs (an ablation needs one); the second would end past the deadline.
    assert rec["seeds"] == [1] and rec["dropped"] == [] and "fewer than 3 seeds" in rec["note"]
