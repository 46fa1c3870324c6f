"""tunelab optimizers | schedules and tunelab catalogue [--out FILE]."""

import json

import pytest

from tunelab.cli import main
from tunelab.commands.listing import catalogue


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
