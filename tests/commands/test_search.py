"""The search commands: search --json, per-trial lines, studies, show, worker, errors, Ctrl-C resume."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from tests.commands.conftest import ctrl_c_script

from tunelab.study.search.run import prepare_search

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


def test_search_json_has_the_documented_keys(setup, cli):
    path, storage, out = setup
    code, stdout, _ = cli(
        ["search", path, "--trials", 3, "--storage", storage, "--out", out, "--final-seeds", 2, "--json"],
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


def test_search_prints_trial_lines_and_tables(setup, cli):
    path, storage, out = setup
    args = ["search", path, "--trials", 2, "--storage", storage, "--out", out, "--final-seeds", 2]
    code, stdout, err = cli([*args, "--set", "train.seed=3"])
    assert code == 0
    assert "trial 0 complete · val.accuracy" in err and "trial 1 complete" in err
    assert "best trial" in stdout and "best recipe retrained · seeds 3, 4" in stdout
    assert "test (read once per run)" in stdout and " ± " in stdout


def test_studies_and_show(setup, cli):
    path, storage, out = setup
    five = ["search", path, "--trials", 5, "--storage", storage, "--out", out, "--final-seeds", 0, "--quiet"]
    assert cli(five)[0] == 0
    short = ["search", path, "--trials", 2, "--study", "short", "--storage", storage, "--final-seeds", 0]
    assert cli([*short, "--quiet"])[0] == 0

    code, stdout, _ = cli(["studies", "--storage", storage])
    assert code == 0 and "iris_search" in stdout and "short" in stdout and "5 complete" in stdout
    code, stdout, _ = cli(["studies", "--storage", storage, "--json"])
    studies = {s["name"]: s for s in json.loads(stdout)}
    assert studies["iris_search"]["counts"] == {"COMPLETE": 5} and studies["short"]["kind"] == "search"

    code, stdout, _ = cli(["show", "iris_search", "--storage", storage, "--top", 3])
    assert code == 0
    assert "best 3 trials" in stdout and "parameter importance" in stdout and "optimizer.lr" in stdout
    code, stdout, _ = cli(["show", "iris_search", "--storage", storage, "--json"])
    d = json.loads(stdout)
    assert d["counts"] == {"COMPLETE": 5} and d["budget"] == 5 and len(d["best"]) == 5
    imp = d["importances"]["val.accuracy"]
    assert set(imp) == {"optimizer.lr", "model.dropout"} and sum(imp.values()) == pytest.approx(1.0)
    values = [t["value"] for t in d["best"]]
    assert values == sorted(values, reverse=True)

    # Too few trials: the table is there, the importances say why they are not.
    code, stdout, _ = cli(["show", "short", "--storage", storage])
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
        (["--trial-nproc", "0"], "error: --trial-nproc: got 0; must be >= 1"),
        (["--trial-nproc", "2", "--storage", "sqlite:///:memory:"], "an in-memory database lives inside one"),
    ],
)
def test_user_errors_exit_2_with_one_line(setup, args, fragment, cli):
    path, storage, _ = setup
    if "--storage" not in args:
        args = [*args, "--storage", storage]
    code, _, err = cli(["search", path, *args])
    assert code == 2 and fragment in err and "Traceback" not in err


def test_worker_validates_trial_nproc(setup, cli):
    _, storage, _ = setup
    code, _, err = cli(["worker", "--study", "any", "--storage", storage, "--trial-nproc", "-1"])
    assert code == 2 and "error: --trial-nproc: got -1; must be >= 1" in err and "Traceback" not in err
    code, _, err = cli(["worker", "--study", "any", "--storage", "sqlite:///:memory:", "--trial-nproc", "2"])
    assert code == 2 and "--trial-nproc 2 with --storage sqlite:///:memory:" in err


def test_unknown_studies_are_named(setup, cli):
    path, storage, _ = setup
    cli(["search", path, "--trials", 1, "--storage", storage, "--final-seeds", 0, "--quiet"])
    code, _, err = cli(["show", "iris_serach", "--storage", storage])
    assert code == 2 and "study 'iris_serach' is not in" in err and 'did you mean "iris_search"?' in err
    code, _, err = cli(["worker", "--study", "nope", "--storage", storage])
    assert code == 2 and "study 'nope' is not in" in err and "tunelab studies --storage URL" in err


def test_a_worker_joins_and_stops_at_the_budget(setup, cli):
    path, storage, _ = setup
    cli(["search", path, "--trials", 2, "--storage", storage, "--final-seeds", 0, "--quiet"])
    prepare_search(path, trials=4, storage=storage)  # the same study, its budget raised to 4
    code, _, err = cli(["worker", "--study", "iris_search", "--storage", storage, "--threads", 1])
    assert code == 0 and "trial 2 complete" in err and "worker done: ran 2 trial(s)" in err
    study = optuna.load_study(study_name="iris_search", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 4


# `tunelab search ARGS` in its own process, with a Ctrl-C at the end of the first epoch of the
# third trial: exactly two trials have finished when the interrupt comes.
CTRL_C_IN_THIRD_TRIAL = ctrl_c_script(3)


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_recomputing(setup, tmp_path, cli):
    path, storage, out = setup
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
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_IN_THIRD_TRIAL)
    proc = subprocess.run(
        [sys.executable, str(script), *args, "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    study = optuna.load_study(study_name="iris_search", storage=storage)
    first = study.get_trials()
    # The two trials that had finished are kept; the interrupted one is marked failed, not left
    # RUNNING, and no trial started after it.
    assert [t.state for t in first] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL]
    before = {t.number: t for t in first if t.state == TrialState.COMPLETE}

    code, stdout, _ = cli([*args, "--json"])
    assert code == 0
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5
    for n, t in before.items():  # the trials that had finished are untouched
        assert trials[n].datetime_complete == t.datetime_complete and trials[n].params == t.params
    assert len(trials) - len(first) == 5 - len(before)  # only the missing trials ran
    assert json.loads(stdout)["counts"]["COMPLETE"] == 5
