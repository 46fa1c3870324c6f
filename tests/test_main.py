"""python -m tunelab, tunelab --version, and the version written in one place."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tunelab
from tunelab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"tunelab {tunelab.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tunelab.__version__)


def test_python_dash_m_runs_the_command_line():
    def run(*args):
        cmd = [sys.executable, "-m", "tunelab", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout == f"tunelab {tunelab.__version__}\n"
    proc = run("train", "no-such-recipe.yaml")  # the exit status of main() reaches the shell
    assert proc.returncode == 2 and proc.stderr.startswith("error: recipe: got 'no-such-recipe.yaml'")


def test_the_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("[project]")[1].split("\n[")[0]
    assert not re.search(r"^version\s*=", project, re.M), (
        "pyproject.toml: keep the version in tunelab/__init__.py"
    )
    assert 'dynamic = ["version"]' in project and 'attr = "tunelab.__version__"' in pyproject
    assert importlib.metadata.version("tunelab") == tunelab.__version__


def test_every_commands_help_reads_as_written():
    # argparse %-formats argument help but not a description: "95%%" there prints as it is typed.
    from tunelab.cli import COMMANDS, _parser

    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert len(sub.choices) >= len(COMMANDS)
    for name, command in sub.choices.items():
        text = command.format_help()
        assert "%%" not in text and "%(" not in text, name
