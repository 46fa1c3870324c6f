"""The command line: exit codes, error messages without tracebacks, JSON output, listings."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.cli import main

ROOT = Path(__file__).resolve().parents[1]


# Reports (report.html) are tested in tests/commands/test_report.py; here they would only cost time.
REPORTING = {"train", "search", "ablate", "cv", "compress"}


def no_report(args):
    args = [str(a) for a in args]
    return [*args, "--no-report"] if args and args[0] in REPORTING else args


def run_cli(args, capsys):
    code = main(no_report(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text("data: {name: iris}\nmodel: {name: mlp, hidden: [16]}\ntrain: {epochs: 3}\n")
    return path


def test_train_json_has_the_documented_keys(recipe, tmp_path, capsys):
    code, out, _ = run_cli(
        ["train", str(recipe), "--json", "--out", str(tmp_path / "run"), "--set", "train.epochs=2"], capsys
    )
    assert code == 0
    d = json.loads(out)
    for key in ("status", "epochs", "val", "test", "train_seconds", "run_dir"):
        assert key in d
    assert d["status"] == "completed" and d["epochs"] == 2
    assert 0 <= d["val"]["accuracy"] <= 1 and 0 <= d["test"]["accuracy"] <= 1
    assert Path(d["run_dir"]) == tmp_path / "run"


def test_train_prints_tables(recipe, tmp_path, capsys):
    code, out, _ = run_cli(["train", str(recipe), "--out", str(tmp_path / "run")], capsys)
    assert code == 0
    assert "accuracy" in out and "val" in out and "test" in out and "run directory" in out


def test_quiet_prints_nothing(recipe, tmp_path, capsys):
    code, out, err = run_cli(["train", str(recipe), "--quiet", "--out", str(tmp_path / "r")], capsys)
    assert code == 0 and out == "" and err == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "optimizer.lr=-1"], "optimizer.lr: got -1; must be > 0"),
        (["--set", "train.epochs=0"], "train.epochs: got 0; must be >= 1"),
        (["--set", "model.dropout=1.5"], "model.dropout: got 1.5; must be >= 0 and < 1"),
        (["--set", "train.batch_size=0"], "train.batch_size: got 0"),
        (["--set", "model.name=mlq"], 'did you mean "mlp"?'),
        (["--set", "data.name=irs"], 'did you mean "iris"?'),
        (["--set", "train.epoch=3"], 'did you mean "epochs"?'),
        (["--set", "methods.l3={}"], "unknown method"),
        (["--set", "nonsense"], "must look like path.to.key=value"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(recipe, args, fragment, capsys):
    code, _out, err = run_cli(["train", str(recipe), *args], capsys)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and err.startswith("error: ")


def test_missing_recipe_file(capsys):
    code, _, err = run_cli(["train", "nope.yaml"], capsys)
    assert code == 2 and "file not found" in err


def test_data_errors_are_clear(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n1,2,x\n3,4,y\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{name: csv, path: {csv}, target: lable}}\n")
    code, _, err = run_cli(["train", str(recipe)], capsys)
    assert code == 2 and "lable" in err and 'did you mean "label"?' in err


def test_diverged_run_exits_1(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: {name: diabetes}\nmodel: {name: linear}\noptimizer: {name: sgd, lr: 50}\ntrain: {epochs: 30}\n"
    )
    code, out, _err = run_cli(["train", str(recipe), "--json", "--out", str(tmp_path / "run")], capsys)
    assert code == 1 and json.loads(out)["status"] == "diverged"


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
