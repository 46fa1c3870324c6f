"""Training throughput of 1 vs N data-parallel processes (DDP) on the MNIST-1D example.

Runs ``tunelab train examples/mnist1d_cnn.yaml --nproc N`` for each N (torchrun, gloo on the CPU,
NCCL on GPUs with ``--device cuda``) with the same global batch, and prints training samples per
second (train samples x epochs / train_seconds, which excludes start-up and the final evaluation)
and the final val accuracy. Each process gets ``cores // N`` threads (torchrun's OMP_NUM_THREADS=1
is replaced, and threads wait passively), so N processes use the same cores as one.

    .venv/bin/python benchmarks/ddp.py [--nproc 1 2] [--epochs 3] [--device cpu]

``--parity``: the 1-vs-2-process bar on the real example (dropout, batch norm, signal_augment, TTA)
over ``--seeds``: 1 process, 2 processes with per-process batch norm and 2 with
``train.sync_batch_norm``, each seed's 2-process val accuracy paired with its 1-process one (mean
difference, 95% paired-t interval from ``tunelab.study.stats``) and the time per epoch.

    .venv/bin/python benchmarks/ddp.py --parity --seeds 0 1 2 3 4 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(nproc: int, epochs: int, device: str, out: Path, extra: tuple[str, ...] = ()) -> dict:
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // nproc)
    argv = [sys.executable, "-m", "tunelab", "train", str(ROOT / "examples" / "mnist1d_cnn.yaml")]
    argv += ["--nproc", str(nproc), "--out", str(out), "--quiet", "--no-report"]
    for s in (
        f"train.epochs={epochs}",
        f"train.device={device}",
        f"train.threads={threads}",
        "train.efficiency=false",
        "train.tensorboard=false",
        *extra,
    ):
        argv += ["--set", s]
    # Threads that spin while waiting burn the cores the other process needs (as search workers do).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run(argv, check=True, env=env, cwd=ROOT)
    return json.loads((out / "result.json").read_text())


# The parity mode's arms: (label, processes, recipe overrides).
ARMS = (
    ("1 process", 1, ()),
    ("2 processes, per-process BN", 2, ("train.sync_batch_norm=false",)),
    ("2 processes, sync BN", 2, ("train.sync_batch_norm=true",)),
)


def parity(seeds: list[int], epochs: int, device: str) -> None:
    """Val accuracy of each arm over ``seeds``, paired with the 1-process run of the same seed."""
    from tunelab.study.stats import paired_difference

    acc: dict[str, list[float]] = {label: [] for label, _, _ in ARMS}
    epoch_s: dict[str, list[float]] = {label: [] for label, _, _ in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for i, (label, nproc, extra) in enumerate(ARMS):
                r = run(nproc, epochs, device, Path(tmp) / f"s{seed}-{i}", (f"train.seed={seed}", *extra))
                acc[label].append(r["val"]["accuracy"])
                epoch_s[label].append(r["train_seconds"] / r["epochs"])
                print(
                    f"seed {seed}  {label:30s} val acc {acc[label][-1]:.4f}  {epoch_s[label][-1]:.2f} s/epoch"
                )
    base = ARMS[0][0]
    print(f"\nval accuracy over seeds {seeds} ({epochs} epochs), and the paired difference from 1 process:")
    for label, _, _ in ARMS:
        mean = sum(acc[label]) / len(acc[label])
        seconds = sum(epoch_s[label]) / len(epoch_s[label])
        line = f"{label:30s} mean {100 * mean:6.2f}%  {seconds:5.2f} s/epoch"
        if label != base:
            d = paired_difference(acc[label], acc[base])
            line += (
                f"  diff {100 * d.mean:+.2f} points, 95% CI [{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]"
                f" ({d.test}, p={d.p_value:.2g})"
            )
        print(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--parity", action="store_true", help="1 vs 2 processes (per-process or sync BN) over seeds"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = p.parse_args()
    if a.parity:
        parity(a.seeds, a.epochs, a.device)
        return
    print(
        f"examples/mnist1d_cnn.yaml, {a.epochs} epochs, global batch 64, {a.device}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.nproc:
            r = run(n, a.epochs, a.device, Path(tmp) / f"n{n}")
            samples = 3200 * r["epochs"]  # MNIST-1D: 3200 train samples
            print(
                f"{n} process(es): {samples / r['train_seconds']:8.0f} train samples/s, "
                f"{r['train_seconds'] / r['epochs']:.2f} s/epoch, val acc {r['val']['accuracy']:.4f}"
            )


if __name__ == "__main__":
    main()
