"""The training loop: ``fit(recipe) -> RunResult``.

Read top to bottom, this is the pseudocode in ``tunelab.methods._base`` made real: ``prepare``
(setup), ``Loop`` (the epochs), then ``fit_end`` and the final evaluation. The hot loop does the
minimum a plain PyTorch loop does: data stays on the device and is batched by index permutation,
the train loss is summed on the device and read once per epoch (no per-batch sync), and methods
are visited only for the hooks they override. The loop writes ``last.pt`` at every epoch end, so
a killed run continues where it stopped (``fit(resume=RUN_DIR)``, see ``tunelab.resume``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tunelab import distributed
from tunelab.data import DataBundle, bundle_from_arrays, load_data
from tunelab.data.bundle import SPLITS
from tunelab.data.stream import StreamSplit, as_stream, load_stream, wants_stream
from tunelab.errors import RecipeError, TunelabError
from tunelab.evaluation import efficiency as _efficiency
from tunelab.evaluation import evaluate
from tunelab.evaluation import predict as predict  # re-exported: tunelab.train.predict as before
from tunelab.methods import METHODS, Method, TrainState, hooks_of
from tunelab.methods.early_stopping import BestEpoch
from tunelab.models import build_model
from tunelab.optim import OPTIMIZERS, build_optimizer, build_schedule
from tunelab.recipe import Recipe, load_recipe
from tunelab.resume import (
    LAST,
    Position,
    ResumeSource,
    capture_rng,
    check_same_run,
    check_same_world,
    data_fingerprint,
    load_loop_checkpoint,
    loop_checkpoint,
    method_keys,
    resume_source,
    write_last,
)
from tunelab.runs import RunDir, RunResult, check_out_dir, default_run_dir, environment
from tunelab.spec import monitor_mode, resolve_auto_monitor
from tunelab.step import TrainStep, step_groups

Criterion = Callable[[Tensor, Tensor], Tensor]
# The largest share of a run without a run directory (a study trial) spent writing last.pt.
TRIAL_CHECKPOINT_SHARE = 0.02

LOSSES: dict[str, Criterion] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
}


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError("train.device", name, "CUDA is not available on this machine; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("train.device", name, "MPS is not available on this machine; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch: the same recipe and seed give the same metrics on the CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _criterion(recipe: Recipe, task: str) -> Criterion:
    name = recipe.train.loss
    if name == "auto":
        name = "cross_entropy" if task == "classification" else "mse"
    if (name == "cross_entropy") != (task == "classification"):
        raise RecipeError("train.loss", recipe.train.loss, f"does not fit a {task} task")
    return LOSSES[name]


def load_bundle(recipe: Recipe, data: Any = None) -> DataBundle:
    """The recipe's data, or the data given: a DataBundle, (x, y) or (x, y, x_test, y_test), or
    torch Datasets (one, or train and val and optionally test), which stream (tunelab.data.stream)."""
    if data is None:
        if wants_stream(recipe.data):
            return load_stream(recipe.data, recipe.preprocess)
        return load_data(recipe.data, recipe.preprocess)
    streamed = as_stream(data, recipe.data, recipe.preprocess)
    if streamed is not None:
        return streamed
    if isinstance(data, DataBundle):
        return data
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y, *test = data
        return bundle_from_arrays(x, y, recipe.data, *test, preprocess=recipe.preprocess)
    raise RecipeError(
        "data", type(data).__name__, "pass a DataBundle, (x, y), (x, y, x_test, y_test) or torch Datasets"
    )


@dataclass
class Prepared:
    """What ``prepare`` hands to a loop: the state after setup, the methods, the micro-batch size
    and the [lo, hi) ranges of each optimizer step's micro-batches in an epoch (``step_groups``)."""

    state: TrainState
    methods: list[Method]
    batch_size: int
    groups: list[list[tuple[int, int]]]
    where: distributed.Dist = distributed.ONE  # this process's rank among the DDP processes


def epoch_steps(
    n: int, recipe: Recipe, where: distributed.Dist = distributed.ONE
) -> tuple[int, list[list[tuple[int, int]]]]:
    """(micro-batch size, each optimizer step's micro-batch ranges) for ``n`` training samples.

    ``train.grad_accum`` micro-batches of ``train.batch_size`` make one optimizer step. ``gd``
    takes the whole split as one step, computed in ``grad_accum`` micro-batches (less memory,
    the same update). Under DDP the ranges are global: each of the ``where.world`` processes
    trains on its share of every micro-batch (``distributed.shard``).

    >>> from tunelab.recipe import load_recipe
    >>> epoch_steps(100, load_recipe({"train": {"batch_size": 16, "grad_accum": 4}}))[1][-1]
    [(64, 80), (80, 96), (96, 100)]
    """
    k = recipe.train.grad_accum
    full = OPTIMIZERS.get(recipe.optimizer.name).tags.get("full_batch")
    distributed.check_batch(recipe.train.batch_size, where, bool(full))
    batch_size = -(-n // k) if full else min(recipe.train.batch_size, n)
    return batch_size, step_groups(n, batch_size, k, min_last=2 * where.world)


def prepare(
    recipe: Recipe,
    *,
    model: nn.Module | None = None,
    data: DataBundle | tuple[Any, ...] | None = None,
    methods: Sequence[Method] = (),
    compile: bool = False,
) -> Prepared:
    """Everything ``fit`` does before its first epoch, for any loop that trains like fit.

    Seeds, picks the device, loads and splits the data, builds and initializes the model (or
    takes ``model``, used in place), loads pretrained weights, builds the optimizer and schedule,
    creates the recipe's methods plus ``methods`` and runs their ``setup`` hooks.
    """
    t = recipe.train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    where = distributed.current()
    device = distributed.device_for(t.device, where) or resolve_device(t.device)
    seed_everything(t.seed)
    with distributed.local_main_first(where):  # a node's first process builds the data's caches
        bundle = load_bundle(recipe, data).to(device)
    criterion = _criterion(recipe, bundle.task)
    # A model passed in is used as it is (it may be trained already): recipe.model.init applies
    # only to models tunelab builds. model.pretrained, an explicit request, applies to both.
    embeddings = bundle.meta.get("embeddings")
    if model is None:
        net = build_model(
            recipe.model, bundle.input_shape, bundle.num_outputs, embeddings, text=bundle.meta.get("text")
        )
    else:
        net = model
    if t.channels_last:
        if len(bundle.input_shape) != 3:
            raise RecipeError(
                "train.channels_last", True, "applies to image data (C, H, W) only; set it to false"
            )
        bundle = bundle.channels_last()
        net = net.to(memory_format=torch.channels_last)
    pretrained_report = None
    if recipe.model.pretrained:
        from tunelab.models.pretrained import load_pretrained

        pretrained_report = load_pretrained(net, recipe.model.pretrained)
    net = net.to(device)

    batch_size, groups = epoch_steps(len(bundle.x_train), recipe, where)
    steps_per_epoch = len(groups)  # optimizer steps: what per-batch schedules and methods count
    optimizer = build_optimizer(net, recipe.optimizer)
    monitor = resolve_auto_monitor(t.monitor, bundle.task)
    metric = monitor.split(".")[-1]
    if bundle.task == "regression" and metric in ("accuracy", "precision", "recall", "f1"):
        raise RecipeError("train.monitor", monitor, "is a classification metric; this data is regression")
    if bundle.task == "classification" and metric in ("mse", "rmse", "mae", "r2"):
        raise RecipeError("train.monitor", monitor, "is a regression metric; this data is classification")
    mode = monitor_mode(monitor)
    schedule = build_schedule(optimizer, recipe.schedule, t.epochs, steps_per_epoch, mode)

    instances = [METHODS.get(m.name).build(**m.params) for m in recipe.methods] + list(methods)
    state = TrainState(
        recipe=recipe,
        data=bundle,
        model=net,
        optimizer=optimizer,
        schedule=schedule,
        criterion=criterion,
        device=device,
        monitor=monitor,
        mode=mode,
        steps_per_epoch=steps_per_epoch,
    )
    if bundle.report:
        state.info["preprocess"] = bundle.report  # what cleaning and preprocessing did, and why
    if pretrained_report is not None:
        state.info["pretrained"] = pretrained_report
    for hook in hooks_of(instances, "setup"):
        hook(state)
    if compile:
        state.model.compile()  # in place: state_dict keys stay the same as the eager model's
    distributed.seed_rank(t.seed, where)  # init and setup drew alike; now each rank its own stream
    if where.active:
        state.info["distributed"] = {"processes": where.world, "batch_per_process": batch_size // where.world}
    return Prepared(state, instances, batch_size, groups, where)


def fit(
    recipe: Recipe | str | Path | dict[str, Any] | None = None,
    *,
    overrides: Sequence[str] = (),
    model: nn.Module | None = None,
    data: DataBundle | tuple[Any, ...] | None = None,
    out: str | Path | None = None,
    save: bool = True,
    methods: Sequence[Method] = (),
    evaluate_test: bool = True,
    resume: str | Path | None = None,
    overwrite: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Train and evaluate as the recipe says; return the result and write the run directory.

    Args:
        recipe: a Recipe, a YAML path or a mapping (validated before anything runs); with
            ``resume``, default the run directory's own recipe.yaml.
        overrides: dotted ``a.b=c`` settings applied on top (as ``--set`` on the CLI).
        model: your own ``nn.Module`` instead of ``recipe.model`` (trained in place, as it is:
            ``model.init`` applies only to models tunelab builds).
        data: a DataBundle, or arrays ``(x, y)`` / ``(x, y, x_test, y_test)`` split as the
            recipe's ``data`` section says, instead of ``recipe.data``.
        out: run directory; default ``runs/<dataset>-<model>-<time>``. An existing run there is
            an error unless ``overwrite`` (or ``resume``) is given.
        save: False writes no run directory (used inside studies and benchmarks).
        methods: extra Method instances (your own hooks) run after the recipe's methods.
        evaluate_test: False leaves the test split unread (``RunResult.test`` empty): for runs
            whose purpose is a choice (search trials), which must not see it anyway.
        resume: a run directory to continue from its ``last.pt`` (``tunelab.resume``), bit for bit
            on the CPU; the recipe and data must be the run's own. A run killed before its first
            checkpoint starts again. With ``save=False``: a directory holding only ``last.pt``
            (a search trial's), continued if the file is there, and checkpointed to.
        overwrite: replace the run in ``out`` (every file of it, ``compress/`` and ``tb/`` too).
        checkpoint_dir: with ``save=False``, write ``last.pt`` here (and nothing else).

    >>> r = fit({"data": {"name": "iris"}, "model": {"name": "linear"}, "train": {"epochs": 2}},
    ...         save=False)  # doctest: +SKIP
    >>> r.status, round(r.val["accuracy"], 2)  # doctest: +SKIP
    ('completed', 0.75)
    """
    source = resume_source(resume, save=save, out=out, overwrite=overwrite, own_model=model is not None)
    if recipe is None:
        if source is None or not save:
            raise TunelabError("fit: give a recipe (or resume=RUN_DIR to continue a run)")
        recipe = source.path / "recipe.yaml"
    recipe = load_recipe(recipe, overrides) if overrides or not isinstance(recipe, Recipe) else recipe
    # Under torchrun: join the process group (and leave it cleanly, see distributed.session).
    with distributed.session(recipe.train.device) as where:
        main = where.main  # under DDP only rank 0 writes (run directory, last.pt) and prints
        path = _run_path(
            recipe, model, source, out, checkpoint_dir, save=save, main=main, overwrite=overwrite
        )

        prep = prepare(recipe, model=model, data=data, methods=methods, compile=recipe.train.compile)
        # A study trial's checkpoints (save=False) cost at most ~2% of its time: its epochs are short.
        share = None if save else TRIAL_CHECKPOINT_SHARE
        loop = Loop(
            prep, len(recipe.methods), last=path / LAST if path is not None else None, max_share=share
        )
        checkpoint = source.checkpoint if source is not None else None
        if checkpoint is not None:
            check_same_world(checkpoint, where.world, source.path)  # type: ignore[union-attr]
            if main:  # the others have no data hash (they write no checkpoint); rank 0 checks for all
                check_same_run(checkpoint, recipe, loop.data_hash, source.path)  # type: ignore[union-attr]
            load_loop_checkpoint(loop, checkpoint)
        run = None
        if save and main:
            # A resumed run without a checkpoint yet (killed in its first epoch) starts again.
            run = RunDir(
                path,  # type: ignore[arg-type]
                recipe.train.tensorboard,
                overwrite=overwrite or source is not None,
                resumed=checkpoint is not None,
                loggers=recipe.train.loggers,
            )
            env = environment(recipe, prep.state.device)
            if checkpoint is not None:
                run.resume(recipe, prep.state.history, env)
            else:
                run.start(recipe, env, prep.state.data, model_from_recipe=model is None)
        try:
            return _run(loop, run, evaluate_test)
        finally:
            if run is not None:
                run.close()


def _run_path(
    recipe: Recipe,
    model: nn.Module | None,
    source: ResumeSource | None,
    out: str | Path | None,
    checkpoint_dir: str | Path | None,
    *,
    save: bool,
    main: bool,
    overwrite: bool,
) -> Path | None:
    """Where this process writes: the run directory (``save``), a trial's checkpoint directory, or
    nowhere (None; also every DDP rank but 0). An existing run is refused before the data loads."""
    if not main:
        return None
    if save:
        name = f"{recipe.data.name}-{recipe.model.name if model is None else type(model).__name__.lower()}"
        path = source.path if source is not None else Path(out) if out is not None else default_run_dir(name)
        if source is None:
            check_out_dir(path, overwrite=overwrite)  # fail fast
        return path
    # No run directory; last.pt only where asked (a search trial's checkpoint directory).
    path = Path(checkpoint_dir) if checkpoint_dir is not None else source.path if source else None
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _run(loop: Loop, run: RunDir | None, evaluate_test: bool) -> RunResult:
    """Train (the loop), finish (fit_end), evaluate val and test once, write the result."""
    state, t = loop.state, loop.state.recipe.train
    started = time.perf_counter()
    try:
        status, message, best_epoch, best_value = loop.run(run)
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted by the user after {len(state.history)} epoch(s)"
        best_epoch = best_value = None
    train_seconds = loop.seconds_before + time.perf_counter() - started

    for hook in hooks_of(loop.methods, "fit_end"):
        hook(state)
    eval_net = state.eval_net if state.eval_net is not None else state.model
    val: dict[str, Any] = {}
    test: dict[str, Any] = {}
    efficiency: dict[str, Any] = {}
    if status in ("completed", "stopped_early"):
        where = loop.where
        val, test = _final_metrics(state, eval_net, evaluate_test) if where.main else ({}, {})
        val, test = distributed.from_main((val, test), where)
        if t.efficiency and where.main:
            efficiency = _efficiency(state, eval_net)
        efficiency["train_seconds"] = train_seconds
        efficiency["seconds_per_epoch"] = train_seconds / max(1, len(state.history))
        if loop.last is not None:
            efficiency["checkpoint_seconds"] = loop.checkpoint_seconds  # last.pt writes, this session
        if run is not None:
            run.checkpoint("final.pt", eval_net)

    result = RunResult(
        status=status,  # type: ignore[arg-type]
        recipe=state.recipe,
        epochs=len(state.history),
        history=state.history,
        val=val,
        test=test,
        train_seconds=train_seconds,
        monitor=state.monitor,
        best_epoch=best_epoch,
        best_value=best_value,
        efficiency=efficiency,
        info=state.info,
        message=message or state.stop_reason,
        run_dir=str(run.path) if run is not None else None,
        model=eval_net,
    )
    if run is not None:
        run.finish(result, example=state.data.x_val[:1])
    if status == "interrupted":
        raise KeyboardInterrupt(message)
    return result


def _final_metrics(state: TrainState, net: nn.Module, evaluate_test: bool) -> tuple[dict[str, Any], ...]:
    """(val, test) full reports of the final weights; the test split is read here, once (through
    this module's ``evaluate``, which studies' tests spy on)."""
    data, t = state.data, state.recipe.train
    base_loss = LOSSES["cross_entropy"] if data.task == "classification" else state.criterion
    val = evaluate(net, data, "val", base_loss, t.eval_batch_size, full=True)
    # After every choice was made on val.
    test = evaluate(net, data, "test", base_loss, t.eval_batch_size, full=True) if evaluate_test else {}
    return val, test


Outcome = tuple[str, str, "int | None", "float | None"]  # status, message, best epoch, best value


class Loop:
    """The epochs of ``fit`` (the pseudocode of ``tunelab.methods._base``), resumable: it writes
    ``last.pt`` (``tunelab.resume.loop_checkpoint``) at every epoch end and every
    ``train.checkpoint_every`` optimizer steps when ``last`` is a path. Its hot loop does the
    minimum a plain PyTorch loop does (see the module docstring).
    """

    def __init__(
        self, prep: Prepared, n_recipe_methods: int, last: Path | None = None, max_share: float | None = None
    ) -> None:
        """``last``: where to write last.pt (None: nowhere). ``max_share``: space the writes so they
        take at most this share of the time (a study trial's); None writes at every chance."""
        state, methods = prep.state, prep.methods
        self.state, self.methods, self.last, self.max_share = state, methods, last, max_share
        self.epoch_start = hooks_of(methods, "epoch_start")
        self.eval_hooks = hooks_of(methods, "eval_model")
        self.epoch_end = hooks_of(methods, "epoch_end")
        self.train_step = TrainStep(state, methods)  # batch .. after_step hooks, autocast, loss scaling
        self.where = where = prep.where
        if where.active:  # the forward goes through DDP; all micro-batches but a step's last skip its sync
            sync_bn = state.recipe.train.sync_batch_norm
            net = distributed.wrap_model(state.model, methods, state.device, sync_bn)
            step = self.train_step
            step.net, step.no_sync, step.world = net, net.no_sync, where.world
            buffers = distributed.BufferSync(state.model, where.world)
            step.sync_buffers = buffers if buffers else None
        # Samples per optimizer step: its loss is their mean, and the epoch's loss sums loss x count.
        self.plan = [(group, group[-1][1] - group[0][0]) for group in prep.groups]
        self.val_loss = LOSSES["cross_entropy"] if state.data.task == "classification" else state.criterion
        # Batching by index permutation from a dedicated generator: the order depends only on the seed.
        self.gen = torch.Generator().manual_seed(state.recipe.train.seed)
        self.best = BestEpoch(state.mode)  # type: ignore[arg-type]  # the same rule as early stopping's
        self.pos = Position()
        self.keys = method_keys(methods, n_recipe_methods)
        self.every = state.recipe.train.checkpoint_every
        self.checkpoints = distributed.from_main(last is not None, where)  # every rank gathers then
        data = state.data
        splits = {f"{a}_{s}": getattr(data, f"{a}_{s}") for s in SPLITS for a in "xy"}
        self.data_hash = data_fingerprint(splits) if last is not None else ""
        self.seconds_before = 0.0  # training time of the sessions before a resume
        self.checkpoint_seconds = 0.0  # time spent writing last.pt in this session
        self._write_end, self._write_cost = -math.inf, 0.0  # of the last write
        self.session_start = time.perf_counter()

    def run(self, run: RunDir | None) -> Outcome:
        """Run the remaining epochs; return (status, message, best epoch, best value)."""
        state = self.state
        self.session_start = time.perf_counter()
        for epoch in range(self.pos.epoch, state.recipe.train.epochs):
            if state.stop:  # resumed after the epoch that stopped it
                break
            outcome = self._epoch(epoch, run)
            if outcome is not None:
                return outcome
        if state.stop:
            return "stopped_early", state.stop_reason, *self._best()
        return "completed", "", *self._best()

    def _epoch(self, epoch: int, run: RunDir | None) -> Outcome | None:
        """One epoch: train, evaluate, choose, end; an Outcome when the run ends here."""
        state, data, t = self.state, self.state.data, self.state.recipe.train
        state.epoch = epoch
        t0 = time.perf_counter() - self.pos.seconds
        total, lr_steps = self._train(epoch, t0)
        model = state.model
        eval_net = model
        for hook in self.eval_hooks:
            eval_net = hook(state, eval_net)
        state.eval_net = eval_net
        where = self.where
        train_loss = float(distributed.all_mean(total, where)) / len(data.x_train)  # the epoch's one sync
        # Under DDP rank 0 evaluates and every rank reads its figures (see tunelab.distributed).
        val = evaluate(eval_net, data, "val", self.val_loss, t.eval_batch_size) if where.main else None
        val = distributed.from_main(val, where)
        record = {
            "epoch": epoch + 1,
            "train": {"loss": train_loss},
            "val": val,
            "lr": state.optimizer.param_groups[0]["lr"],
            "steps": state.step,  # optimizer steps taken so far: places the epoch on a step axis
            "seconds": time.perf_counter() - t0,
        }
        if lr_steps:
            record["lr_steps"] = lr_steps
        state.history.append(record)
        if not (math.isfinite(train_loss) and math.isfinite(val["loss"])):
            if run is not None:
                run.epoch(record)
            lr = state.recipe.optimizer.params.get("lr")
            bad = train_loss if not math.isfinite(train_loss) else val["loss"]
            return (
                "diverged",
                f"the loss became {bad} at epoch {epoch + 1}: lower optimizer.lr (now {lr}), add grad_clip, "
                "or check the data for extreme values",
                *self._best(),
            )
        value = state.last()
        self.best.forget_before(state.comparable_since)
        if self.best.update(value, epoch + 1) and run is not None:
            run.checkpoint("best.pt", eval_net)
        state.schedule.step_epoch(value)
        for hook in self.epoch_end:
            hook(state)
        record["seconds"] = time.perf_counter() - t0
        if run is not None:
            run.epoch(record)
        self.pos = Position(epoch + 1)
        self.save()
        if state.stop:
            return "stopped_early", state.stop_reason, *self._best()
        return None

    def _train(self, epoch: int, t0: float) -> tuple[Tensor, list[float]]:
        """The epoch's optimizer steps (from where a resumed run stopped): its loss sum, on device,
        and the lr of each step when the schedule changes it per step (else [])."""
        state, pos = self.state, self.pos
        x_train, device = state.data.x_train, state.device
        if pos.epoch_order is None:  # the epoch starts here
            order = self.gen.get_state()
            for hook in self.epoch_start:
                hook(state)
            total, lr_steps = torch.zeros((), device=device), []
        else:  # resumed mid-epoch: epoch_start ran in the killed session; the same order again
            order = pos.epoch_order
            self.gen.set_state(order)
            total, lr_steps = pos.total.to(device), list(pos.lr_steps)  # type: ignore[union-attr]
        state.model.train()
        perm = torch.randperm(len(x_train), generator=self.gen)
        steps = self._micro_batches(perm, pos.step_in_epoch)
        train_step, every, last_step, world = self.train_step, self.every, len(self.plan), self.where.world
        # The lr of every step, for a schedule that changes it per step: read from the host-side param
        # group before the step (a Python float: no device sync, ~0.1 us a step). An epoch schedule's
        # lr is constant within the epoch: the record's "lr" and "steps" describe it.
        group0, per_batch = state.optimizer.param_groups[0], state.schedule.per_batch
        for i in range(pos.step_in_epoch, last_step):
            count = self.plan[i][1]
            if per_batch:
                lr_steps.append(group0["lr"])  # the lr this step uses; the schedule advances after it
            micro = next(steps)
            total += (train_step(micro) if world == 1 else train_step(micro, count)) * count
            if every is not None and state.step % every == 0 and i + 1 < last_step:
                # Under DDP every rank resumes from the mean of the ranks' sums (what rank 0 saves).
                saved = distributed.all_mean(total, self.where)
                self.pos = Position(epoch, i + 1, order, saved, time.perf_counter() - t0, lr_steps)
                self.save()
        return total, lr_steps

    def _micro_batches(self, perm: Tensor, start: int) -> Iterator[list[tuple[Tensor, Tensor]]]:
        """Each optimizer step's micro-batches from step ``start`` on: this rank's strided share
        (``rank::world``, all of it in one process) of the ranges of ``self.plan`` in ``perm``."""
        data, rank, world = self.state.data, self.where.rank, self.where.world
        x, y = data.x_train, data.y_train
        plan = self.plan[start:]
        if isinstance(x, StreamSplit):  # read by the DataLoader, in this order, on the device
            batches = [perm[lo + rank : hi : world].tolist() for group, _ in plan for lo, hi in group]
            read = x.read(batches)
            for group, _ in plan:
                yield [next(read) for _ in group]
            return
        perm = perm.to(self.state.device, non_blocking=True)
        for group, _ in plan:
            yield [(x[idx], y[idx]) for idx in (perm[lo + rank : hi : world] for lo, hi in group)]

    def _best(self) -> tuple[int | None, float | None]:
        """(best epoch, its value), or (None, None) when no epoch counted."""
        best = self.best
        return (best.best_epoch, best.best) if best.best_epoch is not None else (None, None)

    # --- resume -------------------------------------------------------------------------------

    def save(self) -> None:
        """Write ``last.pt`` (atomically) when this loop checkpoints; time it."""
        t0 = time.perf_counter()
        rng = distributed.gather_to_main(capture_rng(self.gen), self.where) if self.checkpoints else None
        if self.last is None:  # not rank 0, or no checkpoints; rank 0 saves every rank's random state
            return
        if self.max_share is not None and t0 - self._write_end < self._write_cost / self.max_share:
            return  # any checkpoint resumes exactly: skipping some only means redoing more work
        write_last(self.last, loop_checkpoint(self, rng))
        self._write_end = time.perf_counter()
        self._write_cost = self._write_end - t0
        self.checkpoint_seconds += self._write_cost
