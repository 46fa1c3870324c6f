"""run_search / prepare_search: the exact budget, best.yaml, final runs, resume, several
objectives, and settings refused before anything runs."""

import os
import statistics

import pytest
import yaml
from optuna.trial import TrialState

import tunelab.train
from tunelab import fit, load_recipe
from tunelab.errors import RecipeError, TunelabError
from tunelab.study.search.run import prepare_search, run_search


def test_search_spends_the_exact_budget_and_its_best_recipe_reproduces(where, iris):
    r = run_search(iris, trials=4, final_seeds=2, study_name="s", **where)
    assert r.counts() == {"COMPLETE": 4}
    assert [t.number for t in r.trials] == [0, 1, 2, 3]
    values = [t.value for t in r.trials]
    assert r.best.value == max(values) and r.best.number == values.index(max(values))
    assert set(r.best.params) == {"optimizer.lr", "model.dropout"}
    # best.yaml is fully resolved, has no search section, and repeats the best trial exactly.
    best = yaml.safe_load(open(r.best.recipe_path))
    assert "search" not in best and best["optimizer"]["lr"] == r.best.params["optimizer.lr"]
    assert best["optimizer"]["betas"] == [0.9, 0.999]  # defaults written out
    again = fit(load_recipe(r.best.recipe_path), save=False)
    assert again.val["accuracy"] == r.best.value
    # Final runs: seeds 0 and 1, each a run directory with test read once; seed 0 is the trial itself.
    f = r.final
    assert f.seeds == [0, 1] and [run.seed for run in f.runs] == [0, 1]
    assert all(os.path.isfile(os.path.join(run.run_dir, "result.json")) for run in f.runs)
    assert f.runs[0].val["accuracy"] == r.best.value
    (m,) = f.metrics
    assert m.name == "val.accuracy" and m.val.n == m.test.n == 2
    assert m.val.mean == pytest.approx(statistics.mean(run.val["accuracy"] for run in f.runs))
    assert m.test.mean == pytest.approx(statistics.mean(run.test["accuracy"] for run in f.runs))
    assert m.test.ci_low <= m.test.mean <= m.test.ci_high


def test_single_worker_searches_are_reproducible(tmp_path, monkeypatch, iris):
    monkeypatch.chdir(tmp_path)
    runs = [
        run_search(
            iris, trials=3, final_seeds=0, storage=f"sqlite:///{tmp_path / f'{i}.db'}", out_dir=tmp_path
        )
        for i in range(2)
    ]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    assert [t.value for t in runs[0].trials] == [t.value for t in runs[1].trials]
    assert runs[0].study == "iris-mlp"  # default name of a mapping recipe


def test_running_again_resumes_without_recomputing(where, monkeypatch, iris, study_of):
    ended = []
    first = run_search(iris, trials=3, final_seeds=1, study_name="s", **where)
    before = {t.number: t for t in study_of("s").get_trials()}
    second = run_search(
        iris, trials=5, final_seeds=1, study_name="s", on_trial=lambda t, _: ended.append(t.number), **where
    )
    assert second.counts() == {"COMPLETE": 5}
    assert ended == [3, 4]  # only the two new trials ran
    after = {t.number: t for t in study_of("s").get_trials()}
    for n in range(3):
        assert after[n].datetime_complete == before[n].datetime_complete
        assert after[n].params == before[n].params and after[n].value == before[n].value
    # The budget is kept when not given again; nothing is trained, not even the final runs when
    # the best trial did not change.
    if second.best.number == first.best.number:

        def no_training(*args, **kwargs):
            raise AssertionError("nothing should be trained")

        monkeypatch.setattr(tunelab.train, "fit", no_training)
    third = run_search(iris, final_seeds=1, study_name="s", **where)
    assert third.budget == 5 and third.counts() == {"COMPLETE": 5}
    assert third.final.runs == second.final.runs


def test_resuming_with_another_space_is_refused(where, iris):
    run_search(iris, trials=1, final_seeds=0, study_name="s", **where)
    other = {**iris, "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}}
    with pytest.raises(TunelabError, match="exists with another recipe or search space"):
        run_search(other, trials=2, final_seeds=0, study_name="s", **where)
    with pytest.raises(TunelabError, match=r"exists with objectives val\.accuracy"):
        run_search(iris, trials=2, final_seeds=0, study_name="s", objectives="val.loss", **where)


def test_several_objectives_give_a_pareto_front(where, iris):
    space = {**iris, "search": {"model.hidden": {"type": "categorical", "choices": [[2], [4], [16], [64]]}}}
    space["train"] = {**iris["train"], "efficiency": True}
    r = run_search(space, trials=6, objectives="val.accuracy,params", final_seeds=2, study_name="m", **where)
    assert r.directions == ["maximize", "minimize"]
    complete = [t for t in r.trials if t.state == "COMPLETE"]
    front = {t.number for t in r.pareto_front}

    def dominates(a, b):
        return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values

    for t in complete:
        dominated = any(dominates(o, t) for o in complete)
        assert (t.number in front) == (not dominated)
    # best: the front's trial best on the first objective
    assert r.best.number in front
    assert r.best.values[0] == max(t.values[0] for t in r.pareto_front)
    assert [m.name for m in r.final.metrics] == ["val.accuracy", "params"]
    assert r.final.metrics[1].value.mean == r.final.runs[0].costs["params"]  # same model each seed


def test_nsga2_searches_width_structured_pruning_and_quantization(where, study_of):
    # The multi-objective search: every trial's latency is that of the model it would
    # deploy (narrowed by channel_prune, int8 with quantize), so the three kinds of setting move it.
    space = {
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [64]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1, "tensorboard": False},
        "methods": [{"name": "channel_prune", "ratio": 0.5}, {"name": "quantize"}],
        "search": {
            "model.hidden": {"type": "categorical", "choices": [[32], [256, 256]]},
            "methods.channel_prune": {"type": "categorical", "choices": [True, False]},
            "methods.channel_prune.ratio": {"type": "uniform", "low": 0.3, "high": 0.7},
            "methods.quantize": {"type": "categorical", "choices": [True, False]},
        },
    }
    r = run_search(
        space,
        trials=6,
        objectives="val.accuracy,latency_ms",
        sampler="nsga2",
        final_seeds=1,
        study_name="p",
        **where,
    )
    assert r.directions == ["maximize", "minimize"] and r.pareto_front
    study = study_of("p")
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        costs = t.user_attrs["costs"]
        assert t.values[1] == costs["latency_ms"] > 0
        hidden = yaml.safe_load(t.params["model.hidden"])  # stored as YAML text
        dense = sum(a * b + b for a, b in zip([64, *hidden], [*hidden, 10], strict=True))  # digits: 64 in
        if t.params["methods.channel_prune"]:
            assert costs["params"] < dense  # the narrowed model is what was timed and counted
        else:
            assert costs["params"] == dense


def test_pruning_needs_one_val_objective(where, iris):
    with pytest.raises(TunelabError, match="needs a single objective"):
        prepare_search(iris, pruner="asha", objectives="val.accuracy,latency_ms", storage=where["storage"])
    with pytest.raises(TunelabError, match="latency_ms is only known after training"):
        prepare_search(iris, pruner="median", objectives="latency_ms", storage=where["storage"])


def test_bad_settings_are_refused_before_anything_runs(where, iris):
    with pytest.raises(
        RecipeError, match="--sampler: got 'bayes'; unknown sampler; known: cmaes, gp, nsga2, random, tpe"
    ):
        prepare_search(iris, sampler="bayes", storage=where["storage"])
    with pytest.raises(RecipeError, match="--pruner: got 'sha'"):
        prepare_search(iris, pruner="sha", storage=where["storage"])
    with pytest.raises(TunelabError, match="cmaes optimizes one objective"):
        prepare_search(iris, sampler="cmaes", objectives="val.accuracy,params", storage=where["storage"])
    with pytest.raises(RecipeError, match="the recipe has no search space"):
        prepare_search({**iris, "search": {}}, storage=where["storage"])
    with pytest.raises(RecipeError, match="--trials: got 0"):
        prepare_search(iris, trials=0, storage=where["storage"])
    with pytest.raises(RecipeError, match=r"search\.optimizer\.lr: got -1\.0; must be > 0"):
        prepare_search(
            {**iris, "search": {"optimizer.lr": {"type": "uniform", "low": -1, "high": 1}}},
            storage=where["storage"],
        )
    assert not (where["out_dir"]).exists()
