"""Resume (tunelab.resume): a run SIGKILLed at any point and resumed ends bit for bit as the run
never interrupted; last.pt is verified on load; a resume with another recipe or data is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tunelab import Method, fit, load_recipe
from tunelab.cli import main
from tunelab.errors import TunelabError
from tunelab.resume import (
    LAST,
    capture_rng,
    check_same_run,
    data_fingerprint,
    read_last,
    restore_rng,
    write_last,
)
from tunelab.runs import RunFinished

# A schedule with warmup (a SequentialLR), dropout, EMA, early stopping, augmentation and pruning:
# every kind of state a resume must carry. 25 optimizer steps per epoch; a checkpoint every 4
# steps and at each epoch end (writes 1-6 in epoch 1, 7-12 in epoch 2, ...).
RECIPE = {
    "data": {"name": "mnist1d", "train_fraction": 0.25},
    "model": {"name": "cnn1d", "channels": [8], "hidden": [16], "dropout": 0.2},
    "optimizer": {"name": "adamw", "lr": 0.01},
    "schedule": {"name": "cosine", "warmup_epochs": 1},
    "train": {
        "epochs": 6,
        "batch_size": 32,
        "threads": 1,
        "checkpoint_every": 4,
        "efficiency": False,
        "tensorboard": False,
    },
    "methods": [
        {"name": "prune", "sparsity": 0.5, "begin": 0.2, "end": 0.6, "cycles": 3},
        {"name": "signal_augment", "shift": 4, "noise": 0.1},
        {"name": "ema", "decay": 0.9},
        # Stops after epoch 4, whose val loss improves by 0.086 (epoch 3's by 0.16).
        {"name": "early_stopping", "patience": 1, "monitor": "val.loss", "min_delta": 0.1},
    ],
}

# Runs in a fresh interpreter: trains RECIPE into OUT and SIGKILLs itself at POINT:N.
DRIVER = r"""
import contextlib, os, signal, sys, json
import tunelab.resume, tunelab.train
from tunelab import Method, fit

out, point, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
recipe = json.loads(sys.argv[4])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

class KillAt(Method):
    name = "kill_at"
    def after_step(self, state):
        if point == "step" and state.step == n:
            die()
    def epoch_start(self, state):
        if point == "epoch_start" and state.epoch == n:
            die()
    def fit_end(self, state):
        if point == "fit_end":
            die()

calls = {"evaluate": 0, "write": 0}
evaluate = tunelab.train.evaluate
def killing_evaluate(*args, **kwargs):
    calls["evaluate"] += 1
    if point == "evaluate" and calls["evaluate"] == n:
        die()
    return evaluate(*args, **kwargs)
tunelab.train.evaluate = killing_evaluate

class HalfWritten:
    # The first half of what torch.save writes reaches the disk, then the process dies.
    def __init__(self, f):
        self.f = f
    def write(self, b):
        b = bytes(b)
        self.f.write(b[: len(b) // 2])
        self.f.flush()
        die()
    def __getattr__(self, name):
        return getattr(self.f, name)

atomic_open = tunelab.resume.atomic_open
@contextlib.contextmanager
def killing_open(path):
    calls["write"] += 1
    with atomic_open(path) as f:
        yield HalfWritten(f) if point == "write" and calls["write"] == n else f
    if point == "after_write" and calls["write"] == n:
        die()
tunelab.resume.atomic_open = killing_open

fit(recipe, out=out, methods=[KillAt()])
print("not killed")
"""

# point, n: where the run dies.
KILL_POINTS = {
    "mid-epoch (step 38 of epoch 2; its last checkpoint after step 36)": ("step", 38),
    "right after the first epoch's last.pt": ("after_write", 6),
    "between epochs (at the start of epoch 3)": ("epoch_start", 2),
    "during the evaluation of epoch 3": ("evaluate", 3),
    "during the last.pt write at the end of epoch 2 (after its metrics.jsonl line)": ("write", 12),
    "during fit_end (final evaluation not done)": ("fit_end", 0),
}


def _outcome(run_dir: Path) -> dict:
    """result.json without timings: what must be identical bit for bit."""
    r = json.loads((run_dir / "result.json").read_text())
    for record in r["history"]:
        record.pop("seconds")
    return {
        k: r[k]
        for k in ("status", "message", "epochs", "best_epoch", "best_value", "val", "test", "info", "history")
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    with torch.random.fork_rng():
        r = fit(RECIPE, out=out)
    # The recipe exercises what it should: early stopping ends it, pruning reached its target.
    assert r.status == "stopped_early" and r.epochs < RECIPE["train"]["epochs"], r.message
    assert r.info["prune"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    return out


@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_a_run_killed_anywhere_resumes_to_the_same_result_bit_for_bit(where, reference, tmp_path, capsys):
    point, n = KILL_POINTS[where]
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), point, str(n), json.dumps(RECIPE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert not (out / "result.json").exists()
    with torch.random.fork_rng():
        assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert _outcome(out) == _outcome(reference)
    ref_lines = (reference / "metrics.jsonl").read_text().splitlines()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in ref_lines]
    for name in ("best.pt", "final.pt"):
        a, b = (torch.load(d / name, weights_only=True) for d in (out, reference))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no torn temporary file


# --- the parts ---------------------------------------------------------------------------------


def test_rng_state_round_trips_every_generator():
    gen = torch.Generator().manual_seed(3)
    saved = capture_rng(gen)
    draws = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9), gen.manual_seed(9)
    restore_rng(saved, gen)
    again = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())
    assert again == draws


def test_data_fingerprint_sees_values_shapes_dtypes_and_layout_not():
    x = torch.arange(24.0).view(1, 2, 3, 4)
    base = data_fingerprint({"x": x})
    assert data_fingerprint({"x": x.contiguous(memory_format=torch.channels_last)}) == base
    assert data_fingerprint({"x": x.view(2, 3, 4)}) != base
    assert data_fingerprint({"x": x.double()}) != base
    y = x.clone()
    y[0, 0, 0, 0] = 0.5
    assert data_fingerprint({"x": y}) != base


def test_a_damaged_or_foreign_last_pt_is_never_loaded(tmp_path):
    path = tmp_path / LAST
    write_last(path, {"w": torch.arange(100.0)})
    assert torch.equal(read_last(path)["w"], torch.arange(100.0))
    data = bytearray(path.read_bytes())
    middle = data.find(np.arange(100, dtype=np.float32).tobytes()[200:240])  # inside the tensor's bytes
    assert middle > 0
    data[middle + 1] ^= 0xFF  # 50.0 becomes another number: a bit flip torch.load would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(TunelabError, match=r"damaged .*checksum does not match.*--overwrite"):
        read_last(path)
    path.write_bytes(bytes(data[: len(data) // 2]))  # a copy cut short
    with pytest.raises(TunelabError, match="not a complete tunelab checkpoint"):
        read_last(path)
    torch.save({"w": torch.zeros(2)}, path)  # a plain state_dict is no checkpoint
    with pytest.raises(TunelabError, match="not a complete tunelab checkpoint"):
        read_last(path)


IRIS = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 4, "efficiency": False, "tensorboard": False, "threads": 1},
}


def _killed_run(tmp_path: Path, recipe=IRIS, at_epoch: int = 2) -> Path:
    """A run stopped in-process at the start of ``at_epoch`` (0-based), its last.pt in place."""

    class Stop(BaseException):
        pass

    class StopAt(Method):
        def epoch_start(self, state):
            if state.epoch == at_epoch:
                raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        fit(recipe, out=out, methods=[StopAt()])
    return out


def test_check_same_run_names_what_changed(tmp_path):
    out = _killed_run(tmp_path)
    checkpoint = read_last(out / LAST)
    recipe = load_recipe(out / "recipe.yaml")
    check_same_run(checkpoint, recipe, checkpoint["data"], out)  # the run's own: no error
    other = load_recipe(recipe, ["optimizer.lr=0.5", "train.seed=3"])
    with pytest.raises(
        TunelabError, match=r"recipe differs .*\(optimizer\.lr: 0\.001 -> 0\.5; train\.seed: 0 -> 3\)"
    ):
        check_same_run(checkpoint, other, checkpoint["data"], out)
    with pytest.raises(TunelabError, match="the data differs from the run's own"):
        check_same_run(checkpoint, recipe, "another hash", out)


def test_resume_refuses_another_recipe_or_data_and_continues_with_its_own(tmp_path):
    out = _killed_run(tmp_path)
    with pytest.raises(TunelabError, match=r"train\.epochs: 4 -> 5"):
        fit(resume=out, overrides=["train.epochs=5"])
    x = torch.randn(150, 4)
    with pytest.raises(TunelabError, match="the data differs"):
        fit(resume=out, data=(x, torch.randint(0, 3, (150,))))
    with pytest.raises(TunelabError, match="exclude each other"):
        fit(resume=out, overwrite=True)
    with pytest.raises(TunelabError, match="continues in its own directory"):
        fit(resume=out, out=tmp_path / "elsewhere")
    r = fit(resume=out)
    assert r.status == "completed" and [h["epoch"] for h in r.history] == [1, 2, 3, 4]
    with pytest.raises(RunFinished, match="has finished \\(completed\\); its result is"):
        fit(resume=out)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    out = _killed_run(tmp_path, at_epoch=0)
    assert not (out / LAST).exists() and (out / "recipe.yaml").is_file()
    r = fit(resume=out)
    again = fit(IRIS, save=False)
    assert r.history[-1]["val"] == again.history[-1]["val"] and r.test == again.test


def test_tensorboard_continues_at_the_step_after_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = {**IRIS, "train": {**IRIS["train"], "tensorboard": True}}
    out = _killed_run(tmp_path, recipe, at_epoch=2)
    # The killed session had logged epoch 3 too (its checkpoint is from the end of epoch 2).
    fit(resume=out)
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4]


class Interrupted(BaseException):
    """Stands for a kill: fit does not catch it, as it catches Ctrl-C."""


class InterruptAt(Method):
    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, state):
        if state.step == self.step:
            raise Interrupted


VARIANTS = [
    *(
        [f"schedule.name={name}", "schedule.warmup_epochs=1"]
        for name in ("constant", "cosine", "exponential", "plateau", "step")
    ),
    ["schedule.name=multistep", "schedule.milestones=[2, 3]"],
    ["schedule.name=onecycle"],  # stepped per batch
    ["schedule.name=cyclic", "optimizer.name=sgd"],  # per batch, cycling momentum
    *([f"optimizer.name={name}"] for name in ("gd", "momentum", "nesterov", "rmsprop", "sgd", "adamw")),
    ["train.precision=fp16", "train.grad_accum=2"],  # GradScaler state, accumulated steps
    ["train.precision=bf16", "model.dropout=0.3"],
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=[" ".join(v) for v in VARIANTS])
def test_every_schedule_optimizer_and_precision_resume_exactly(overrides, tmp_path):
    recipe = load_recipe(
        {**IRIS, "model": {"name": "mlp", "hidden": [8], "batch_norm": True}},
        [*overrides, "train.batch_size=16", "train.checkpoint_every=4", "train.epochs=4"],
    )
    whole = fit(recipe, save=False)
    # Step 10 of 24 (12 with grad_accum=2): mid-epoch, two steps after the checkpoint of step 8.
    # gd takes one step per epoch: step 3 is in epoch 3, after the checkpoint of epoch 2.
    at = 3 if recipe.optimizer.name == "gd" else 10
    with pytest.raises(Interrupted):
        fit(recipe, out=tmp_path / "run", methods=[InterruptAt(at)])
    resumed = fit(resume=tmp_path / "run")
    pairs = zip(whole.history, resumed.history, strict=True)
    assert resumed.history == [{**h, "seconds": r["seconds"]} for h, r in pairs]
    assert resumed.val == whole.val and resumed.test == whole.test and resumed.best_epoch == whole.best_epoch
