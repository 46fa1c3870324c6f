"""Search on the Python API: exact budget, best.yaml, final runs, pruning, Pareto front, resume."""

import importlib.util
import os
import statistics

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import tunelab.train
from tunelab import fit, load_recipe
from tunelab.errors import RecipeError, TunelabError
from tunelab.study.search.objectives import Objective, parse_objectives
from tunelab.study.search.run import prepare_search, run_search
from tunelab.study.search.samplers import SAMPLERS, make_pruner
from tunelab.study.search.workers import run_worker, worker_seed
from tunelab.study.storage import heartbeat_settings

IRIS = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    # One thread: tiny models train faster without thread hand-offs, and the test machine is shared.
    "train": {"epochs": 3, "batch_size": 32, "threads": 1, "efficiency": False, "tensorboard": False},
    "search": {
        "optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
    },
}


@pytest.fixture
def where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository's runs/
    return {"storage": f"sqlite:///{tmp_path / 'studies.db'}", "out_dir": tmp_path / "out"}


def study_of(where, name):
    return optuna.load_study(study_name=name, storage=where["storage"])


def states(study):
    return [t.state for t in study.get_trials()]


# --- a whole search -------------------------------------------------------------------------------


def test_search_spends_the_exact_budget_and_its_best_recipe_reproduces(where):
    r = run_search(IRIS, trials=4, final_seeds=2, study_name="s", **where)
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


def test_trials_keep_val_and_never_test(where, monkeypatch):
    read = []
    evaluate = tunelab.train.evaluate

    def spy(net, data, split, *a, **k):
        read.append(split)
        return evaluate(net, data, split, *a, **k)

    monkeypatch.setattr(tunelab.train, "evaluate", spy)
    run_search(IRIS, trials=2, final_seeds=0, study_name="s", **where)
    assert "val" in read and "test" not in read  # not even computed and left unused
    for t in study_of(where, "s").get_trials():
        assert t.user_attrs["val"]["accuracy"] == t.value
        assert "test" not in t.user_attrs
        assert sorted(t.intermediate_values) == [1, 2, 3]  # the val metric of each epoch
        assert t.user_attrs["overrides"][0].startswith("optimizer.lr=")


def test_single_worker_searches_are_reproducible(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [
        run_search(
            IRIS, trials=3, final_seeds=0, storage=f"sqlite:///{tmp_path / f'{i}.db'}", out_dir=tmp_path
        )
        for i in range(2)
    ]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    assert [t.value for t in runs[0].trials] == [t.value for t in runs[1].trials]
    assert runs[0].study == "iris-mlp"  # default name of a mapping recipe


def test_worker_seeds_differ_by_worker_and_by_resume():
    assert worker_seed(0, 0, 0) == worker_seed(0, 0, 0)
    assert len({worker_seed(0, 0, 0), worker_seed(0, 1, 0), worker_seed(0, 0, 3), worker_seed(1, 0, 0)}) == 4


# --- resume ------------------------------------------------------------------------------------------


def test_running_again_resumes_without_recomputing(where, monkeypatch):
    ended = []
    first = run_search(IRIS, trials=3, final_seeds=1, study_name="s", **where)
    before = {t.number: t for t in study_of(where, "s").get_trials()}
    second = run_search(
        IRIS, trials=5, final_seeds=1, study_name="s", on_trial=lambda t, _: ended.append(t.number), **where
    )
    assert second.counts() == {"COMPLETE": 5}
    assert ended == [3, 4]  # only the two new trials ran
    after = {t.number: t for t in study_of(where, "s").get_trials()}
    for n in range(3):
        assert after[n].datetime_complete == before[n].datetime_complete
        assert after[n].params == before[n].params and after[n].value == before[n].value
    # The budget is kept when not given again; nothing is trained, not even the final runs when
    # the best trial did not change.
    if second.best.number == first.best.number:

        def no_training(*args, **kwargs):
            raise AssertionError("nothing should be trained")

        monkeypatch.setattr(tunelab.train, "fit", no_training)
    third = run_search(IRIS, final_seeds=1, study_name="s", **where)
    assert third.budget == 5 and third.counts() == {"COMPLETE": 5}
    assert third.final.runs == second.final.runs


def test_resuming_with_another_space_is_refused(where):
    run_search(IRIS, trials=1, final_seeds=0, study_name="s", **where)
    other = {**IRIS, "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}}
    with pytest.raises(TunelabError, match="exists with another recipe or search space"):
        run_search(other, trials=2, final_seeds=0, study_name="s", **where)
    with pytest.raises(TunelabError, match=r"exists with objectives val\.accuracy"):
        run_search(IRIS, trials=2, final_seeds=0, study_name="s", objectives="val.loss", **where)


# --- pruning and failures ------------------------------------------------------------------------------

LR_CHOICE = {**IRIS, "search": {"optimizer.lr": {"type": "categorical", "choices": [0.05, 1e-6]}}}


def test_median_pruner_stops_the_ruined_trials_after_one_epoch(where):
    # Every trial starts from the same weights (train.seed), so the five lr=0.05 trials share one
    # learning curve and the lr=1e-6 trials another, flat at the initial accuracy: after the
    # median pruner's five startup trials, each ruined trial is below the median at epoch 1.
    s = prepare_search(LR_CHOICE, trials=8, pruner="median", study_name="p", storage=where["storage"])
    study = study_of(where, "p")
    for lr in [0.05] * 5 + [1e-6] * 3:
        study.enqueue_trial({"optimizer.lr": lr})
    assert run_worker(s.study, s.storage) == 8
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5 + [TrialState.PRUNED] * 3
    good = trials[0].intermediate_values[1]
    for t in trials[5:]:
        assert t.params == {"optimizer.lr": 1e-6}
        assert t.user_attrs["epochs"] == 1 and list(t.intermediate_values) == [1]
        assert t.intermediate_values[1] < good
        assert t.user_attrs["message"].startswith("pruned after epoch 1: val.accuracy")
    for t in trials[:5]:
        assert t.user_attrs["epochs"] == 3


def test_a_diverged_trial_is_pruned_with_its_message_and_counts(where):
    space = {**IRIS, "optimizer": {"name": "sgd"}}
    space["search"] = {"optimizer.lr": {"type": "categorical", "choices": [0.05, 1e8]}}
    s = prepare_search(space, trials=2, study_name="d", storage=where["storage"])
    study = study_of(where, "d")
    study.enqueue_trial({"optimizer.lr": 1e8})
    study.enqueue_trial({"optimizer.lr": 0.05})
    run_worker(s.study, s.storage)
    diverged, ok = study.get_trials()
    assert diverged.state == TrialState.PRUNED and ok.state == TrialState.COMPLETE
    assert diverged.user_attrs["status"] == "diverged"
    assert "the loss became nan at epoch 1" in diverged.user_attrs["message"]


def test_trials_that_cannot_run_fail_and_stop_the_search(where):
    # cnn2d is a valid recipe but needs images: every trial fails when the model is built.
    space = {**IRIS, "search": {"model.name": {"type": "categorical", "choices": ["mlp", "cnn2d"]}}}
    s = prepare_search(space, trials=2, study_name="f", storage=where["storage"])
    study = study_of(where, "f")
    study.enqueue_trial({"model.name": "cnn2d"})
    study.enqueue_trial({"model.name": "cnn2d"})
    with pytest.raises(TunelabError, match=r"2 trials failed: trial 0: cnn2d needs image input"):
        run_worker(s.study, s.storage)
    assert states(study) == [TrialState.FAIL, TrialState.FAIL]


# --- objectives, samplers, pruners -----------------------------------------------------------------------


def test_several_objectives_give_a_pareto_front(where):
    space = {**IRIS, "search": {"model.hidden": {"type": "categorical", "choices": [[2], [4], [16], [64]]}}}
    space["train"] = {**IRIS["train"], "efficiency": True}
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


def test_nsga2_searches_width_structured_pruning_and_quantization(where):
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
    study = study_of(where, "p")
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        costs = t.user_attrs["costs"]
        assert t.values[1] == costs["latency_ms"] > 0
        hidden = yaml.safe_load(t.params["model.hidden"])  # stored as YAML text
        dense = sum(a * b + b for a, b in zip([64, *hidden], [*hidden, 10], strict=True))  # digits: 64 in
        if t.params["methods.channel_prune"]:
            assert costs["params"] < dense  # the narrowed model is what was timed and counted
        else:
            assert costs["params"] == dense


def test_pruning_needs_one_val_objective(where):
    with pytest.raises(TunelabError, match="needs a single objective"):
        prepare_search(IRIS, pruner="asha", objectives="val.accuracy,latency_ms", storage=where["storage"])
    with pytest.raises(TunelabError, match="latency_ms is only known after training"):
        prepare_search(IRIS, pruner="median", objectives="latency_ms", storage=where["storage"])


def test_objectives_are_parsed_with_directions():
    assert parse_objectives(None, "val.loss") == [Objective("val.loss", "minimize")]
    objs = parse_objectives("val.f1, throughput,train_seconds", "val.accuracy")
    assert [(o.name, o.direction) for o in objs] == [
        ("val.f1", "maximize"),
        ("throughput", "maximize"),
        ("train_seconds", "minimize"),
    ]
    with pytest.raises(RecipeError, match="never selects on the test split"):
        parse_objectives("test.accuracy", "val.accuracy")
    with pytest.raises(RecipeError, match="each objective may appear once"):
        parse_objectives("val.loss,val.loss", "val.accuracy")


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_every_sampler_runs(where, sampler):
    objectives = "val.accuracy,val.loss" if sampler == "nsga2" else None
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        # Optuna's CMA-ES needs the cmaes package; without it the error says how to get it.
        with pytest.raises(TunelabError, match="needs the cmaes package: pip install cmaes"):
            run_search(IRIS, trials=2, sampler=sampler, final_seeds=0, study_name=sampler, **where)
        return
    r = run_search(
        IRIS, trials=2, sampler=sampler, objectives=objectives, final_seeds=0, study_name=sampler, **where
    )
    assert r.counts() == {"COMPLETE": 2}


def test_bad_settings_are_refused_before_anything_runs(where):
    with pytest.raises(
        RecipeError, match="--sampler: got 'bayes'; unknown sampler; known: cmaes, gp, nsga2, random, tpe"
    ):
        prepare_search(IRIS, sampler="bayes", storage=where["storage"])
    with pytest.raises(RecipeError, match="--pruner: got 'sha'"):
        prepare_search(IRIS, pruner="sha", storage=where["storage"])
    with pytest.raises(TunelabError, match="cmaes optimizes one objective"):
        prepare_search(IRIS, sampler="cmaes", objectives="val.accuracy,params", storage=where["storage"])
    with pytest.raises(RecipeError, match="the recipe has no search space"):
        prepare_search({**IRIS, "search": {}}, storage=where["storage"])
    with pytest.raises(RecipeError, match="--trials: got 0"):
        prepare_search(IRIS, trials=0, storage=where["storage"])
    with pytest.raises(RecipeError, match=r"search\.optimizer\.lr: got -1\.0; must be > 0"):
        prepare_search(
            {**IRIS, "search": {"optimizer.lr": {"type": "uniform", "low": -1, "high": 1}}},
            storage=where["storage"],
        )
    assert not (where["out_dir"]).exists()


def test_pruners_step_on_epochs():
    assert isinstance(make_pruner("none", 5), optuna.pruners.NopPruner)
    hb = make_pruner("hyperband", 9)
    assert isinstance(hb, optuna.pruners.HyperbandPruner) and hb._max_resource == 9


def test_heartbeat_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "2")
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "7")
    assert heartbeat_settings() == (2, 7)
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "2")
    with pytest.raises(TunelabError, match="TUNELAB_GRACE_SECONDS=2: must be greater than"):
        heartbeat_settings()
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "0.5")
    with pytest.raises(TunelabError, match="whole number of seconds"):
        heartbeat_settings()


# --- local workers ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_local_workers_share_one_sqlite_study_exactly(where, capfd):
    # Fast trials make the two processes write to SQLite constantly: WAL and the busy timeout
    # must keep every write ("database is locked" would fail a trial or a worker).
    space = {**IRIS, "train": {**IRIS["train"], "epochs": 1}}
    r = run_search(space, trials=16, workers=2, final_seeds=0, study_name="w", **where)
    trials = study_of(where, "w").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 16 and r.counts()["COMPLETE"] == 16
    # Two workers that ask for the last slot at the same moment: one trial is dropped before it
    # samples or trains anything; nothing else may fail (a locked database would).
    for t in trials:
        if t.state != TrialState.COMPLETE:
            assert t.state == TrialState.FAIL and t.user_attrs.get("surplus") and not t.params
    workers = {t.user_attrs["worker"] for t in complete}
    assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers)  # ran in the workers
    assert len({t.params["optimizer.lr"] for t in complete}) == 16  # no trial ran twice
    assert "warning" not in capfd.readouterr().err
