"""Workers: distinct sampler seeds per worker and per resume; two local worker processes share one
SQLite study and spend its budget exactly."""

import os

import pytest
from optuna.trial import TrialState

from tunelab.study.search.run import run_search
from tunelab.study.search.workers import worker_seed


def test_worker_seeds_differ_by_worker_and_by_resume():
    assert worker_seed(0, 0, 0) == worker_seed(0, 0, 0)
    assert len({worker_seed(0, 0, 0), worker_seed(0, 1, 0), worker_seed(0, 0, 3), worker_seed(1, 0, 0)}) == 4


@pytest.mark.slow
def test_two_local_workers_share_one_sqlite_study_exactly(where, capfd, iris, study_of):
    # Fast trials make the two processes write to SQLite constantly: WAL and the busy timeout
    # must keep every write ("database is locked" would fail a trial or a worker).
    space = {**iris, "train": {**iris["train"], "epochs": 1}}
    r = run_search(space, trials=16, workers=2, final_seeds=0, study_name="w", **where)
    trials = study_of("w").get_trials()
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


# --- one GPU per worker (no GPU needed: the device count is mocked) ---------------------------------


def _gpus(monkeypatch, count: int, visible: str | None = None) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def test_workers_default_to_one_per_gpu_and_take_them_round_robin(monkeypatch):
    from tunelab.study.search.workers import default_workers, gpu_slots, visible_gpus

    _gpus(monkeypatch, 0)
    assert visible_gpus() == [] and default_workers(visible_gpus()) == 1
    assert gpu_slots(2, visible_gpus()) == [None, None]  # CPU workers: no CUDA_VISIBLE_DEVICES
    _gpus(monkeypatch, 4)
    assert default_workers(visible_gpus()) == 4
    assert gpu_slots(4, visible_gpus()) == ["0", "1", "2", "3"]
    assert gpu_slots(6, visible_gpus()) == ["0", "1", "2", "3", "0", "1"]
    _gpus(monkeypatch, 2, visible="5,7")  # the names the parent was given, not 0 and 1
    assert gpu_slots(3, visible_gpus()) == ["5", "7", "5"]


def test_each_local_worker_process_gets_its_gpu(monkeypatch):
    import subprocess

    from tunelab.study.search import workers

    _gpus(monkeypatch, 2)
    seen = []

    class FakeProcess:
        def __init__(self, cmd, env, stdin):
            seen.append(env.get("CUDA_VISIBLE_DEVICES"))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    codes = workers.run_local_workers("s", "sqlite:///x.db", 3, base_seed=0, existing=0)
    assert codes == [0, 0, 0] and seen == ["0", "1", "0"]
