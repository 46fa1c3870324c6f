"""DDP trials inside a search (``--trial-nproc 2``, gloo on 2 CPU processes): the trial completes
with its val metrics and learning curve in the storage, at the value of the same recipe trained in
one process; a pruner stops every rank after the same epoch; an error in the ranks fails the trial
with its message; a killed worker's trial continues from rank 0's checkpoint.

Each DDP trial starts two interpreters (torch and tunelab imported twice: ~10-20 s on 2 shared
cores), so each test launches as few trials as it can. A hang fails the test after ``LIMIT``."""

from __future__ import annotations

import signal
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from tests.study.search.conftest import kill_worker_at_checkpoint

from tunelab import fit
from tunelab.errors import RecipeError, TunelabError
from tunelab.recipe import load_recipe
from tunelab.study.search import ddp_trial, workers
from tunelab.study.search.run import prepare_search, run_search
from tunelab.study.search.workers import run_worker

LIMIT = 300  # seconds for a whole test: a DDP trial that hangs fails it instead of the CI job
# The parity bar of tests/test_distributed.py: 2 processes with the global batch of 1 reach its
# val accuracy within 0.5 points (4 of MNIST-1D's 800 val samples); no dropout, for the reason
# given there (each process would draw its own masks).
TOLERANCE = 0.005
LR = {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2}}
MNIST1D = {
    "data": {"name": "mnist1d", "train_fraction": 0.5},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.0},
    "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "efficiency": False, "tensorboard": False},
    "search": LR,
}


@pytest.fixture(autouse=True)
def no_hang():
    def hung(signum, frame):
        raise TimeoutError(f"a DDP trial gave no result in {LIMIT} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def rank_outcomes(monkeypatch):
    """Every rank's TrialOutcome of each DDP trial, as the worker received them."""
    seen: list[dict] = []
    agreed = ddp_trial._agreed

    def spy(outcomes):
        seen.append(dict(outcomes))
        return agreed(outcomes)

    monkeypatch.setattr(ddp_trial, "_agreed", spy)
    return seen


def _one_process(recipe: dict, overrides: list[str]):
    return fit(recipe, overrides=overrides, save=False, evaluate_test=False)


@pytest.mark.slow
def test_a_search_of_two_process_trials_matches_one_process(where, study_of, rank_outcomes):
    ctrl_c = signal.getsignal(signal.SIGINT)
    r = run_search(MNIST1D, trials=2, trial_nproc=2, final_seeds=0, study_name="ddp", **where)
    # torch's launcher installs its own handlers; Ctrl-C after a trial is a KeyboardInterrupt again.
    assert signal.getsignal(signal.SIGINT) is ctrl_c
    assert r.counts() == {"COMPLETE": 2}
    for t in study_of("ddp").get_trials():
        assert t.state == TrialState.COMPLETE and t.user_attrs["processes"] == 2
        assert t.user_attrs["val"]["accuracy"] == t.value and "loss" in t.user_attrs["val"]
        assert sorted(t.intermediate_values) == [1, 2]  # rank 0 reported each epoch
        alone = _one_process(MNIST1D, t.user_attrs["overrides"])
        assert abs(t.value - alone.val["accuracy"]) <= TOLERANCE
        for epoch, record in enumerate(alone.history, start=1):
            assert abs(t.intermediate_values[epoch] - record["val"]["accuracy"]) <= TOLERANCE
    assert len(rank_outcomes) == 2 and all(sorted(o) == [0, 1] for o in rank_outcomes)
    assert not (where["out_dir"] / "ddp" / "trials").exists()  # each trial's checkpoint removed


def test_a_pruner_stops_every_rank_of_a_ddp_trial_after_the_same_epoch(where, study_of, rank_outcomes):
    recipe = {**MNIST1D, "train": {**MNIST1D["train"], "epochs": 3}}
    s = prepare_search(recipe, trials=6, pruner="median", study_name="prune", storage=where["storage"])
    study = study_of("prune")
    # Five planted trials far above anything 1 epoch reaches: the median pruner's startup trials,
    # so the DDP trial is below their median at epoch 1.
    lr = FloatDistribution(1e-3, 3e-2, log=True)
    for _ in range(5):
        curve = {1: 0.99, 2: 0.99, 3: 0.99}
        planted = create_trial(
            params={"optimizer.lr": 0.01},
            distributions={"optimizer.lr": lr},
            value=0.99,
            intermediate_values=curve,
        )
        study.add_trial(planted)
    assert run_worker(s.study, s.storage, out_dir=where["out_dir"], trial_nproc=2) == 1
    t = study.get_trials()[-1]
    assert t.state == TrialState.PRUNED and t.user_attrs["epochs"] == 1
    assert list(t.intermediate_values) == [1] and t.intermediate_values[1] < 0.99
    assert t.user_attrs["message"].startswith("pruned after epoch 1: val.accuracy")
    (ranks,) = rank_outcomes
    ends = {rank: (o.status, o.epochs) for rank, o in ranks.items()}
    assert ends == {0: ("stopped_early", 1), 1: ("stopped_early", 1)}
    assert ranks[0].pruned_at == ranks[1].pruned_at == 1


def test_an_error_in_the_ranks_fails_the_trial_with_its_message(where, study_of, monkeypatch):
    # 33 does not split over 2 processes: fit refuses it in both ranks, after they joined the group.
    # The worker's own check before any trial (next test) is bypassed to reach the ranks' refusal.
    monkeypatch.setattr(workers, "check_batch_splits", lambda recipe, nproc: None)
    odd = {**MNIST1D, "train": {**MNIST1D["train"], "batch_size": 33}}
    s = prepare_search(odd, trials=1, study_name="odd", storage=where["storage"])
    started = time.monotonic()
    with pytest.raises(TunelabError, match=r"1 trials failed: trial 0: train\.batch_size: got 33;"):
        run_worker(s.study, s.storage, out_dir=where["out_dir"], trial_nproc=2)
    assert time.monotonic() - started < LIMIT
    (t,) = study_of("odd").get_trials()
    assert t.state == TrialState.FAIL
    assert "is the global batch, split over 2 processes: use a multiple of 2" in t.user_attrs["error"]


def test_batch_sizes_that_do_not_split_are_refused_before_any_trial(where, study_of):
    odd = {**MNIST1D, "train": {**MNIST1D["train"], "batch_size": 33}}
    s = prepare_search(odd, trials=1, study_name="odd", storage=where["storage"])
    with pytest.raises(RecipeError, match=r"train\.batch_size: got 33; is the global batch, split over 2"):
        run_worker(s.study, s.storage, out_dir=where["out_dir"], trial_nproc=2)
    assert study_of("odd").get_trials() == []
    log_scale = {
        **MNIST1D,
        "search": {"train.batch_size": {"type": "int", "low": 16, "high": 128, "log": True}},
    }
    with pytest.raises(
        RecipeError, match=r"search\.train\.batch_size: .*--trial-nproc 2 processes cannot split"
    ):
        run_search(log_scale, trials=1, trial_nproc=2, storage=where["storage"], out_dir=where["out_dir"])
    even = {"train.batch_size": {"type": "categorical", "choices": [32, 64]}}
    ddp_trial.check_batch_splits(load_recipe({**MNIST1D, "search": even}), 2)  # passes
    stepped = {"train.batch_size": {"type": "int", "low": 16, "high": 128, "step": 16}}
    ddp_trial.check_batch_splits(load_recipe({**MNIST1D, "search": stepped}), 2)
    with pytest.raises(RecipeError, match=r"choices such as \[48, 96, 192\]"):
        ddp_trial.check_batch_splits(load_recipe({**MNIST1D, "search": {**even, **LR}}), 3)


def test_a_crashed_rank_fails_the_trial_with_its_exception_and_prints_its_traceback(tmp_path, capsys):
    import json

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    (tmp_path / "errors").mkdir()
    error_file = tmp_path / "error.json"  # what torch's launcher records of an exception in a rank
    trace = "Traceback (most recent call last):\n  ...\nRuntimeError: Connection reset by peer\n"
    info = {"py_callstack": trace, "timestamp": "0"}
    error_file.write_text(
        json.dumps({"message": {"message": "RuntimeError: Connection reset by peer", "extraInfo": info}})
    )
    failed = ChildFailedError("run_rank", {1: ProcessFailure(1, 4242, 1, str(error_file))})
    message = ddp_trial._failure_message(failed, tmp_path, 3)
    assert (
        message == "DDP process 1 of the trial exited with status 1: RuntimeError: Connection reset by peer"
    )
    assert "DDP process 1 of trial 3: Traceback" in capsys.readouterr().err
    # A user's error written by a rank wins, rank 0's first.
    for rank in (1, 0):
        (tmp_path / "errors" / f"rank{rank}.txt").write_text(f"model.name: rank {rank}'s message")
    assert ddp_trial._failure_message(failed, tmp_path, 3) == "model.name: rank 0's message"


def test_ddp_trials_need_a_storage_the_processes_can_open(where):
    with pytest.raises(TunelabError, match="in-memory database lives inside one process"):
        run_search(MNIST1D, trials=1, trial_nproc=2, storage="sqlite:///:memory:", out_dir=where["out_dir"])
    with pytest.raises(TunelabError, match="--trial-nproc: got 0; must be >= 1"):
        run_worker("any", where["storage"], trial_nproc=0)


@pytest.mark.slow
def test_a_killed_workers_ddp_trial_resumes_from_rank_0s_checkpoint(where, monkeypatch, study_of):
    # The worker is SIGKILLed once rank 0 wrote the trial's checkpoint (its ranks get a parent-death
    # signal from torch); after the heartbeat grace period the trial is retried here on 2 processes,
    # continues from that checkpoint, and reports the whole learning curve.
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "2")
    long = {**MNIST1D, "train": {**MNIST1D["train"], "epochs": 12}}
    s = prepare_search(long, trials=1, study_name="kill", storage=where["storage"])
    trial_dir = where["out_dir"] / "kill" / "trials" / "0"
    kill_worker_at_checkpoint("kill", s.storage, where["out_dir"], "--trial-nproc", "2", limit=LIMIT / 2)
    assert run_worker(s.study, s.storage, out_dir=where["out_dir"], trial_nproc=2) == 1

    dead, retry = study_of("kill").get_trials()
    assert dead.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == dead.params
    assert retry.user_attrs["resumed_from_checkpoint"] is True
    assert sorted(retry.intermediate_values) == list(range(1, 13))
    alone = _one_process(long, retry.user_attrs["overrides"])
    assert abs(retry.value - alone.val["accuracy"]) <= TOLERANCE
    assert not trial_dir.exists()


def test_a_retry_on_another_number_of_processes_starts_again(where, study_of, tmp_path):
    # A checkpoint written by 2 processes cannot continue on 1 (the shards follow from the number):
    # the retry trains from the start instead of failing.
    from tunelab.resume import write_last
    from tunelab.study.search.config import StudyConfig
    from tunelab.study.search.trial import TrialRunner

    s = prepare_search(MNIST1D, trials=1, study_name="again", storage=where["storage"])
    path = where["out_dir"] / "again" / "trials" / "0"
    path.mkdir(parents=True)
    write_last(path / "last.pt", {"processes": 2})
    study = study_of("again")
    trial = optuna.trial.Trial(study, study._storage.create_new_trial(study._study_id))
    study._storage.set_trial_system_attr(trial._trial_id, "failed_trial", 0)
    runner = TrialRunner(StudyConfig.from_attrs(study.user_attrs, s.study), checkpoints=where["out_dir"])
    assert runner._checkpoint_dir(trial) == path and not (path / "last.pt").exists()
    assert study.get_trials()[-1].user_attrs["resumed_from_checkpoint"] is False
