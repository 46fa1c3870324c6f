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


def test_ddp_trial_workers_get_contiguous_slices_of_gpus(monkeypatch):
    from tunelab.errors import TunelabError
    from tunelab.study.search.workers import check_gpu_share, default_workers, gpu_slots, visible_gpus

    _gpus(monkeypatch, 8)
    assert default_workers(visible_gpus(), trial_nproc=2) == 4
    assert gpu_slots(4, visible_gpus(), trial_nproc=2) == ["0,1", "2,3", "4,5", "6,7"]
    assert gpu_slots(2, visible_gpus(), trial_nproc=4) == ["0,1,2,3", "4,5,6,7"]
    assert gpu_slots(1, visible_gpus(), trial_nproc=3) == ["0,1,2"]  # two GPUs left idle: allowed
    _gpus(monkeypatch, 5, visible="1,3,4,6,7")  # the parent's names; 5 // 2 = 2 workers
    assert default_workers(visible_gpus(), trial_nproc=2) == 2
    assert gpu_slots(2, visible_gpus(), trial_nproc=2) == ["1,3", "4,6"]
    with pytest.raises(TunelabError, match=r"--workers 3 x --trial-nproc 2 needs 6 GPUs, one per process; "
                       r"5 visible \(1,3,4,6,7\): use --workers 2 or fewer"):  # fmt: skip
        gpu_slots(3, visible_gpus(), trial_nproc=2)
    _gpus(monkeypatch, 1)
    with pytest.raises(
        TunelabError, match=r"--trial-nproc 2: each trial needs 2 GPUs, one per process; 1 visible"
    ):
        check_gpu_share(default_workers(visible_gpus(), trial_nproc=2), 2, visible_gpus())
    _gpus(monkeypatch, 0)  # the CPU: any number of processes share its cores
    assert default_workers(visible_gpus(), trial_nproc=2) == 1
    assert gpu_slots(3, visible_gpus(), trial_nproc=2) == [None, None, None]
    check_gpu_share(3, 4, visible_gpus())


def test_ddp_trial_local_workers_get_their_gpus_and_the_option(monkeypatch, where, iris):
    import subprocess

    from tunelab.errors import TunelabError
    from tunelab.study.search import run, workers

    _gpus(monkeypatch, 4)
    seen = []

    class FakeProcess:
        def __init__(self, cmd, env, stdin):
            seen.append((env.get("CUDA_VISIBLE_DEVICES"), cmd[cmd.index("--trial-nproc") + 1]))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(run, "_finish", lambda *a: None)  # no trial ran: nothing to report
    run.run_search(iris, trials=1, workers=None, final_seeds=0, trial_nproc=2, **where)  # 4 // 2 workers
    assert seen == [("0,1", "2"), ("2,3", "2")]
    with pytest.raises(TunelabError, match="needs 6 GPUs"):
        run.run_search(iris, trials=1, workers=3, trial_nproc=2, **where)
    # A recipe that trains on the CPU takes no GPUs: its processes share the cores.
    seen.clear()
    cpu = {**iris, "train": {**iris["train"], "device": "cpu"}}
    run.run_search(cpu, trials=1, workers=3, final_seeds=0, trial_nproc=2, study_name="cpu", **where)
    assert seen == [(None, "2")] * 3
    with pytest.raises(TunelabError, match="--trial-nproc 8: each trial needs 8 GPUs"):
        workers.run_worker("iris-mlp", where["storage"], trial_nproc=8, out_dir=where["out_dir"])
