"""Two workers share a study on a real PostgreSQL server; one is killed mid-trial.

The test starts its own server on 127.0.0.1 in a temporary directory (initdb + pg_ctl on a free
port) and stops it afterwards. It is skipped, with the reason, only when the server binaries are
absent (`make postgres` installs Debian's when run as root, as CI does).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tunelab.study.search.run import prepare_search
from tunelab.study.search.studies import list_studies, study_report
from tunelab.study.storage import open_storage

pytestmark = pytest.mark.slow


def _server_binaries() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK):
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; `make postgres` installs Debian's "
            "when run as root, or: sudo apt-get install postgresql"
        )
    pytest.importorskip(
        "psycopg2", reason="psycopg2 is missing; install the dev extras: pip install -e '.[dev]'"
    )
    prefix: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the postgres user, in a folder it owns.
        user = pwd.getpwnam("postgres")
        os.chown(tmp, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log, port = tmp / "data", tmp / "server.log", _free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], capture_output=True, text=True)
        if done.returncode:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}\n{server_log}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "tunelab", "--auth=trust", "-E", "UTF8")
    # fsync off: the data is thrown away after the test, and syncing is the slowest part of a write.
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql://tunelab@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


# A trial of a second or more: long enough to be caught RUNNING (polled every 0.1 s) and killed.
SLOW = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 150, "batch_size": 32, "threads": 1, "efficiency": False, "tensorboard": False},
    "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}},
}
BUDGET = 4


def _worker(url: str, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tunelab.cli", "worker", "--study", "kill", "--storage", url]
    return subprocess.Popen([*cmd, "--threads", "1", "--seed", str(seed), "--quiet"], stderr=subprocess.PIPE)


def test_a_killed_workers_trial_is_failed_and_retried_exactly_once(postgres_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    # A beat each second and a trial declared dead after 4 silent seconds (defaults: 5 s and 20 s).
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "4")
    prepare_search(SLOW, trials=BUDGET, study_name="kill", storage=postgres_url)
    study = optuna.load_study(study_name="kill", storage=open_storage(postgres_url, heartbeat=False))
    # The victim starts alone, so the test does not hang on which process imports torch faster.
    # Once it has completed a trial and is running the next, the survivor joins and the victim is
    # killed mid-trial.
    victim = _worker(postgres_url, 1)
    survivor = None
    try:
        killed = None
        deadline = time.monotonic() + 180
        while killed is None and time.monotonic() < deadline:
            trials = study.get_trials(deepcopy=False)
            mine = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{victim.pid}")]
            running = [t for t in mine if t.state == TrialState.RUNNING]
            if running and any(t.state == TrialState.COMPLETE for t in mine):
                survivor = _worker(postgres_url, 2)
                victim.kill()  # SIGKILL: no cleanup, the trial stays RUNNING in the storage
                killed = running[0].number
            time.sleep(0.1)
        assert killed is not None and survivor is not None, "the victim worker never ran a second trial"
        victim.wait(timeout=30)
        _, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, err.decode()
    finally:
        for p in (victim, survivor):
            if p is not None and p.poll() is None:
                p.kill()

    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == BUDGET  # exactly the budget, across both workers
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)]
    # The killed trial was failed by the heartbeat check, and retried once with its parameters.
    dead = trials[killed]
    assert dead.state == TrialState.FAIL and "surplus" not in dead.user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params
    # The only other failures are trials dropped before training (two workers past the budget).
    assert all(
        t.user_attrs.get("surplus") for t in trials if t.state == TrialState.FAIL and t.number != killed
    )
    # No completed work is duplicated: each parameter set completed once.
    assert len({t.params["optimizer.lr"] for t in complete}) == BUDGET
    ran = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in complete}
    assert ran == {str(victim.pid), str(survivor.pid)}  # the victim's finished trial is kept

    # The storage reads back through tunelab (and so through Optuna's own schema).
    (info,) = [s for s in list_studies(postgres_url) if s.name == "kill"]
    assert info.kind == "search" and info.counts["COMPLETE"] == BUDGET
    report = study_report("kill", postgres_url)
    assert report.counts["COMPLETE"] == BUDGET and len(report.best) == BUDGET
