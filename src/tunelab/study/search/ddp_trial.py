"""A search trial on P processes (``--trial-nproc P``): DDP trials for workers with several GPUs.

The worker (the process in ``study.optimize``) keeps the Optuna side of the trial, as for a trial
in one process: it asks, checks the budget, suggests and validates the trial's recipe, keeps the
user attributes, tells the result, and its heartbeat keeps the trial RUNNING while it trains.
The training runs elsewhere:

* ``launch_trial`` runs torch's elastic launcher in the worker (``elastic_launch``, the code behind
  ``torchrun --standalone``: a rendezvous on a free local port, so workers side by side do not
  collide), which starts P processes at ``run_rank``. Each trains the trial's recipe with ``fit``,
  which joins the process group (NCCL on GPUs, one per process; gloo on the CPU) and writes the
  trial's checkpoint from rank 0, as ``tunelab train --nproc P`` does.
* **Pruning:** rank 0 opens the study's storage by URL and the trial by its id, reports each
  epoch's value and asks the pruner; the answer is broadcast, so every rank stops after the same
  epoch (``trial_methods``). The time budget (``Deadline``) is rank 0's clock, broadcast too. The
  storage must be one the processes can open: ``sqlite:///:memory:`` lives inside one process and
  is refused (a search cannot use it anyway: each worker opens the URL anew).
* **The result** (status, epochs, val, costs, message, what stopped it) comes back as the ranks'
  return values, which ``elastic_launch`` hands to the worker; the worker checks that every rank
  ran the same epochs to the same status.
* **Errors:** a ``TunelabError`` in any rank (a recipe a method refuses under DDP, a batch that does
  not split over P) is written to a file the worker reads, and that rank exits; the launcher then
  stops the others, so no rank is left waiting in a collective, and the trial fails with the
  message. A rank that dies otherwise (a crash, the OOM killer) fails the trial with its exit status.
* **Ctrl-C and kills:** the launcher passes SIGINT and SIGTERM on to the ranks; a worker killed
  with SIGKILL takes its ranks with it (torch gives them a parent-death signal), and the trial is
  retried from rank 0's checkpoint by a worker with the same P (another P starts it again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tunelab.distributed import Dist, check_batch
from tunelab.errors import RecipeError, TunelabError
from tunelab.optim import OPTIMIZERS
from tunelab.recipe import Recipe
from tunelab.redact import redact_text
from tunelab.study.search.trial_methods import Deadline, PruneOnEpoch

# The exit status of a rank that stopped on a TunelabError (the CLI's for a user's error).
EXIT_TRIAL_ERROR = 2
# The signals torch's launcher catches in the worker to stop the ranks (its default list).
_LAUNCHER_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial's fit ended with: what the worker records and tells Optuna."""

    status: str
    epochs: int
    train_seconds: float = 0.0
    val: dict[str, Any] = field(default_factory=dict)
    efficiency: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    pruned_at: int | None = None  # the epoch after which the pruner stopped it
    stopped_at: int | None = None  # the epoch after which the time budget stopped it

    @classmethod
    def of(cls, result: Any, prune: PruneOnEpoch | None, deadline: Deadline | None) -> TrialOutcome:
        """From ``fit``'s RunResult and the trial's methods."""
        return cls(
            status=result.status,
            epochs=result.epochs,
            train_seconds=result.train_seconds,
            val=dict(result.val),
            efficiency=dict(result.efficiency),
            message=result.message,
            pruned_at=prune.pruned_at if prune is not None else None,
            stopped_at=deadline.stopped_at if deadline is not None else None,
        )


@dataclass(frozen=True)
class RankJob:
    """What each process of a DDP trial needs (pickled to it by the launcher)."""

    recipe_yaml: str  # the trial's resolved recipe, worker settings (threads) included
    storage: str  # the study's URL: rank 0 reports there
    study: str
    trial_id: int  # the trial's id in the storage (what Optuna opens it by)
    number: int  # its number in the study (what messages name)
    metric: str | None  # the val metric reported each epoch (None: nothing is reported)
    prune: bool
    pruner: str
    pruner_epochs: int  # the base recipe's epochs, as the worker builds its pruner
    deadline: float | None = None
    checkpoint: str | None = None  # the trial's checkpoint directory (rank 0 writes last.pt)
    errors: str = ""  # the directory a failing rank writes its message to


def run_rank(job: RankJob) -> TrialOutcome:
    """One process of a DDP trial (the launcher's entrypoint): train, and return how it ended."""
    import yaml

    from tunelab.recipe import load_recipe
    from tunelab.train import fit

    rank = int(os.environ.get("RANK", "0"))
    try:
        trial = _open_trial(job) if rank == 0 and job.metric else None
        prune = PruneOnEpoch(trial, job.metric, job.prune) if job.metric else None
        deadline = Deadline(job.deadline) if job.deadline is not None else None
        result = fit(
            load_recipe(yaml.safe_load(job.recipe_yaml)),
            save=False,
            resume=job.checkpoint,
            methods=[m for m in (prune, deadline) if m is not None],
            evaluate_test=False,  # a trial is a choice: the test split stays unread
        )
    except TunelabError as e:
        Path(job.errors, f"rank{rank}.txt").write_text(redact_text(str(e)))
        # SystemExit, not the exception: the launcher would print the traceback of a user's error.
        raise SystemExit(EXIT_TRIAL_ERROR) from None
    return TrialOutcome.of(result, prune, deadline)


def _open_trial(job: RankJob) -> Any:
    """The running trial, opened from the storage by id (rank 0 reports to it)."""
    import optuna

    from tunelab.study.search.samplers import make_pruner
    from tunelab.study.storage import open_storage

    store = open_storage(job.storage, heartbeat=False)  # the worker beats for the trial
    study = optuna.load_study(
        study_name=job.study,
        storage=store,
        sampler=optuna.samplers.RandomSampler(),  # never samples here: the worker did
        pruner=make_pruner(job.pruner, job.pruner_epochs),
    )
    return optuna.trial.Trial(study, job.trial_id)


def check_batch_splits(recipe: Recipe, nproc: int) -> None:
    """Every global batch the search can draw splits over ``nproc`` processes: checked before any
    trial runs, or each trial that drew an odd size would fail on its own, one after another.

    >>> from tunelab.recipe import load_recipe
    >>> space = {"train.batch_size": {"type": "int", "low": 16, "high": 256, "log": True}}
    >>> try:
    ...     check_batch_splits(load_recipe({"search": space}), 2)
    ... except RecipeError as e:
    ...     print(str(e).split(";")[0])
    search.train.batch_size: got {'low': 16, 'high': 256, 'step': 1, 'log': True}
    """
    if nproc == 1:
        return
    dim = recipe.search.get("train.batch_size")
    if dim is None:
        # A full-batch optimizer (gd) does not split a batch; a searched optimizer may be one.
        full = "optimizer.name" not in recipe.search and OPTIMIZERS.get(recipe.optimizer.name).tags.get(
            "full_batch"
        )
        check_batch(recipe.train.batch_size, Dist(0, nproc, 0), bool(full))
        return
    if dim.type == "categorical":
        splits, given = all(int(c) % nproc == 0 for c in dim.choices or []), dim.choices
    else:
        step = int(dim.step or 1)
        splits = not dim.log and step % nproc == 0 and int(dim.low or 0) % nproc == 0
        given = {"low": int(dim.low or 0), "high": int(dim.high or 0), "step": step}
        given.update({"log": True} if dim.log else {})
    if not splits:
        raise RecipeError(
            "search.train.batch_size",
            given,
            f"draws global batches that --trial-nproc {nproc} processes cannot split evenly: use "
            f"multiples of {nproc} (an int with step: {nproc} and a low that is a multiple of it, not "
            f"log; or categorical choices such as [{16 * nproc}, {32 * nproc}, {64 * nproc}])",
        )


def launch_trial(job: RankJob, nproc: int) -> TrialOutcome:
    """Train ``job`` on ``nproc`` processes of this machine; rank 0's outcome.

    A TunelabError when the trial fails (its message, from the rank that failed first);
    KeyboardInterrupt on Ctrl-C, after the launcher stopped the processes.
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    scratch = Path(tempfile.mkdtemp(prefix="tunelab-trial-"))
    try:
        with _launcher_signals(), _launcher_logs_quiet():
            outcomes = elastic_launch(_launch_config(nproc, scratch / "logs"), run_rank)(
                _with_errors_dir(job, scratch)
            )
    except ChildFailedError as e:
        raise TunelabError(_failure_message(e, scratch, job.number)) from None
    except SignalException as e:
        if e.sigval == signal.SIGINT:
            stopped = f"interrupted by the user: trial {job.number} on {nproc} processes"
            raise KeyboardInterrupt(stopped) from None
        raise SystemExit(128 + int(e.sigval)) from None  # SIGTERM and kin: the worker ends, as by default
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _agreed(outcomes)


def _with_errors_dir(job: RankJob, scratch: Path) -> RankJob:
    errors = scratch / "errors"
    errors.mkdir()
    return replace(job, errors=str(errors))


def _launch_config(nproc: int, logs: Path) -> Any:
    """``torchrun --standalone --nproc-per-node NPROC``'s settings, for one trial."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig

    return LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"tunelab-trial-{uuid.uuid4().hex}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port: workers side by side each get their own
        max_restarts=0,  # a failed trial is the worker's to record, not the launcher's to rerun
        start_method="spawn",  # a fresh interpreter: no state (or CUDA context) of the worker's
        logs_specs=DefaultLogsSpecs(log_dir=str(logs)),  # elastic's files go with the trial's scratch
    )


@contextlib.contextmanager
def _launcher_signals() -> Iterator[None]:
    """The worker's signal handlers back after the launch: torch's launcher replaces them with its
    own (which raise SignalException) and leaves them, so Ctrl-C between two trials would no
    longer be a KeyboardInterrupt."""
    saved = {name: signal.getsignal(getattr(signal, name)) for name in _LAUNCHER_SIGNALS}
    try:
        yield
    finally:
        for name, handler in saved.items():
            if handler is not None:
                signal.signal(getattr(signal, name), handler)


@contextlib.contextmanager
def _launcher_logs_quiet() -> Iterator[None]:
    """torch's launcher logs each process it stops and each that failed, with its own traceback
    (of the launcher's polling, not of the error): for a trial that fails on a user's error the
    trial's message says it all, and for a crash ``_failure_message`` prints the rank's own
    traceback. Their levels are restored after the launch."""
    prefixes = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")
    names = [name for name in list(logging.Logger.manager.loggerDict) if name.startswith(prefixes)]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _failure_message(error: Any, scratch: Path, number: int) -> str:
    """The message of the rank that failed: its TunelabError (rank 0's when several ranks had one),
    else how the first rank to fail ended, its traceback printed (a crash is a bug to debug)."""
    written = sorted((scratch / "errors").glob("rank*.txt"), key=lambda p: int(p.stem[4:]))
    if written:
        return written[0].read_text()
    rank, failure = error.get_first_failure()
    message = failure.message
    if isinstance(message, Mapping):  # elastic's error file: {"message": "Type: text", "extraInfo": ...}
        trace = message.get("extraInfo", {}).get("py_callstack")
        if trace:
            print(redact_text(f"DDP process {rank} of trial {number}: {trace}"), file=sys.stderr, end="")
        message = message.get("message", "")
    return redact_text(f"DDP process {rank} of the trial exited with status {failure.exitcode}: {message}")


def _agreed(outcomes: Mapping[int, TrialOutcome]) -> TrialOutcome:
    """Rank 0's outcome, once every rank is seen to have run the same epochs to the same status."""
    ends = {rank: (o.status, o.epochs) for rank, o in sorted(outcomes.items())}
    if len(set(ends.values())) != 1:
        # Cannot happen while every stop is decided on rank 0 and broadcast; if it does, the
        # trial's figures would describe one rank only.
        raise TunelabError(f"the DDP processes of the trial ended differently: {ends}")
    return outcomes[0]
