"""`tunelab methods | models | datasets` list their registries, and the console script is installed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.cli import main


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["methods", "models", "datasets"])
def test_listings(command, capsys):
    code, out, _ = run_cli([command, "--json"], capsys)
    assert code == 0
    entries = json.loads(out)
    assert entries and all(e["description"] for e in entries)
    code, out, _ = run_cli([command], capsys)
    assert code == 0 and entries[0]["name"] in out


def test_listing_shows_parameters_and_defaults(capsys):
    _, out, _ = run_cli(["methods", "--json"], capsys)
    l2 = next(e for e in json.loads(out) if e["name"] == "l2")
    weight = next(p for p in l2["params"] if p["name"] == "weight")
    assert weight["default"] > 0 and "float" in weight["type"]


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "tunelab"
    proc = subprocess.run([str(exe), "models"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "cnn1d" in proc.stdout
