"""The run directory and the result of a run.

A run directory holds everything needed to repeat and audit a run::

    recipe.yaml      the fully resolved recipe (every default written): `tunelab train recipe.yaml`
                     repeats the run exactly
    env.json         seed, device, threads, versions of Python / torch / tunelab / numpy, command
    preprocess.json  the preprocessing fit on the train split (``tunelab.data.preprocess``)
    tokenizer.json   a text run's tokenizer, which preprocess.json names (``tunelab.data.tokenize``)
    data.json        what a predictor needs: task, input shape, classes and label values, feature
                     columns, image decoding, tunelab's version (``DataBundle.card``)
    metrics.jsonl    one JSON line per finished epoch (train loss, val metrics, lr, seconds)
    last.pt          everything a killed run needs to continue (``tunelab.resume``), each epoch
    best.pt          state_dict of the evaluated weights at the best epoch of the monitor
    final.pt         state_dict of the weights that were finally evaluated (val and test)
    result.json      status, final val and test metrics, efficiency, timings (written last)
    tb/              TensorBoard event files

Checkpoints and result.json are written atomically (temporary file, then rename), so a crash or
Ctrl-C never leaves a half-written file; metrics.jsonl is appended and flushed each epoch.

A directory is claimed once: ``--out`` naming an existing run is refused unless the run is
continued (``--resume``, which rewrites metrics.jsonl from the checkpoint's history and lets
TensorBoard drop the steps after it) or replaced (``--overwrite``, which deletes everything in
it, ``compress/`` and ``tb/`` included). A non-empty directory that is not a run is never touched.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tunelab.data.bundle import DataBundle
from tunelab.errors import TunelabError
from tunelab.io import atomic_save, atomic_write_text, finite
from tunelab.recipe import Recipe
from tunelab.redact import redact_text

Status = Literal["completed", "stopped_early", "diverged", "interrupted"]
RUN_FILES = (
    "recipe.yaml",
    "env.json",
    "preprocess.json",
    "tokenizer.json",
    "data.json",
    "metrics.jsonl",
    "last.pt",
    "best.pt",
    "final.pt",
    "result.json",
)
# Bumped when data.json changes meaning (tunelab.load_run refuses a format it does not know).
DATA_CARD_FORMAT = 1


@dataclass
class RunResult:
    """What ``tunelab.fit`` returns: status, per-epoch history, final metrics and costs."""

    status: Status
    recipe: Recipe
    epochs: int  # epochs actually run
    history: list[dict[str, Any]]
    val: dict[str, Any]  # final val metrics of the evaluated weights
    test: dict[str, Any]  # the test split, read once at the end ({} if the run did not finish)
    train_seconds: float
    monitor: str
    best_epoch: int | None = None
    best_value: float | None = None
    efficiency: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # what methods reported
    message: str = ""
    run_dir: str | None = None
    model: nn.Module | None = field(default=None, repr=False)  # the evaluated weights

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "stopped_early")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what `tunelab train --json` prints)."""
        return finite(
            {
                "status": self.status,
                "message": self.message,
                "epochs": self.epochs,
                "monitor": self.monitor,
                "best_epoch": self.best_epoch,
                "best_value": self.best_value,
                "val": self.val,
                "test": self.test,
                "train_seconds": self.train_seconds,
                "efficiency": self.efficiency,
                "info": self.info,
                "seed": self.recipe.train.seed,
                "run_dir": self.run_dir,
                "history": self.history,
            }
        )


def default_run_dir(recipe_name: str, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{recipe_name}-{stamp}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = Path(f"{base}-{i}")
    return path


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a tunelab run (its recipe.yaml is written first)."""
    return (Path(path) / "recipe.yaml").is_file()


def check_out_dir(path: Path, *, overwrite: bool = False) -> None:
    """Refuse a run directory that is a file, holds another run (unless ``overwrite``), or is a
    non-empty directory that is not a run (never, whatever ``overwrite`` says)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise TunelabError(f"--out {path}: exists and is not a directory; choose another path")
    if not any(path.iterdir()):
        return
    if not is_run_dir(path):
        raise TunelabError(
            f"--out {path}: directory is not empty and is not a tunelab run; choose a new or empty directory"
        )
    if not overwrite:
        raise TunelabError(
            f"--out {path}: holds a run already; continue it with --resume {path}, replace it with "
            "--overwrite, or choose another directory"
        )


class RunFinished(TunelabError):
    """``--resume`` of a run that has finished: nothing to continue (the CLI exits 0)."""


def check_resumable(path: Path) -> None:
    """Raise unless ``path`` is a run that can continue: a run, and not finished (RunFinished)."""
    path = Path(path)
    if not path.is_dir():
        raise TunelabError(f"--resume {path}: no such run directory")
    if not is_run_dir(path):
        raise TunelabError(f"--resume {path}: not a tunelab run directory (it has no recipe.yaml)")
    result = path / "result.json"
    if result.is_file():
        status = json.loads(result.read_text()).get("status")
        if status != "interrupted":  # Ctrl-C writes result.json too; that run can continue
            raise RunFinished(f"run {path} has finished ({status}); its result is {result}")


class RunDir:
    """Writes one run directory: a new run, an earlier one replaced, or a resumed one continued.

    Args:
        path: the directory; checked with ``check_out_dir`` (a new run) unless ``resumed``.
        tensorboard: write TensorBoard event files under ``tb/``.
        overwrite: replace a run already in ``path`` (every file in it).
        resumed: continue the run in ``path`` (``resume`` sets where its logs start again).
        loggers: trackers to log to besides TensorBoard (``train.loggers``: "mlflow").
    """

    def __init__(
        self,
        path: str | Path,
        tensorboard: bool = True,
        *,
        overwrite: bool = False,
        resumed: bool = False,
        loggers: Sequence[str] = (),
    ) -> None:
        from tunelab.loggers import check_loggers

        check_loggers(loggers)  # a missing extra fails here, before the directory is touched
        self.path = Path(path)
        if not resumed:
            check_out_dir(self.path, overwrite=overwrite)
            if self.path.is_dir():
                self._clear()
        self.path.mkdir(parents=True, exist_ok=True)
        self._tensorboard = tensorboard
        self._purge_step: int | None = None
        # Opened by start() or resume() (or the first epoch), never before recipe.yaml is written.
        self._metrics: Any = None
        self._tb: Any = None
        self._mlflow = None
        if "mlflow" in loggers:
            from tunelab.loggers import MlflowLogger

            self._mlflow = MlflowLogger(self.path)
        self._recipe: Recipe | None = None

    def _clear(self) -> None:
        """Delete every entry of the run directory (a stale compress/ or export would describe
        another model); only called on a directory ``check_out_dir`` found to be a run."""
        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def start(
        self,
        recipe: Recipe,
        env: dict[str, Any],
        data: DataBundle | None = None,
        *,
        model_from_recipe: bool = True,
    ) -> None:
        """Write what is known before the first epoch, so a killed run has it too: the recipe, the
        environment and, given the run's ``data``, what a predictor needs (``tunelab.load_run``)."""
        self._recipe = recipe
        atomic_write_text(self.path / "recipe.yaml", recipe.to_yaml())
        atomic_write_text(self.path / "env.json", json.dumps(env, indent=2))
        if data is not None:
            from tunelab import __version__

            card = {"format": DATA_CARD_FORMAT, "tunelab": __version__, **data.card()}
            # A model passed to fit(model=...) cannot be rebuilt from recipe.yaml.
            card["model_from_recipe"] = model_from_recipe
            atomic_write_text(self.path / "data.json", json.dumps(card, indent=2))
            # Files the preprocessing names (a text run's tokenizer.json) first, then the JSON.
            for name, text in data.preprocessing.files().items():
                atomic_write_text(self.path / name, text)
            preprocess = json.dumps(data.preprocessing.to_json(), indent=2)
            atomic_write_text(self.path / "preprocess.json", preprocess)
        self._open_logs()  # after recipe.yaml: a directory with logs is always a recognizable run
        if self._mlflow is not None:
            self._mlflow.start(recipe, env)

    def resume(self, recipe: Recipe, history: list[dict[str, Any]], env: dict[str, Any]) -> None:
        """Continue after the checkpoint's ``history``: metrics.jsonl holds exactly its epochs (a
        record written after the checkpoint, by the killed session, is dropped: that epoch runs
        again), TensorBoard drops its steps after them, and env.json lists this session. MLflow
        gets a new run holding the whole history (the killed session's run stays as it was left)."""
        self._recipe = recipe
        lines = "".join(json.dumps(finite(record)) + "\n" for record in history)
        atomic_write_text(self.path / "metrics.jsonl", lines)
        self._purge_step = len(history) + 1  # epochs are the TensorBoard steps, from 1
        for name in ("result.json", "final.pt"):  # an interrupted session's: written again at the end
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_FILES:  # temporary files of writes a kill cut short (tunelab.io)
            for stale in self.path.glob(f".{name}.*"):
                stale.unlink()
        env_path = self.path / "env.json"
        old = json.loads(env_path.read_text()) if env_path.is_file() else {}
        keep = ("command", "started_at", "tunelab", "torch", "device", "threads")
        old.setdefault("resumed", []).append(
            {k: env[k] for k in keep if k in env} | {"epochs_done": len(history)}
        )
        atomic_write_text(env_path, json.dumps(old, indent=2))
        self._open_logs()
        if self._mlflow is not None:
            self._mlflow.start(recipe, env)
            for record in history:
                self._mlflow.epoch(record)

    def _open_logs(self) -> None:
        self._metrics = open(self.path / "metrics.jsonl", "a")
        if self._tensorboard:
            # Imported lazily: the tensorboard writer costs about a second to import.
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: on a resume, the events a killed session wrote past the checkpoint are
            # hidden, so each step's curve is the one the continued run wrote.
            self._tb = SummaryWriter(log_dir=str(self.path / "tb"), purge_step=self._purge_step)

    def epoch(self, record: dict[str, Any]) -> None:
        if self._metrics is None:
            self._open_logs()
        self._metrics.write(json.dumps(finite(record)) + "\n")
        self._metrics.flush()
        if self._tb is not None:
            step = record["epoch"]
            for key, value in record.items():
                if key == "epoch":
                    continue
                items = value.items() if isinstance(value, dict) else [("", value)]
                for k, v in items:
                    if isinstance(v, (int, float)) and v is not None:
                        self._tb.add_scalar(f"{key}/{k}" if k else key, v, step)
        if self._mlflow is not None:
            self._mlflow.epoch(record)

    def checkpoint(self, name: str, model: nn.Module) -> None:
        atomic_save(model.state_dict(), self.path / name)

    def finish(self, result: RunResult, example: torch.Tensor | None = None) -> None:
        """result.json, the hyperparameters for TensorBoard's HParams tab, and the trackers'
        final logs; ``example`` (one input sample) lets MLflow save the model with a signature."""
        if self._mlflow is not None:
            result.info["mlflow"] = self._mlflow.ids()  # where to find it, kept in result.json
        atomic_write_text(self.path / "result.json", json.dumps(result.to_dict(), indent=2))
        if self._tb is not None and self._recipe is not None:
            self._hparams(result)
        if self._mlflow is not None:
            self._mlflow.finish(result, example)
            if "model" in result.info.get("mlflow", {}):  # why the model was not logged, kept too
                atomic_write_text(self.path / "result.json", json.dumps(result.to_dict(), indent=2))
        self.close()

    def _hparams(self, result: RunResult) -> None:
        """The recipe's flattened fields with the final metrics, so TensorBoard's HParams tab can
        compare runs (in this run's tb/ directory: run_name "." adds no subdirectory)."""
        from tunelab.loggers import flat_params, scalar_metrics

        assert self._tb is not None and self._recipe is not None
        hparams = {
            k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in flat_params(self._recipe.to_dict()).items()
        }
        metrics = scalar_metrics({"final": {"val": result.val, "test": result.test}})
        metrics["final.epochs"] = float(result.epochs)
        self._tb.add_hparams(hparams, metrics, run_name=".")

    def close(self) -> None:
        if self._metrics is not None and not self._metrics.closed:
            self._metrics.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def environment(recipe: Recipe, device: torch.device) -> dict[str, Any]:
    """Versions, seed and machine facts recorded beside every run."""
    import numpy

    from tunelab import __version__

    return {
        "seed": recipe.train.seed,
        "split_seed": recipe.data.split_seed,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "tunelab": __version__,
        "platform": platform.platform(),
        "command": [redact_text(arg) for arg in sys.argv],  # `--storage URL` may hold a password
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
