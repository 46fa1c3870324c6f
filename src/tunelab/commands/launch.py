"""``--nproc`` and the multi-node options: start a command's DDP processes through torchrun.

tunelab does not launch processes itself: ``tunelab train RECIPE --nproc 2`` runs torch's elastic
launcher (``torch.distributed.run``, the code behind ``torchrun``) in this process, which starts
``python -m tunelab train RECIPE ...`` once per process, watches them, and stops them all when
one fails. ``torchrun --nproc-per-node 2 -m tunelab train RECIPE`` is the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tunelab.commands._common import EXIT_RUN_FAILED
from tunelab.errors import TunelabError


def add_launch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data-parallel training (DDP, through torchrun)")
    g.add_argument(
        "--nproc", type=int, default=1, metavar="N", help="processes on this machine (one per GPU)"
    )
    g.add_argument("--nnodes", type=int, default=1, metavar="M", help="machines taking part (default 1)")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this machine's rank, 0..M-1")
    g.add_argument("--master-addr", metavar="HOST", help="address of the machine of rank 0 (multi-node)")
    g.add_argument("--master-port", type=int, default=29500, metavar="PORT", help="its free TCP port")


def in_worker() -> bool:
    """True inside a process torchrun started (it sets LOCAL_RANK and the group's size)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def wants_launch(args: argparse.Namespace) -> bool:
    """Whether the options ask for more than this one process (and torchrun has not started us)."""
    if args.nproc < 1 or args.nnodes < 1:
        raise TunelabError(f"--nproc {args.nproc} --nnodes {args.nnodes}: both must be at least 1")
    if args.nnodes > 1 and args.master_addr is None:
        raise TunelabError(f"--nnodes {args.nnodes}: give --master-addr HOST (the machine of --node-rank 0)")
    if not 0 <= args.node_rank < args.nnodes:
        raise TunelabError(f"--node-rank {args.node_rank}: must be in 0..{args.nnodes - 1} (--nnodes)")
    return (args.nproc > 1 or args.nnodes > 1) and not in_worker()


def torchrun_args(args: argparse.Namespace, command: Sequence[str]) -> list[str]:
    """torchrun's command line for ``python -m tunelab COMMAND...`` on ``args.nproc`` processes.

    One machine: ``--standalone`` (a local rendezvous on a free port, so runs side by side do not
    collide). Several: the static rendezvous at ``--master-addr:--master-port``, as torchrun does.
    """
    launch = [f"--nproc-per-node={args.nproc}"]
    if args.nnodes == 1 and args.master_addr is None:
        launch.append("--standalone")
    else:
        launch += [
            f"--nnodes={args.nnodes}",
            f"--node-rank={args.node_rank}",
            f"--master-addr={args.master_addr or '127.0.0.1'}",
            f"--master-port={args.master_port}",
        ]
    return [*launch, "--module", "tunelab", *command]


def launch(args: argparse.Namespace, command: Sequence[str]) -> int:
    """Run ``tunelab COMMAND...`` on the processes ``args`` ask for; the exit status of the run."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(torchrun_args(args, command)))
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else EXIT_RUN_FAILED
        print(
            f"error: DDP process {rank} exited with status {failure.exitcode}; see its message above",
            file=sys.stderr,
        )
        return code
    return 0
