"""What the command tests share: `tunelab ARGS` run in this process, a small recipe, and a study
storage of their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tunelab.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[Sequence[Any]], tuple[int, str, str]]:
    """``cli(args) -> (exit status, stdout, stderr)`` of ``tunelab ARGS`` (each arg str()-ed)."""

    def run(args: Sequence[Any]) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
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
