"""Resuming a killed run: what ``last.pt`` holds, how it is written, read and checked.

``fit`` writes ``last.pt`` at every epoch end and, with ``train.checkpoint_every``, every that many
optimizer steps; ``fit(resume=RUN_DIR)`` and ``tunelab train --resume RUN_DIR`` continue from it.
On the CPU a run killed at any point (SIGKILL included) and resumed ends with the same metrics, bit
for bit, as the same run never interrupted (``tests/test_resume.py`` kills one at six points).

The file is ``torch.save({"format", "sha256", "state"})``: ``state`` holds the ``torch.save``
bytes of the checkpoint (as a uint8 tensor) and ``sha256`` their digest. It is written through a
temporary file and a rename (``tunelab.io.atomic_open``), so a kill during the write leaves the
previous ``last.pt`` whole; the digest also catches a file damaged afterwards (a truncated copy, a
bad disk), which ``torch.load`` would otherwise read without a word. Both levels load with
``weights_only=True``.

The checkpoint (``Checkpoint``) holds everything ``fit`` needs to continue: the resolved recipe and
a hash of the data (a resume with other ones is refused, naming what changed), the model,
optimizer, schedule and GradScaler, each method's ``state_dict``, every random generator (Python,
NumPy, torch CPU and CUDA, the data-order generator; under DDP every rank's, gathered to rank 0, as
each rank draws its own stream), and the loop's position: the epoch, the
optimizer steps taken in it, the data-order generator at its start (the epoch's permutation is
drawn again from there), the partial epoch's loss sum, the best epoch so far and the history.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from tunelab.errors import TunelabError
from tunelab.io import atomic_open
from tunelab.methods import Method
from tunelab.recipe import Recipe, recipe_changes
from tunelab.runs import check_resumable

if TYPE_CHECKING:
    from tunelab.train import Loop

__all__ = [
    "FORMAT",
    "LAST",
    "Position",
    "ResumeSource",
    "capture_rng",
    "check_same_run",
    "data_fingerprint",
    "load_loop_checkpoint",
    "loop_checkpoint",
    "method_keys",
    "read_last",
    "restore_rng",
    "resume_source",
    "write_last",
]

LAST = "last.pt"
FORMAT = 1  # bumped when the checkpoint's layout changes; an unknown one is refused


def capture_rng(data_order: torch.Generator) -> dict[str, Any]:
    """Every generator a run draws from: Python, NumPy, torch (CPU and CUDA) and the data order.

    Dropout, augmentation (kornia's included) and mixup draw from torch's global generators, so
    restoring them at the saved position gives the same draws after a resume.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "data_order": data_order.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], data_order: torch.Generator) -> None:
    """Put back what ``capture_rng`` saved."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    data_order.set_state(state["data_order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def data_fingerprint(tensors: Mapping[str, Tensor]) -> str:
    """A hash of the named tensors' shapes, dtypes and values: the identity of a run's data.

    >>> a = data_fingerprint({"x": torch.zeros(2, 3)})
    >>> a == data_fingerprint({"x": torch.zeros(2, 3)}), a == data_fingerprint({"x": torch.ones(2, 3)})
    (True, False)
    """
    h = hashlib.sha256()
    for name, t in tensors.items():
        if hasattr(t, "fingerprint"):  # a streamed split: its files or rows (tunelab.data.stream)
            h.update(f"{name}:{t.fingerprint()};".encode())
            continue
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        # Bytes of the standard layout (a channels_last tensor hashes as its contiguous twin), read
        # in place: tobytes() would copy a whole split (hundreds of MB of images) to hash it.
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy())
    return h.hexdigest()


def method_keys(methods: list[Method], n_recipe: int) -> list[str]:
    """The key of each method's state in a checkpoint.

    The recipe's methods are keyed by position and name (the recipe is checked to be the same);
    methods passed to ``fit(methods=...)`` by class name, so a resume may pass other extras (a
    progress bar or none) and each finds its own state.

    >>> from tunelab.methods import METHODS
    >>> method_keys([METHODS.get("ema").build(), METHODS.get("l2").build()], n_recipe=1)
    ['0:ema', 'extra:L2']
    """
    return [f"{i}:{m.name}" if i < n_recipe else f"extra:{type(m).__name__}" for i, m in enumerate(methods)]


def write_last(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically, with its digest (see the module doc)."""
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    view = buf.getbuffer()
    # The bytes as a uint8 tensor, not a bytes object: torch.save writes a tensor's storage as it
    # is, while it pickles bytes as text (protocol 2), twice the size and far slower.
    state = torch.frombuffer(view, dtype=torch.uint8) if len(view) else torch.empty(0, dtype=torch.uint8)
    envelope = {"format": FORMAT, "sha256": hashlib.sha256(view).hexdigest(), "state": state}
    with atomic_open(path) as f:
        torch.save(envelope, f)
    del state, envelope
    view.release()


def read_last(path: Path) -> dict[str, Any]:
    """The checkpoint in ``path``, verified; a TunelabError saying what is wrong otherwise."""
    path = Path(path)
    fix = f"start the run again with --overwrite, or restore {path.name} from a copy"
    try:
        envelope = torch.load(path, map_location="cpu", weights_only=True)
        state = envelope["state"].numpy()
        digest = envelope["sha256"]
        fmt = envelope["format"]
    except FileNotFoundError:
        raise
    except Exception as e:  # a truncated or foreign file: torch's own error says little
        raise TunelabError(f"{path}: not a complete tunelab checkpoint ({type(e).__name__}); {fix}") from None
    if fmt != FORMAT:
        raise TunelabError(
            f"{path}: checkpoint format {fmt}, this tunelab reads format {FORMAT}; resume it with the "
            "tunelab version that wrote it"
        )
    if hashlib.sha256(state).hexdigest() != digest:
        raise TunelabError(f"{path}: the checkpoint is damaged (its checksum does not match); {fix}")
    # On the CPU: load_state_dict copies each part to where its owner lives (the run's device).
    return torch.load(io.BytesIO(state.tobytes()), map_location="cpu", weights_only=True)


def check_same_run(checkpoint: Mapping[str, Any], recipe: Recipe, data_hash: str, where: Path) -> None:
    """Refuse to resume with a recipe or data other than the run's own, naming what changed."""
    saved = json.loads(checkpoint["recipe"])
    now = json.loads(json.dumps(recipe.to_dict()))  # the same JSON types as the saved copy
    changes = recipe_changes(saved, now)
    if changes:
        raise TunelabError(
            f"--resume {where}: the recipe differs from the run's own ({'; '.join(changes)}); resume "
            "without a recipe or --set (the run directory holds its recipe), or start a new run"
        )
    if checkpoint["data"] != data_hash:
        raise TunelabError(
            f"--resume {where}: the data differs from the run's own (the train/val/test tensors hash "
            "differently: the data file or the data passed to fit changed); resume with the same data, "
            "or start a new run"
        )


def check_same_world(checkpoint: Mapping[str, Any], processes: int, where: Path) -> None:
    """Refuse to resume with another number of DDP processes than the run's (the shards, the data
    order of a step and the per-process batch all follow from it)."""
    saved = checkpoint.get("processes", 1)
    if saved != processes:
        raise TunelabError(
            f"--resume {where}: the run was trained by {saved} process(es), this resume has {processes}; "
            f"resume with --nproc {saved} (or start a new run)"
        )


@dataclass
class ResumeSource:
    """The run a ``fit(resume=...)`` continues: its directory and checkpoint (None: none yet)."""

    path: Path
    checkpoint: dict[str, Any] | None


def resume_source(
    resume: str | Path | None, *, save: bool, out: str | Path | None, overwrite: bool, own_model: bool
) -> ResumeSource | None:
    """Check a ``resume`` request and read its checkpoint; None when not resuming.

    With ``save`` the directory is a run directory: one that finished is refused with
    ``RunFinished``; ``own_model`` says a model is passed to ``fit`` (needed when the run had one).
    """
    if resume is None:
        return None
    path = Path(resume)
    if overwrite:
        raise TunelabError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if out is not None and Path(out).resolve() != path.resolve():
        raise TunelabError(f"--resume {path}: a run continues in its own directory; leave out --out {out}")
    if save:
        check_resumable(path)
        card = path / "data.json"
        if (
            not own_model
            and card.is_file()
            and not json.loads(card.read_text()).get("model_from_recipe", True)
        ):
            raise TunelabError(
                f"--resume {path}: this run trained a model passed to fit(model=...), which recipe.yaml does "
                "not describe; resume it from Python: fit(model=<the same architecture>, resume=RUN_DIR)"
            )
    elif not path.is_dir():
        path.mkdir(parents=True)
    last = path / LAST
    return ResumeSource(path, read_last(last) if last.is_file() else None)


@dataclass
class Position:
    """Where a loop stands: the epoch to run (0-based) and, mid-epoch, how far it went."""

    epoch: int = 0
    step_in_epoch: int = 0  # optimizer steps of ``epoch`` already taken (0: at its start)
    epoch_order: Tensor | None = None  # mid-epoch: the data-order generator at the epoch's start
    total: Tensor | None = None  # mid-epoch: the epoch's loss sum so far (loss x samples)
    seconds: float = 0.0  # mid-epoch: the epoch's time so far
    lr_steps: list[float] = field(default_factory=list)  # mid-epoch: the lr of each step so far


def loop_checkpoint(loop: Loop, rng_per_rank: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything ``loop`` needs to continue from where it stands (see the module doc);
    ``rng_per_rank``: every rank's ``capture_rng`` (under DDP each draws its own stream)."""
    from tunelab import __version__

    state, pos = loop.state, loop.pos
    methods = {k: m.state_dict() for k, m in zip(loop.keys, loop.methods, strict=True)}
    return {
        "versions": {"tunelab": __version__, "torch": str(torch.__version__)},
        "recipe": json.dumps(state.recipe.to_dict()),
        "data": loop.data_hash,
        "processes": loop.where.world,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "schedule": state.schedule.state_dict(),
        "scaler": loop.train_step.scaler.state_dict(),
        "methods": {k: v for k, v in methods.items() if v},
        "rng": capture_rng(loop.gen),
        **({"rng_per_rank": rng_per_rank} if rng_per_rank is not None and len(rng_per_rank) > 1 else {}),
        "loop": {
            "epoch": pos.epoch,
            "step_in_epoch": pos.step_in_epoch,
            "epoch_order": pos.epoch_order,
            "total": None if pos.total is None else pos.total.detach().cpu(),
            "seconds": pos.seconds,
            "lr_steps": list(pos.lr_steps),
            "train_seconds": loop.seconds_before + time.perf_counter() - loop.session_start,
            "step": state.step,
            "best": loop.best.state_dict(),
            "comparable_since": state.comparable_since,
            "stop": state.stop,
            "stop_reason": state.stop_reason,
            # JSON text: what result.json will hold anyway, and types torch.load always reads.
            "history": json.dumps(state.history),
            "info": json.dumps(state.info),
        },
    }


def load_loop_checkpoint(loop: Loop, checkpoint: Mapping[str, Any]) -> None:
    """Continue from ``loop_checkpoint``'s output, into a loop ``prepare`` set up afresh."""
    state, saved_loop = loop.state, checkpoint["loop"]
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.schedule.load_state_dict(checkpoint["schedule"])
    loop.train_step.scaler.load_state_dict(checkpoint["scaler"])
    saved = checkpoint["methods"]
    for key, method in zip(loop.keys, loop.methods, strict=True):
        if key in saved:
            method.load_state_dict(saved[key])
    state.step, state.comparable_since = saved_loop["step"], saved_loop["comparable_since"]
    state.stop, state.stop_reason = saved_loop["stop"], saved_loop["stop_reason"]
    state.history, state.info = json.loads(saved_loop["history"]), json.loads(saved_loop["info"])
    loop.best.load_state_dict(saved_loop["best"])
    loop.seconds_before = saved_loop["train_seconds"]
    mid = saved_loop["step_in_epoch"] > 0
    loop.pos = Position(
        saved_loop["epoch"],
        saved_loop["step_in_epoch"],
        saved_loop["epoch_order"],
        saved_loop["total"],
        saved_loop["seconds"] if mid else 0.0,
        list(saved_loop["lr_steps"]) if mid else [],
    )
    if state.history:
        # The weights the last epoch evaluated: what fit_end and the final evaluation read when
        # no epoch is left to run (killed during the final evaluation).
        net = state.model
        for hook in loop.eval_hooks:
            net = hook(state, net)
        state.eval_net = net
    # Each rank its own random state (a checkpoint from before per-rank streams has one for all).
    per_rank = checkpoint.get("rng_per_rank") or [checkpoint["rng"]] * loop.where.world
    restore_rng(per_rank[loop.where.rank], loop.gen)  # last: nothing may draw after it
