"""Data-parallel training on ``torch.distributed``: the process group of one ``fit`` and what the
loop needs of it (the shard of a batch, metric reductions, rank 0's choices shared).

tunelab does not launch processes itself: ``torchrun`` (``torch.distributed.run``) starts them and
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment;
``tunelab train --nproc N`` calls the same launcher in-process. ``fit`` reads that environment,
joins the group (NCCL on GPUs, one GPU per process; gloo on the CPU) and leaves it when done.

The semantics, as the loop applies them:

* ``train.batch_size`` is the global batch: each of N processes trains on batch/N samples of it.
  Every process draws the same seeded permutation and takes the strided slice ``rank::N`` of each
  micro-batch (DistributedSampler's rule), so the samples of a step are those one process would
  use with the same batch: results are comparable across N.
* Each process weights its loss by its share of the step's samples (times N, since DDP averages
  the gradients over the N processes): a step whose samples do not split evenly still gets the
  gradient of the mean over all of them.
* Validation runs on rank 0, and its metrics are broadcast: early stopping, the monitor and a
  plateau schedule read the same numbers on every rank (they must make the same choice, or the
  ranks would fall out of step and hang in the next collective). The weights are identical on
  every rank (each applies the same all-reduced gradient), so rank 0's figures are everyone's;
  evaluating once costs N times less compute than evaluating everywhere, and metrics such as F1
  do not decompose into per-shard sums.
* Batch norm normalizes with per-process batch statistics (batch/N samples) by default. Its
  running statistics are averaged over the processes after every step (``BufferSync``), so every
  rank holds the same model (and EMA, which averages them, the same average): the running mean is
  then exactly one process's over the global batch; the running variance misses the spread between
  the shards' means (small for shuffled shards). ``train.sync_batch_norm`` normalizes with the
  statistics of the global batch instead: ``nn.SyncBatchNorm`` on GPUs, tunelab's
  ``CPUSyncBatchNorm`` on the CPU (PyTorch has no CPU kernel; ``tunelab.sync_batch_norm``). Then 2
  processes train what 1 process trains, up to the order of float additions.
* Randomness: everything up to the first step draws alike on every rank from ``train.seed`` (the
  model's init, the methods' setup); then each rank gets a stream of its own (``seed_rank``), so
  dropout masks, augmentations and mixup partners are independent draws on each shard, as they
  are for the samples of one process's batch. What must agree needs no shared stream: the data
  order has its own generator, seeded alike; every rank applies the same all-reduced gradient;
  choices read rank 0's broadcast metrics; no method draws to change weights or make a choice
  after setup (text_augment keeps its own generator, seeded alike on every rank). ``last.pt``
  holds every rank's random state (gathered to rank 0, which writes) and each rank restores its
  own, so a resumed run stays exact. One process is untouched: the same draws as before.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from tunelab import sync_batch_norm
from tunelab.errors import RecipeError, TunelabError

__all__ = [
    "ONE",
    "BufferSync",
    "Dist",
    "current",
    "device_for",
    "gather_to_main",
    "local_main_first",
    "seed_rank",
    "session",
    "shard",
    "wrap_model",
]

# A collective that waits longer than this has lost a peer: fail instead of hanging forever. Long
# enough for rank 0's validation and checkpoint writes, which the other ranks wait for.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Dist:
    """This process's place in the group: rank, number of processes and local (per-node) rank."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run directory and prints."""
        return self.rank == 0


ONE = Dist()  # a single process: no group


def _env_dist() -> Dist:
    env = os.environ
    return Dist(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def current() -> Dist:
    """The group this process is in (rank 0 of 1 when none)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist()


def device_for(name: str, where: Dist) -> torch.device | None:
    """Under DDP, the device of this process for ``train.device`` (None: not distributed).

    ``auto`` or ``cuda`` gives each process the GPU of its local rank; ``cpu`` stays the CPU.
    """
    if not where.active:
        return None
    if name == "cpu":
        return torch.device("cpu")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        if where.local_rank >= torch.cuda.device_count():
            raise TunelabError(
                f"process {where.local_rank} of this node has no GPU ({torch.cuda.device_count()} visible): "
                "start at most one process per GPU (--nproc)"
            )
        return torch.device("cuda", where.local_rank)
    if name == "auto":
        return torch.device("cpu")
    raise RecipeError("train.device", name, "under DDP use auto, cuda (one GPU per process) or cpu")


@contextlib.contextmanager
def session(device_name: str) -> Iterator[Dist]:
    """Join the process group torchrun described in the environment, for one ``fit``.

    Without torchrun (``WORLD_SIZE`` unset or 1), or when the caller already joined a group, this
    changes nothing. Leaving: a ``barrier`` before ``destroy_process_group`` when all went well
    (without it, gloo processes often aborted at teardown with "terminate called without an
    active exception" after the work was done); after an error, no barrier (the others may never
    reach it: torchrun stops them when this process exits non-zero).
    """
    where = _env_dist()
    if not where.active or dist.is_initialized():
        yield current()
        return
    device = device_for(device_name, where)
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and broadcast_object_list use the current device
    dist.init_process_group(backend, timeout=TIMEOUT)
    ok = False
    try:
        yield current()
        ok = True
    finally:
        if ok:
            dist.barrier()
        _let_gloo_finish()
        dist.destroy_process_group()


@contextlib.contextmanager
def local_main_first(where: Dist) -> Iterator[None]:
    """Run the block on each node's local rank 0 first, then on the other ranks (a barrier between).

    For loading the data: the first process of a node builds the caches (a decoded image folder, a
    CSV's or an ``.npz``'s streaming cache) and the others then read them, instead of every process
    building the same cache at once (twice the work on the same cores; the last rename loses,
    harmlessly). Each node's first process builds, so nodes that do not share a file system each
    get their own cache. When the block raises an ``Exception`` on a first process, the others are
    still let through: they meet the same error themselves (a DataError is the same on every rank)
    instead of waiting at the barrier until torchrun stops them. Nothing changes in one process.
    """
    if not where.active:
        yield
        return
    first = where.local_rank == 0
    if not first:
        dist.barrier()
    try:
        yield
    except Exception:
        if first:
            dist.barrier()
        raise
    if first:
        dist.barrier()


def _let_gloo_finish() -> None:
    """Release the GIL for a moment after the last collective (hand-written: a PyTorch race).

    Gloo's worker thread destroys a finished collective's work after the caller has already seen it
    complete, and that drops Python-owned tensors, which needs the GIL. If the main thread tears
    the process group down meanwhile (DDP's reducer freed with the GIL held joins that thread), the
    two wait for each other forever: seen once in ~20 two-process runs, a rank hung at exit with its
    work done (gdb: ~ProcessGroupGloo joining pt_gloo_runloop, itself waiting for the GIL in
    ~AsyncBarrierWork). Sleeping releases the GIL to the waiting thread, which then finishes.
    """
    import time

    time.sleep(0.05)


def seed_rank(seed: int, where: Dist) -> None:
    """Under DDP, give this rank a random stream of its own for training-time draws (dropout,
    augmentation, mixup): seeds Python, NumPy and torch (CPU and CUDA) from ``(seed, rank)``.

    Called once the model is built and the methods are set up, which draw alike on every rank.
    Composer seeds each rank with ``seed + rank``; rank r of seed s would then replay rank 0 of
    seed s + r, so a study of DDP runs on seeds 0..4 would share masks between its runs. NumPy's
    ``SeedSequence`` hashes the pair instead: independent streams for every (seed, rank). One
    process (no group) is left as it is: its draws are those of a run before DDP existed.
    """
    if not where.active:
        return
    sequence = np.random.SeedSequence([seed % 2**64, where.rank])
    python_seed, torch_seed = (int(v) for v in sequence.generate_state(2, dtype=np.uint64))
    random.seed(python_seed)
    np.random.seed(sequence.generate_state(4))  # 4 x uint32 words of the same hash
    torch.manual_seed(torch_seed)  # every CUDA device too


def gather_to_main(value: Any, where: Dist) -> list[Any] | None:
    """Every rank's ``value`` (a picklable object), in rank order, on rank 0; None elsewhere."""
    if not where.active:
        return [value]
    gathered: list[Any] | None = [None] * where.world if where.main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def shard(index: Tensor, where: Dist) -> Tensor:
    """This rank's samples of a micro-batch's indices: the strided slice ``rank::world``."""
    return index[where.rank :: where.world] if where.active else index


def check_batch(batch_size: int, where: Dist, full_batch: bool) -> None:
    """The global batch must split evenly over the processes."""
    if where.active and not full_batch and batch_size % where.world:
        raise RecipeError(
            "train.batch_size",
            batch_size,
            f"is the global batch, split over {where.world} processes: use a multiple of {where.world} "
            f"(e.g. {batch_size - batch_size % where.world or where.world})",
        )


def wrap_model(model: nn.Module, methods: Sequence[Any], device: torch.device, sync_bn: bool) -> nn.Module:
    """``model`` (trained in place) inside DistributedDataParallel, after refusing what DDP breaks.

    A method that cannot be correct under DDP says why in its ``ddp_refusal``; it is refused here,
    before the first step.
    """
    for method in methods:
        reason = getattr(method, "ddp_refusal", None)
        if reason:
            raise RecipeError(f"methods.{method.name}", "DDP", reason)
    if sync_bn:
        # Converts the BN children in place (same Parameter objects: the optimizer stays valid).
        # PyTorch's SyncBatchNorm has no CPU kernel: tunelab's own (tunelab.sync_batch_norm) there.
        if device.type == "cuda":
            converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            converted = sync_batch_norm.convert(model)
        if converted is not model:
            raise RecipeError("train.sync_batch_norm", True, "the model is a bare BatchNorm layer")
    ids = [device.index] if device.type == "cuda" else None
    # Buffers are copied from rank 0 once, at the start, then averaged after each step (BufferSync)
    # rather than broadcast from rank 0 before each forward.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


_SYNCED = (sync_batch_norm.CPUSyncBatchNorm, nn.SyncBatchNorm)


class BufferSync:
    """Average the model's floating-point buffers over the processes (a step's last act).

    DDP's own ``broadcast_buffers`` copies rank 0's buffers at the start of each forward, which
    leaves them different on every rank after it; averaging after the step keeps the ranks' models
    identical at every hook and checkpoint. Integer buffers (BN's batch counter) agree already.
    """

    def __init__(self, model: nn.Module, world: int) -> None:
        # A synchronized batch norm's running statistics are computed from the global batch, the
        # same on every rank already: averaging them again would cost an all-reduce for nothing.
        synced = {id(b) for m in model.modules() if isinstance(m, _SYNCED) for b in m.buffers()}
        self.buffers = [b for b in model.buffers() if b.is_floating_point() and id(b) not in synced]
        self.world = world

    def __bool__(self) -> bool:
        return bool(self.buffers)

    def __call__(self) -> None:
        works = [dist.all_reduce(b, op=dist.ReduceOp.SUM, async_op=True) for b in self.buffers]
        for work, buffer in zip(works, self.buffers, strict=True):
            work.wait()  # type: ignore[union-attr]
            buffer.div_(self.world)


def all_mean(value: Tensor, where: Dist) -> Tensor:
    """The mean of ``value`` over the ranks (itself when not distributed)."""
    if not where.active:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / where.world


def from_main(value: Any, where: Dist) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; itself when not distributed)."""
    if not where.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
