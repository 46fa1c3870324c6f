"""What the search tests share: a small searchable iris recipe and a storage of their own."""

from __future__ import annotations

import copy

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
