"""tunelab.runs: the run directory is written atomically, refuses a directory that is not a run, its
RunResult is JSON-safe, and TensorBoard's HParams tab gets the recipe and the final metrics."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2
from torch import nn

import tunelab.io
from tunelab.errors import TunelabError
from tunelab.recipe import load_recipe
from tunelab.runs import RunDir, RunFinished, RunResult, check_resumable, default_run_dir, environment
from tunelab.train import fit

RECIPE = load_recipe({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [4]}})


def result(**changes) -> RunResult:
    fields = {
        "status": "diverged",
        "recipe": RECIPE,
        "epochs": 2,
        "history": [{"epoch": 0, "train": {"loss": 1.0}}, {"epoch": 1, "train": {"loss": math.nan}}],
        "val": {"accuracy": 0.5, "loss": math.inf},
        "test": {},
        "train_seconds": 0.25,
        "monitor": "val.accuracy",
        "best_value": -math.inf,
        "message": "the loss became nan at epoch 2",
    }
    return RunResult(**{**fields, **changes})


def leftovers(path) -> list[str]:
    """Temporary files of an atomic write (``.<name>.<random>``) left in ``path``."""
    return [p.name for p in path.iterdir() if p.name.startswith(".")]


def test_every_file_is_written_whole_and_no_temporary_file_stays(tmp_path):
    run = RunDir(tmp_path / "run", tensorboard=False)
    run.start(RECIPE, {"seed": 0})
    run.epoch({"epoch": 0, "train": {"loss": 0.5}})
    run.checkpoint("best.pt", nn.Linear(2, 1))
    run.finish(result())
    d = tmp_path / "run"
    assert load_recipe(d / "recipe.yaml").to_dict() == RECIPE.to_dict()
    assert json.loads((d / "env.json").read_text()) == {"seed": 0}
    assert json.loads((d / "metrics.jsonl").read_text()) == {"epoch": 0, "train": {"loss": 0.5}}
    assert set(torch.load(d / "best.pt", weights_only=True)) == {"weight", "bias"}
    assert json.loads((d / "result.json").read_text())["status"] == "diverged"
    assert leftovers(d) == []


def test_a_write_that_fails_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run", tensorboard=False)
    first = nn.Linear(2, 1)
    run.checkpoint("last.pt", first)

    def broken_save(obj, f):  # half a checkpoint, then the crash (a full disk, a Ctrl-C)
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(tunelab.io.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        run.checkpoint("last.pt", nn.Linear(2, 1))
    monkeypatch.undo()
    kept = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert torch.equal(kept["weight"], first.weight.detach())
    assert leftovers(tmp_path / "run") == []
    run.close()


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(TunelabError, match="is not empty and is not a tunelab run"):
        RunDir(tmp_path / "notes", tensorboard=False)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"  # untouched
    (tmp_path / "file").write_text("x")
    with pytest.raises(TunelabError, match="exists and is not a directory"):
        RunDir(tmp_path / "file", tensorboard=False)


def _old_run(path):
    old = RunDir(path, tensorboard=False)
    old.start(RECIPE, {"seed": 0})
    old.epoch({"epoch": 0})
    old.finish(result())
    (path / "compress").mkdir()
    (path / "compress" / "compressed.pt").write_bytes(b"an old model")
    (path / "tb").mkdir()
    (path / "tb" / "events.out").write_bytes(b"old curves")
    return path


def test_an_earlier_run_is_refused_unless_overwrite_and_then_wholly_replaced(tmp_path):
    path = _old_run(tmp_path / "run")
    with pytest.raises(TunelabError, match=r"holds a run already; continue it with --resume .*--overwrite"):
        RunDir(path, tensorboard=False)
    assert (path / "result.json").is_file()  # refused: nothing touched
    RunDir(path, tensorboard=False, overwrite=True).close()
    # A stale result, compressed model or curve would describe another run.
    assert list(path.iterdir()) == []


def test_overwrite_never_deletes_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(TunelabError, match="is not empty and is not a tunelab run"):
        RunDir(tmp_path / "notes", tensorboard=False, overwrite=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_an_empty_directory_is_a_new_run(tmp_path):
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty", tensorboard=False).close()  # no error, and no empty logs yet
    assert list((tmp_path / "empty").iterdir()) == []


def test_resume_keeps_exactly_the_checkpoints_epochs(tmp_path):
    path = tmp_path / "run"
    run = RunDir(path, tensorboard=False)
    run.start(RECIPE, {"seed": 0, "command": ["tunelab", "train"]})
    for e in (1, 2, 3):  # epoch 3 was logged, then the run was killed before its checkpoint
        run.epoch({"epoch": e})
    run.close()
    (path / ".last.pt.abc123").write_bytes(b"a write cut short")
    again = RunDir(path, tensorboard=False, resumed=True)
    env = {"command": ["tunelab", "train", "--resume"], "seed": 0}
    again.resume(RECIPE, [{"epoch": 1}, {"epoch": 2}], env)
    again.epoch({"epoch": 3})
    again.close()
    epochs = [json.loads(line)["epoch"] for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]  # epoch 3 once: the killed session's record was dropped
    assert leftovers(path) == []
    env = json.loads((path / "env.json").read_text())
    assert env["seed"] == 0 and env["resumed"] == [
        {"command": ["tunelab", "train", "--resume"], "epochs_done": 2}
    ]


def test_check_resumable_says_what_is_wrong(tmp_path):
    with pytest.raises(TunelabError, match="no such run directory"):
        check_resumable(tmp_path / "absent")
    (tmp_path / "notes").mkdir()
    with pytest.raises(TunelabError, match="not a tunelab run directory"):
        check_resumable(tmp_path / "notes")
    path = _old_run(tmp_path / "run")  # its result.json says diverged: finished
    with pytest.raises(RunFinished, match=r"has finished \(diverged\); its result is .*result.json"):
        check_resumable(path)
    (path / "result.json").write_text(json.dumps({"status": "interrupted"}))
    check_resumable(path)  # Ctrl-C: it can continue


def test_run_result_to_dict_is_json_safe():
    d = result().to_dict()
    text = json.dumps(d, allow_nan=False)  # NaN and inf would make invalid JSON
    back = json.loads(text)
    assert back["val"] == {"accuracy": 0.5, "loss": None} and back["best_value"] is None
    assert back["history"][1]["train"]["loss"] is None and back["seed"] == RECIPE.train.seed
    assert back["message"] == "the loss became nan at epoch 2" and back["status"] == "diverged"


def test_environment_masks_a_password_on_the_command_line(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tunelab", "search", "--storage", "postgresql://bob:hunter2@db/x"])
    env = environment(RECIPE, torch.device("cpu"))
    assert "hunter2" not in json.dumps(env) and env["torch"] == torch.__version__
    assert env["seed"] == RECIPE.train.seed and env["device"] == "cpu"


def test_default_run_dirs_never_collide(tmp_path):
    first = default_run_dir("iris", tmp_path)
    first.mkdir()
    second = default_run_dir("iris", tmp_path)
    assert second != first and second.name.startswith(first.name)


def test_tensorboard_gets_the_flattened_recipe_and_final_metrics(tmp_path):
    recipe = {
        "data": {"name": "iris"},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "threads": 1, "efficiency": False},
        "methods": [{"name": "l2", "weight": 0.001}],
    }
    result = fit(recipe, out=tmp_path / "run")
    hparams, scalars = {}, {}
    for f in sorted((tmp_path / "run" / "tb").iterdir()):
        for event in EventFileLoader(str(f)).Load():
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        for k, x in data.session_start_info.hparams.items():
                            hparams[k] = x.number_value if x.HasField("number_value") else x.string_value
                elif v.HasField("tensor"):
                    scalars.setdefault(v.tag, []).append(
                        v.tensor.float_val[0] if v.tensor.float_val else None
                    )
    assert hparams["optimizer.name"] == "adam" and hparams["methods.l2.weight"] == 0.001
    assert hparams["model.hidden"] == "[8]" and hparams["train.epochs"] == 2
    assert scalars["final.val.accuracy"][-1] == pytest.approx(result.val["accuracy"], rel=1e-6)
    assert len(list((tmp_path / "run" / "tb").iterdir())) == 2  # no subdirectory: a rerun can clear tb/
