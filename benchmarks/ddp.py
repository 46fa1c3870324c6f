"""Training throughput of 1 vs N data-parallel processes (DDP) on the MNIST-1D example.

Runs ``tunelab train examples/mnist1d_cnn.yaml --nproc N`` for each N (torchrun, gloo on the CPU,
NCCL on GPUs with ``--device cuda``) with the same global batch, and prints training samples per
second (train samples x epochs / train_seconds, which excludes start-up and the final evaluation)
and the final val accuracy. Each process gets ``cores // N`` threads (torchrun's OMP_NUM_THREADS=1
is replaced, and threads wait passively), so N processes use the same cores as one.

    .venv/bin/python benchmarks/ddp.py [--nproc 1 2] [--epochs 3] [--device cpu]
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


def run(nproc: int, epochs: int, device: str, out: Path) -> dict:
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
    ):
        argv += ["--set", s]
    # Threads that spin while waiting burn the cores the other process needs (as search workers do).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run(argv, check=True, env=env, cwd=ROOT)
    return json.loads((out / "result.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
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
