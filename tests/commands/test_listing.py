"""The listing commands: `tunelab methods | models | datasets | optimizers | schedules` list their
registries, `tunelab catalogue [--out FILE]` writes them as Markdown; the console script is installed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.cli import main
from tunelab.commands.listing import catalogue


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


@pytest.mark.parametrize(("command", "name"), [("optimizers", "adamw"), ("schedules", "onecycle")])
def test_optimizers_and_schedules_list_themselves(command, name, capsys):
    assert main([command, "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert name in entries and entries[name]["description"]
    assert main([command]) == 0
    assert name in capsys.readouterr().out


def test_catalogue_prints_or_writes_the_same_markdown(tmp_path, capsys):
    assert main(["catalogue"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "catalogue.md"
    assert main(["catalogue", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == printed == catalogue()
    assert f"wrote {out}" in capsys.readouterr().out


def test_catalogue_to_an_unwritable_path_is_one_clear_line(tmp_path, capsys):
    code = main(["catalogue", "--out", str(tmp_path / "no" / "such" / "dir" / "c.md")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --out ") and "cannot write" in err
    assert len(err.strip().splitlines()) == 1
