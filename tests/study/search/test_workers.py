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
