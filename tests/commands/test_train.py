"""`tunelab train` on the command line: JSON keys, tables, --quiet, exit codes, user errors as one line
without a traceback, and --print-recipe (the validated recipe with every default, no training)."""

import json
from pathlib import Path

import pytest
import yaml

from tunelab.cli import main
from tunelab.recipe import load_recipe


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text("data: {name: iris}\nmodel: {name: mlp, hidden: [16]}\ntrain: {epochs: 3}\n")
    return path


def test_train_json_has_the_documented_keys(recipe, tmp_path, cli):
    code, out, _ = cli(
        ["train", str(recipe), "--json", "--out", str(tmp_path / "run"), "--set", "train.epochs=2"],
    )
    assert code == 0
    d = json.loads(out)
    for key in ("status", "epochs", "val", "test", "train_seconds", "run_dir"):
        assert key in d
    assert d["status"] == "completed" and d["epochs"] == 2
    assert 0 <= d["val"]["accuracy"] <= 1 and 0 <= d["test"]["accuracy"] <= 1
    assert Path(d["run_dir"]) == tmp_path / "run"


def test_train_prints_tables(recipe, tmp_path, cli):
    code, out, _ = cli(["train", str(recipe), "--out", str(tmp_path / "run")])
    assert code == 0
    assert "accuracy" in out and "val" in out and "test" in out and "run directory" in out


def test_quiet_prints_nothing(recipe, tmp_path, cli):
    code, out, err = cli(["train", str(recipe), "--quiet", "--out", str(tmp_path / "r")])
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
def test_user_errors_exit_2_with_one_clear_line(recipe, args, fragment, cli):
    code, _out, err = cli(["train", str(recipe), *args])
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and err.startswith("error: ")


def test_missing_recipe_file(cli):
    code, _, err = cli(["train", "nope.yaml"])
    assert code == 2 and "file not found" in err


def test_data_errors_are_clear(tmp_path, cli):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n1,2,x\n3,4,y\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{name: csv, path: {csv}, target: lable}}\n")
    code, _, err = cli(["train", str(recipe)])
    assert code == 2 and "lable" in err and 'did you mean "label"?' in err


def test_diverged_run_exits_1(tmp_path, cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: {name: diabetes}\nmodel: {name: linear}\noptimizer: {name: sgd, lr: 50}\ntrain: {epochs: 30}\n"
    )
    code, out, _err = cli(["train", str(recipe), "--json", "--out", str(tmp_path / "run")])
    assert code == 1 and json.loads(out)["status"] == "diverged"


# --- --resume and --overwrite ------------------------------------------------------------------


def test_out_holding_a_run_needs_resume_or_overwrite(recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli(["train", recipe, "--quiet", "--out", run, "--set", "train.epochs=1"])[0] == 0
    code, _, err = cli(["train", recipe, "--quiet", "--out", run])
    assert code == 2 and f"--out {run}: holds a run already; continue it with --resume {run}" in err
    (run / "compress").mkdir()
    (run / "compress" / "stale.pt").write_text("an older model")
    assert cli(["train", recipe, "--quiet", "--out", run, "--overwrite"])[0] == 0
    assert not (run / "compress").exists() and len((run / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_of_an_interrupted_run_finishes_it_and_of_a_finished_run_says_where_its_result_is(
    recipe, tmp_path, cli
):
    run = tmp_path / "run"
    assert cli(["train", recipe, "--quiet", "--out", run, "--set", "train.epochs=2"])[0] == 0
    # As if Ctrl-C had cut the final evaluation: last.pt after the last epoch, result.json saying
    # "interrupted". The resume runs no epoch, only fit_end and the evaluation.
    result = json.loads((run / "result.json").read_text())
    (run / "result.json").write_text(json.dumps({**result, "status": "interrupted"}))
    code, out, err = cli(["train", "--resume", run, "--json"])
    assert code == 0 and json.loads(out)["status"] == "completed", err
    code, out, err = cli(["train", "--resume", run])
    assert code == 0 and out == ""
    assert (
        f"nothing to resume: run {run} has finished (completed); its result is {run / 'result.json'}" in err
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give a RECIPE to train, or --resume RUN_DIR"),
        (["--resume", "nowhere"], "--resume nowhere: no such run directory"),
    ],
)
def test_resume_errors_exit_2_with_one_line(args, fragment, cli):
    code, _, err = cli(["train", *args])
    assert code == 2 and fragment in err and "Traceback" not in err


def test_resume_with_a_changed_setting_is_refused_naming_it(recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli(["train", recipe, "--quiet", "--out", run])[0] == 0
    (run / "result.json").unlink()  # as if killed before the end
    code, _, err = cli(["train", "--resume", run, "--set", "optimizer.lr=0.5"])
    assert code == 2 and "the recipe differs from the run's own (optimizer.lr: 0.001 -> 0.5)" in err


# --- --print-recipe ----------------------------------------------------------------------------


@pytest.fixture
def l2_recipe(tmp_path):
    path = tmp_path / "iris_l2.yaml"
    path.write_text("data: {name: iris}\nmodel: {name: mlp, hidden: [16]}\nmethods: [{name: l2}]\n")
    return path


def test_print_recipe_shows_every_default_and_the_overrides(l2_recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    overrides = ["--set", "train.epochs=7", "--set", "optimizer.lr=0.01"]
    code = main(["train", str(l2_recipe), "--print-recipe", *overrides])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    printed = yaml.safe_load(out)
    assert printed["train"]["epochs"] == 7 and printed["optimizer"]["lr"] == 0.01
    # Defaults written out, from the common fields and from each entry's signature:
    assert printed["train"]["batch_size"] == 64 and printed["data"]["val_fraction"] == 0.2
    assert printed["model"]["activation"] == "relu" and printed["methods"] == [
        {"name": "l2", "weight": 0.0001, "include_bias_and_norm": False}
    ]
    # A valid recipe that is its own resolved form: loading it again changes nothing.
    assert load_recipe(printed).to_yaml() == out
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "train.epochs=0"], "train.epochs: got 0; must be >= 1"),
        (["--set", "model.name=mlq"], 'did you mean "mlp"?'),
        (["--set", "methods.l2.weigth=1"], 'did you mean "weight"?'),
    ],
)
def test_print_recipe_of_a_bad_recipe_exits_2_with_one_line(l2_recipe, args, fragment, capsys):
    code = main(["train", str(l2_recipe), "--print-recipe", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and fragment in err and len(err.strip().splitlines()) == 1
