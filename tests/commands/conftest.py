"""What the command tests share: `tunelab ARGS` run in this process, a small recipe, a study storage
of their own, and runs to predict with: a CSV run with string labels and an id column, a digits run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from tunelab import fit, load_recipe
from tunelab.cli import main
from tunelab.data import load_data
from tunelab.spec import PreprocessSpec

CULTIVARS = np.array(["barolo", "grignolino", "barbera"])  # wine's classes 0, 1, 2, as strings
FAST = {"tensorboard": False, "efficiency": False}

# The raw inputs (and targets): what a user hands the predictor.
RAW = PreprocessSpec(scaling="none", target_scaling="none")


def ctrl_c_script(nth: int, counted: str = "True") -> str:
    """A script that runs ``tunelab ARGS`` and sends itself Ctrl-C (SIGINT, from inside the
    process) at the end of the first epoch of the ``nth`` call of ``fit`` for which ``counted`` (a
    Python expression over its ``kwargs``) holds. No timing is involved: however fast or loaded
    the machine, the fits before it have finished when the interrupt comes."""
    return f"""
import os, signal, sys
import tunelab.train
from tunelab.cli import main
from tunelab.methods import Method

class CtrlC(Method):
    name = "ctrl_c"

    def epoch_end(self, state):
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C on a terminal sends

real_fit, calls = tunelab.train.fit, []

def fit(*args, **kwargs):
    if {counted}:
        calls.append(1)
        if len(calls) == {nth}:
            kwargs["methods"] = [*kwargs.get("methods", []), CtrlC()]
    return real_fit(*args, **kwargs)

tunelab.train.fit = fit
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


@pytest.fixture(scope="session")
def wine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's wine as a user's CSV: an id column, features, string labels last."""
    wine = load_wine()
    names = [n.replace("/", "_") for n in wine.feature_names]
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    lines = [",".join(["wine_id", *names, "cultivar"])]
    for i, (row, label) in enumerate(zip(wine.data, wine.target, strict=True)):
        lines.append(",".join([f"w{i:03d}", *(repr(float(v)) for v in row), CULTIVARS[label]]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def wine_run(wine_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "wine"
    recipe = {
        "data": {"name": "csv", "path": str(wine_csv), "target": "cultivar", "id_column": "wine_id"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 8, "batch_size": 32, **FAST},
    }
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        fit(recipe, out=out)
    return out


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "digits"
    recipe = {
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 3, **FAST},
    }
    torch.set_num_threads(1)
    fit(recipe, out=out)
    return out


def _raw_test_split(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    recipe = load_recipe(run_dir / "recipe.yaml")
    b = load_data(recipe.data, RAW)
    return b.x_test.numpy(), b.y_test.numpy()


@pytest.fixture
def raw_test_split() -> Callable[[Path], tuple[np.ndarray, np.ndarray]]:
    """The run's test split before preprocessing (x, class codes): what a user hands predict."""
    return _raw_test_split


# The commands that write report.html by default. Reports are tested in tests/commands/test_report.py
# and tests/report/; in the other command tests they would only cost time, so `cli` skips them.
REPORTING = {"train", "search", "ablate", "cv", "compress"}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[Sequence[Any]], tuple[int, str, str]]:
    """``cli(args) -> (exit status, stdout, stderr)`` of ``tunelab ARGS`` (each arg str()-ed), with
    ``--no-report`` added for the commands that write a report."""

    def run(args: Sequence[Any]) -> tuple[int, str, str]:
        argv = [str(a) for a in args]
        if argv and argv[0] in REPORTING:
            argv.append("--no-report")
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


# Small and fast: two epochs of a tiny MLP on iris, with one method to ablate and one value to try.
RECIPE = """\
data: {name: iris}
model: {name: mlp, hidden: [8], dropout: 0.1}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 2, batch_size: 32, threads: 1}
methods:
  - {name: l2, weight: 0.001}
ablation:
  values:
    optimizer.lr: [0.05]
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    """``iris_small.yaml`` (so a study's default name is ``ablate-iris_small``, ``cv-iris_small``)."""
    path = tmp_path / "iris_small.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def storage(tmp_path) -> str:
    """An SQLite study storage in the test's own directory."""
    return f"sqlite:///{tmp_path / 'studies.db'}"
