"""The search commands: search --json, per-trial lines, studies, show, worker, errors, Ctrl-C resume."""

import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tunelab.cli import main
from tunelab.study.search import prepare_search

RECIPE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1, "efficiency": False, "tensorboard": False},
    "search": {
        "optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
    },
}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "iris_search.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    return path, storage, tmp_path / "out"


# Reports (report.html) are tested in tests/commands/test_report.py; here they would only cost time.
REPORTING = {"train", "search", "ablate", "cv", "compress"}


def no_report(args):
    args = [str(a) for a in args]
    return [*args, "--no-report"] if args and args[0] in REPORTING else args


def cli(args, capsys):
    code = main(no_report(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_has_the_documented_keys(setup, capsys):
    path, storage, out = setup
    code, stdout, _ = cli(
        ["search", path, "--trials", 3, "--storage", storage, "--out", out, "--final-seeds", 2, "--json"],
        capsys,
    )
    assert code == 0
    d = json.loads(stdout)
    assert (
        d["study"] == "iris_search"
        and d["objectives"] == ["val.accuracy"]
        and d["directions"] == ["maximize"]
    )
    assert {"value", "params", "recipe_path"} <= set(d["best"])
    assert d["best"]["recipe_path"] == str(out / "iris_search" / "best.yaml")
    assert len(d["trials"]) == 3
    for t in d["trials"]:
        assert {"number", "state", "params", "value"} <= set(t) and t["state"] == "COMPLETE"
    assert d["best"]["value"] == max(t["value"] for t in d["trials"])
    (m,) = d["final"]["metrics"]
    assert m["name"] == "val.accuracy" and m["val"]["n"] == 2 and m["test"]["n"] == 2
    assert m["test"]["ci_low"] <= m["test"]["mean"] <= m["test"]["ci_high"]


def test_search_prints_trial_lines_and_tables(setup, capsys):
    path, storage, out = setup
    code, stdout, err = cli(
        [
            "search",
            path,
            "--trials",
            2,
            "--storage",
            storage,
            "--out",
            out,
            "--final-seeds",
            2,
            "--set",
            "train.seed=3",
        ],
        capsys,
    )
    assert code == 0
    assert "trial 0 complete · val.accuracy" in err and "trial 1 complete" in err
    assert "best trial" in stdout and "best recipe retrained · seeds 3, 4" in stdout
    assert "test (read once per run)" in stdout and " ± " in stdout


def test_studies_and_show(setup, capsys):
    path, storage, out = setup
    assert (
        cli(
            [
                "search",
                path,
                "--trials",
                5,
                "--storage",
                storage,
                "--out",
                out,
                "--final-seeds",
                0,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    assert (
        cli(
            [
                "search",
                path,
                "--trials",
                2,
                "--study",
                "short",
                "--storage",
                storage,
                "--final-seeds",
                0,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )

    code, stdout, _ = cli(["studies", "--storage", storage], capsys)
    assert code == 0 and "iris_search" in stdout and "short" in stdout and "5 complete" in stdout
    code, stdout, _ = cli(["studies", "--storage", storage, "--json"], capsys)
    studies = {s["name"]: s for s in json.loads(stdout)}
    assert studies["iris_search"]["counts"] == {"COMPLETE": 5} and studies["short"]["kind"] == "search"

    code, stdout, _ = cli(["show", "iris_search", "--storage", storage, "--top", 3], capsys)
    assert code == 0
    assert "best 3 trials" in stdout and "parameter importance" in stdout and "optimizer.lr" in stdout
    code, stdout, _ = cli(["show", "iris_search", "--storage", storage, "--json"], capsys)
    d = json.loads(stdout)
    assert d["counts"] == {"COMPLETE": 5} and d["budget"] == 5 and len(d["best"]) == 5
    imp = d["importances"]["val.accuracy"]
    assert set(imp) == {"optimizer.lr", "model.dropout"} and sum(imp.values()) == pytest.approx(1.0)
    values = [t["value"] for t in d["best"]]
    assert values == sorted(values, reverse=True)

    # Too few trials: the table is there, the importances say why they are not.
    code, stdout, _ = cli(["show", "short", "--storage", storage], capsys)
    assert code == 0 and "need at least 4 complete trials (this study has 2)" in stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--objective", "test.accuracy"], "error: --objective: got 'test.accuracy'"),
        (["--objective", "val.accuracy,latency_ms", "--pruner", "median"], "needs a single objective"),
        (["--trials", "0"], "error: --trials: got 0; must be >= 1"),
        (["--workers", "0"], "error: --workers: got 0; must be >= 1"),
        (["--set", "optimizer.lr=-1"], "error: optimizer.lr: got -1; must be > 0"),
        (["--storage", "redis://x"], "not a supported URL"),
    ],
)
def test_user_errors_exit_2_with_one_line(setup, capsys, args, fragment):
    path, storage, _ = setup
    if "--storage" not in args:
        args = [*args, "--storage", storage]
    code, _, err = cli(["search", path, *args], capsys)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_unknown_studies_are_named(setup, capsys):
    path, storage, _ = setup
    cli(["search", path, "--trials", 1, "--storage", storage, "--final-seeds", 0, "--quiet"], capsys)
    code, _, err = cli(["show", "iris_serach", "--storage", storage], capsys)
    assert code == 2 and "study 'iris_serach' is not in" in err and 'did you mean "iris_search"?' in err
    code, _, err = cli(["worker", "--study", "nope", "--storage", storage], capsys)
    assert code == 2 and "--study nope: no such study" in err


def test_a_worker_joins_and_stops_at_the_budget(setup, capsys):
    path, storage, _ = setup
    cli(["search", path, "--trials", 2, "--storage", storage, "--final-seeds", 0, "--quiet"], capsys)
    prepare_search(path, trials=4, storage=storage)  # the same study, its budget raised to 4
    code, _, err = cli(["worker", "--study", "iris_search", "--storage", storage, "--threads", 1], capsys)
    assert code == 0 and "trial 2 complete" in err and "worker done: ran 2 trial(s)" in err
    study = optuna.load_study(study_name="iris_search", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 4


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_recomputing(setup, capsys):
    path, storage, out = setup
    slow = {**RECIPE, "train": {**RECIPE["train"], "epochs": 100}}  # about a second per trial
    path.write_text(yaml.safe_dump(slow))
    args = [
        "search",
        str(path),
        "--trials",
        "5",
        "--storage",
        storage,
        "--out",
        str(out),
        "--final-seeds",
        "0",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "tunelab.cli", *args, "--quiet"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    study = None
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name="iris_search", storage=storage)
            if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
                break
        except KeyError:
            pass  # not created yet
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    before = {t.number: t for t in study.get_trials() if t.state == TrialState.COMPLETE}
    assert 2 <= len(before) < 5
    # Nothing is left RUNNING: the interrupted trial, if any, is marked failed.
    first = study.get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in first)

    code, stdout, err = cli([*args, "--json"], capsys)
    assert code == 0
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5
    for n, t in before.items():  # the trials that had finished are untouched
        assert trials[n].datetime_complete == t.datetime_complete and trials[n].params == t.params
    assert len(trials) - len(first) == 5 - len(before)  # only the missing trials ran
    assert json.loads(stdout)["counts"]["COMPLETE"] == 5
