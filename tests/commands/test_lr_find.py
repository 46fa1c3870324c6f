"""`tunelab lr-find RECIPE` on the command line: JSON, the plot, --apply, text output, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.cli import main
from tunelab.lr_find import RULE
from tunelab.recipe import load_recipe


def _write_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "iris.yaml"
    path.write_text("data: {name: iris}\nmodel: {name: mlp, hidden: [16]}\noptimizer: {name: adam}\n")
    return path


def test_cli_json_plot_and_apply(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    recipe = _write_recipe(tmp_path)
    png = tmp_path / "lr.png"
    code = main(["lr-find", str(recipe), "--steps", "80", "--json", "--plot", str(png), "--apply"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"suggested_lr", "lrs", "losses", "smoothed", "trend", "rule"} <= set(out)
    assert len(out["lrs"]) == len(out["losses"]) and png.is_file() and out["plot"] == str(png)
    applied = tmp_path / "iris-lr.yaml"
    assert out["applied"] == {
        "path": str(applied),
        "set": "optimizer.lr",
        "value": float(f"{out['suggested_lr']:.2g}"),
    }
    new = load_recipe(applied)
    assert new.optimizer.params["lr"] == out["applied"]["value"] and tuple(new.model.params["hidden"]) == (
        16,
    )


def test_cli_text_output_and_user_errors(tmp_path: Path, capsys) -> None:
    recipe = _write_recipe(tmp_path)
    assert main(["lr-find", str(recipe), "--steps", "60", "--set", "model.hidden=[8]"]) == 0
    text = capsys.readouterr().out
    assert "suggested lr" in text and RULE in text
    assert main(["lr-find", str(recipe), "--apply", str(recipe)]) == 2
    assert "that is the recipe itself" in capsys.readouterr().err
    assert main(["lr-find", str(recipe), "--steps", "3"]) == 2
    assert "steps: got 3" in capsys.readouterr().err
