"""No command shows a storage password: not on stdout or stderr, not in --json, not in a file, not in
the study's attributes, not on a worker's command line (issue 9, "Secrets in messages").

Every command that takes --storage is run with a URL holding a password, against a server that
is not there (PostgreSQL on port 1) and against a reachable SQLite file whose URL carries the
password as a query parameter (SQLAlchemy ignores it, so the whole command runs); then the
outputs, every file under the test's folder (the SQLite database included) and the spawned
workers' command lines are searched for the password.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.cli import main
from tunelab.errors import TunelabError

# SQLAlchemy warns that SQLite ignores the query's password: that warning names the key, not the value.
pytestmark = pytest.mark.filterwarnings("ignore:Query string argument")

SECRET = "Pw-4f9c2e"  # unique: any occurrence is a leak

RECIPE = """\
data: {name: iris}
model: {name: mlp, hidden: [8], dropout: 0.1}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 2, batch_size: 32, threads: 1, tensorboard: false, efficiency: false}
methods:
  - {name: l2, weight: 0.001}
search:
  optimizer.lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default storage and run folders stay inside the test folder
    monkeypatch.delenv("TUNELAB_STORAGE", raising=False)
    path = tmp_path / "iris_s.yaml"
    path.write_text(RECIPE)
    return path


def cli(args, capfd, monkeypatch):
    """Run the CLI in this process, with sys.argv as a shell would set it (env.json records it)."""
    args = [str(a) for a in args]
    monkeypatch.setattr(sys, "argv", ["tunelab", *args])
    code = main(args)
    out, err = capfd.readouterr()
    return code, out, err


def files_with_secret(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes())


UNREACHABLE = [
    f"postgresql://bob:{SECRET}@127.0.0.1:1/x",
    f"postgresql://bob@127.0.0.1:1/x?sslmode=disable&password={SECRET}",
    f"postgresql+psycopg2://bob:{SECRET}@127.0.0.1:1/x",
    f"redis://bob:{SECRET}@127.0.0.1:1/0",  # refused before connecting: not a supported URL
]
COMMANDS = [
    ["studies"],
    ["studies", "--json"],
    ["show", "iris_s"],
    ["show", "iris_s", "--json"],
    ["worker", "--study", "iris_s"],
    ["search", "RECIPE", "--trials", 1],
    ["search", "RECIPE", "--trials", 1, "--json"],
    ["ablate", "RECIPE", "--seeds", 2],
    ["cv", "RECIPE", "--folds", 2, "--json"],
]


@pytest.mark.parametrize("url", UNREACHABLE, ids=["userinfo", "query", "driver", "unsupported"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(map(str, c)))
def test_an_unreachable_storage_is_named_without_its_password(
    recipe, tmp_path, capfd, monkeypatch, command, url
):
    args = [recipe if a == "RECIPE" else a for a in command]
    code, out, err = cli([*args, "--storage", url], capfd, monkeypatch)
    assert code == 2, err
    assert SECRET not in out + err
    assert err.startswith("error: --storage ") and "Traceback" not in err
    assert "127.0.0.1:1" in err and "***" in err  # which storage failed is still said
    assert files_with_secret(tmp_path) == []


def test_a_storage_url_from_the_environment_is_masked_too(recipe, capfd, monkeypatch):
    monkeypatch.setenv("TUNELAB_STORAGE", f"postgresql://bob:{SECRET}@127.0.0.1:1/x")
    code, out, err = cli(["studies"], capfd, monkeypatch)
    assert code == 2 and SECRET not in out + err
    assert "postgresql+psycopg2://bob:***@127.0.0.1:1/x" in err or "bob:***@127.0.0.1:1/x" in err


@pytest.mark.slow
def test_search_studies_show_and_worker_never_show_the_password(recipe, tmp_path, capfd, monkeypatch):
    url = f"sqlite:///{tmp_path / 'studies.db'}?password={SECRET}"
    shown = f"sqlite:///{tmp_path / 'studies.db'}?password=***"
    out_dir = tmp_path / "out"
    base = ["--storage", url, "--out", out_dir, "--final-seeds", 1]

    code, out, err = cli(["search", recipe, "--trials", 2, *base, "--json"], capfd, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["storage"] == shown
    assert SECRET not in out + err

    # Local workers connect with the real URL, but it is on no command line (`ps` shows those).
    commands: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(cmd, *args, **kwargs):
        commands.append(list(cmd))
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    study2 = ["--study", "two", "--trials", 2, "--workers", 2]
    code, out, err = cli(["search", recipe, *study2, *base], capfd, monkeypatch)
    assert code == 0, err
    assert len(commands) == 2 and all(SECRET not in " ".join(c) for c in commands)
    assert "password=***" in out and SECRET not in out + err  # err has the workers' output too (capfd)

    for args in (["studies"], ["studies", "--json"], ["show", "iris_s"], ["show", "two", "--json"]):
        code, out, err = cli([*args, "--storage", url], capfd, monkeypatch)
        assert code == 0, err
        assert SECRET not in out + err
    assert json.loads(out)["storage"] == shown
    code, out, err = cli(["worker", "--study", "iris_s", "--storage", url], capfd, monkeypatch)
    assert code == 0 and SECRET not in out + err

    env = json.loads((out_dir / "iris_s" / "final" / "seed-0" / "env.json").read_text())
    assert shown in env["command"]  # the command is recorded, its password masked
    assert files_with_secret(tmp_path) == []  # env.json, result.json, best.yaml, the database


@pytest.mark.slow
def test_ablate_and_cv_never_show_the_password(recipe, tmp_path, capfd, monkeypatch):
    url = f"sqlite:///{tmp_path / 'studies.db'}?password={SECRET}"
    shown = f"sqlite:///{tmp_path / 'studies.db'}?password=***"

    code, out, err = cli(
        ["ablate", recipe, "--seeds", 2, "--storage", url, "--out", "abl"], capfd, monkeypatch
    )
    assert code == 0, err
    assert "password=***" in out and SECRET not in out + err
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", url, "--json"], capfd, monkeypatch)
    assert code == 0 and json.loads(out)["storage"] == shown and SECRET not in out + err

    cv = ["cv", recipe, "--folds", 2, "--param", "methods.l2.weight=0.1,0.001", "--storage", url]
    code, out, err = cli([*cv, "--out", "cvrun", "--json"], capfd, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["storage"] == shown and SECRET not in out + err
    code, out, err = cli(cv, capfd, monkeypatch)
    assert code == 0 and SECRET not in out + err

    assert shown in json.loads((tmp_path / "cvrun" / "final" / "env.json").read_text())["command"]
    assert list((tmp_path / "abl").rglob("env.json"))  # the final base/best runs were written
    assert files_with_secret(tmp_path) == []


def test_a_trial_error_quoting_a_url_is_stored_and_shown_masked(recipe, tmp_path, capfd, monkeypatch):
    """A user's code fails with a message quoting a URL with credentials: the trial's "error"
    attribute, the per-trial line, the final error and `tunelab show` all mask it."""

    def fetch_fails(*args, **kwargs):
        raise TunelabError(f"cannot fetch https://bob:{SECRET}@hub.example/w.pt?token={SECRET}x")

    monkeypatch.setattr("tunelab.train.fit", fetch_fails)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    code, out, err = cli(["search", recipe, "--trials", 1, "--storage", url], capfd, monkeypatch)
    assert code == 2 and "cannot fetch https://bob:***@hub.example/w.pt?token=***" in err
    assert SECRET not in out + err
    code, out, err = cli(["show", "iris_s", "--storage", url, "--json"], capfd, monkeypatch)
    assert code == 0 and SECRET not in out + err
    assert files_with_secret(tmp_path) == []


def test_a_run_record_of_an_ablation_or_cv_study_is_stored_masked(tmp_path):
    from tunelab.study.runstore import RunStore

    url = f"sqlite:///{tmp_path / 'studies.db'}?password={SECRET}"
    store = RunStore(url, "abl", kind="ablation", recipe={"train": {"epochs": 1}}, direction="maximize")
    assert SECRET not in store.where and "password=***" in store.where
    message = f"diverged; checkpoint upload to s3://key:{SECRET}@bucket/x failed"
    rec = store.run({"seed": 0}, lambda: ("diverged", None, {"message": message}))
    assert rec.attrs["message"] == "diverged; checkpoint upload to s3://key:***@bucket/x failed"
    assert rec.key == {"seed": 0}
    assert files_with_secret(tmp_path) == []


def test_env_json_records_the_command_line_with_its_password_masked(monkeypatch):
    """Every run directory's env.json holds sys.argv, which may carry `--storage URL`."""
    import torch

    from tunelab.recipe import load_recipe
    from tunelab.runs import environment

    argv = ["tunelab", "ablate", "r.yaml", f"--storage=postgresql://bob:{SECRET}@db/x", "--json"]
    monkeypatch.setattr(sys, "argv", argv)
    record = environment(load_recipe({}), torch.device("cpu"))
    assert record["command"] == [
        "tunelab",
        "ablate",
        "r.yaml",
        "--storage=postgresql://bob:***@db/x",
        "--json",
    ]


def test_a_resumed_search_masks_an_error_stored_unmasked_by_an_older_tunelab(
    recipe, tmp_path, capfd, monkeypatch
):
    import optuna

    from tunelab.study.search.run import prepare_search

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    prepare_search(recipe, trials=2, storage=url)
    study = optuna.load_study(study_name="iris_s", storage=url)
    trial = study.ask()
    trial.set_user_attr("error", f"cannot reach postgresql://bob:{SECRET}@db/x")  # as written before
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    args = ["search", recipe, "--storage", url, "--final-seeds", 0]
    code, out, err = cli([*args, "--json"], capfd, monkeypatch)
    assert code == 0 and SECRET not in out + err
    assert json.loads(out)["trials"][0]["message"] == "cannot reach postgresql://bob:***@db/x"
    code, out, err = cli(args, capfd, monkeypatch)
    assert code == 0 and SECRET not in out + err
