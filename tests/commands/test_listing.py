"""`tunelab methods | models | datasets` list their registries, and the console script is installed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", ["methods", "models", "datasets"])
def test_listings(command, cli):
    code, out, _ = cli([command, "--json"])
    assert code == 0
    entries = json.loads(out)
    assert entries and all(e["description"] for e in entries)
    code, out, _ = cli([command])
    assert code == 0 and entries[0]["name"] in out


def test_listing_shows_parameters_and_defaults(cli):
    _, out, _ = cli(["methods", "--json"])
    l2 = next(e for e in json.loads(out) if e["name"] == "l2")
    weight = next(p for p in l2["params"] if p["name"] == "weight")
    assert weight["default"] > 0 and "float" in weight["type"]


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "tunelab"
    proc = subprocess.run([str(exe), "models"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "cnn1d" in proc.stdout
