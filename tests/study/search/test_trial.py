"""One trial (TrialRunner, PruneOnEpoch): val kept and test never read, per-epoch reports and
pruning, a diverged run pruned with its message, a trial that cannot run failed with its error."""

import pytest
from optuna.trial import TrialState
from tests.study.search.conftest import kill_worker_at_checkpoint

import tunelab.train
from tunelab import fit
from tunelab.errors import TunelabError
from tunelab.study.search.run import prepare_search, run_search
from tunelab.study.search.workers import run_worker


def test_trials_keep_val_and_never_test(where, monkeypatch, iris, study_of):
    read = []
    evaluate = tunelab.train.evaluate

    def spy(net, data, split, *a, **k):
        read.append(split)
        return evaluate(net, data, split, *a, **k)

    monkeypatch.setattr(tunelab.train, "evaluate", spy)
    run_search(iris, trials=2, final_seeds=0, study_name="s", **where)
    assert "val" in read and "test" not in read  # not even computed and left unused
    for t in study_of("s").get_trials():
        assert t.user_attrs["val"]["accuracy"] == t.value
        assert "test" not in t.user_attrs
        assert sorted(t.intermediate_values) == [1, 2, 3]  # the val metric of each epoch
        assert t.user_attrs["overrides"][0].startswith("optimizer.lr=")


def test_median_pruner_stops_the_ruined_trials_after_one_epoch(where, iris, study_of):
    lr_choice = {**iris, "search": {"optimizer.lr": {"type": "categorical", "choices": [0.05, 1e-6]}}}
    # Every trial starts from the same weights (train.seed), so the five lr=0.05 trials share one
    # learning curve and the lr=1e-6 trials another, flat at the initial accuracy: after the
    # median pruner's five startup trials, each ruined trial is below the median at epoch 1.
    s = prepare_search(lr_choice, trials=8, pruner="median", study_name="p", storage=where["storage"])
    study = study_of("p")
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


def test_a_diverged_trial_is_pruned_with_its_message_and_counts(where, iris, study_of):
    space = {**iris, "optimizer": {"name": "sgd"}}
    space["search"] = {"optimizer.lr": {"type": "categorical", "choices": [0.05, 1e8]}}
    s = prepare_search(space, trials=2, study_name="d", storage=where["storage"])
    study = study_of("d")
    study.enqueue_trial({"optimizer.lr": 1e8})
    study.enqueue_trial({"optimizer.lr": 0.05})
    run_worker(s.study, s.storage)
    diverged, ok = study.get_trials()
    assert diverged.state == TrialState.PRUNED and ok.state == TrialState.COMPLETE
    assert diverged.user_attrs["status"] == "diverged"
    assert "the loss became nan at epoch 1" in diverged.user_attrs["message"]


def test_trials_that_cannot_run_fail_and_stop_the_search(where, iris, study_of):
    # cnn2d is a valid recipe but needs images: every trial fails when the model is built.
    space = {**iris, "search": {"model.name": {"type": "categorical", "choices": ["mlp", "cnn2d"]}}}
    s = prepare_search(space, trials=2, study_name="f", storage=where["storage"])
    study = study_of("f")
    study.enqueue_trial({"model.name": "cnn2d"})
    study.enqueue_trial({"model.name": "cnn2d"})
    with pytest.raises(TunelabError, match=r"2 trials failed: trial 0: cnn2d needs image input"):
        run_worker(s.study, s.storage)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]


def test_a_search_over_the_preprocessing_gives_each_trial_its_own_preprocessed_data(where, monkeypatch, iris):
    iris["search"] = {
        "preprocess.scaling": {"type": "categorical", "choices": ["none", "minmax", "standard"]}
    }
    seen = []
    real_fit = tunelab.train.fit

    def spy(r, *a, data=None, **k):
        seen.append((r.preprocess.scaling, float(data.x_train.max())))
        return real_fit(r, *a, data=data, **k)

    monkeypatch.setattr(tunelab.train, "fit", spy)
    r = run_search(iris, trials=4, final_seeds=0, study_name="pre", sampler="random", **where)
    assert r.counts() == {"COMPLETE": 4}
    assert [s for s, _ in seen] == [t.params["preprocess.scaling"] for t in r.trials]
    assert len({s for s, _ in seen}) > 1  # (seed 0 of the random sampler draws several)
    for scaling, top in seen:
        assert (scaling == "minmax") == (top == pytest.approx(1.0)) and (scaling != "none" or top > 7)


SLOW_TRIAL = {
    "data": {"name": "mnist1d", "train_fraction": 0.3},
    "model": {"name": "cnn1d", "channels": [8], "hidden": [16], "dropout": 0.1},
    "schedule": {"name": "cosine"},
    "train": {"epochs": 5, "batch_size": 32, "threads": 1, "efficiency": False, "tensorboard": False},
    "methods": [{"name": "signal_augment", "shift": 4}, {"name": "ema"}],
    "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
}


def test_a_killed_workers_trial_is_retried_from_its_own_checkpoint(where, monkeypatch, study_of):
    # A worker is SIGKILLed once its trial has a checkpoint; after the heartbeat grace period the
    # trial is failed and retried here, from that checkpoint, with the uninterrupted trial's result.
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "2")
    s = prepare_search(SLOW_TRIAL, trials=1, study_name="kill", storage=where["storage"])
    trials_dir = where["out_dir"] / "kill" / "trials"
    kill_worker_at_checkpoint("kill", s.storage, where["out_dir"], "--threads", "1", limit=120)
    assert run_worker(s.study, s.storage, out_dir=where["out_dir"]) == 1

    dead, retry = study_of("kill").get_trials()
    assert dead.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == dead.params
    assert retry.user_attrs["resumed_from_checkpoint"] is True
    assert not trials_dir.exists()  # removed once the trial ended
    # The same value as the trial never interrupted, and the whole learning curve is reported.
    alone = fit(SLOW_TRIAL, overrides=retry.user_attrs["overrides"], save=False, evaluate_test=False)
    assert retry.value == alone.val["accuracy"]
    curve = [h["val"]["accuracy"] for h in alone.history]
    assert [retry.intermediate_values[e] for e in sorted(retry.intermediate_values)] == curve
