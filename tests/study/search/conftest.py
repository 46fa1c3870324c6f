"""What the search tests share: a small searchable iris recipe and a storage of their own."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

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
def iris():
    """The recipe, a fresh copy for each test to change."""
    return copy.deepcopy(IRIS)


@pytest.fixture
def where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository's runs/
    return {"storage": f"sqlite:///{tmp_path / 'studies.db'}", "out_dir": tmp_path / "out"}


@pytest.fixture
def study_of(where):
    """``study_of(name)``: the Optuna study of that name in the test's storage."""
    return lambda name: optuna.load_study(study_name=name, storage=where["storage"])


def kill_worker_at_checkpoint(study: str, storage: str, out_dir: Path, *options: str, limit: float) -> None:
    """Start ``tunelab worker`` on ``study``, SIGKILL it once its first trial wrote ``last.pt`` (the
    trial stays RUNNING, its checkpoint on disk), then wait past the heartbeat's grace period, so
    the next worker fails the trial and retries it."""
    checkpoint = out_dir / study / "trials" / "0" / "last.pt"
    cmd = [sys.executable, "-m", "tunelab.cli", "worker", "--study", study, "--storage", storage]
    worker = subprocess.Popen([*cmd, "--out", str(out_dir), *options, "--quiet"])
    try:
        deadline = time.monotonic() + limit
        while not checkpoint.is_file() and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker's trial wrote no checkpoint"
            time.sleep(0.05)
        worker.kill()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL, "the trial ended before it could be killed"
    time.sleep(3)  # past the grace period: the heartbeat check fails the trial, and it is retried
