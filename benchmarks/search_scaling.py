"""Search throughput: K local workers on this machine against one, threads split fairly.

One worker process gets every core as torch threads; K workers get ``cores // K`` each (what
``tunelab search --workers K`` does). Each run is a fresh study of the same small MNIST-1D CNN
recipe, ``--trials`` trials, random sampler; the searched parameters (lr, weight decay, dropout)
do not change the cost of a trial, so every trial does the same work. Runs alternate (1 worker,
K workers, 1 worker, ...) so machine noise hits both alike.

Two figures per run: trials per hour over the span of the trials themselves (first trial start to
last trial end, read from the storage: what a long search sees) and over the whole wall time
(including the workers' start-up: Python + torch imports, once per process).

    .venv/bin/python benchmarks/search_scaling.py [--trials 20] [--repeats 3] [--workers 2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tunelab.study.search.run import prepare_search
from tunelab.study.search.workers import available_cores, run_local_workers
from tunelab.study.storage import open_storage


def recipe(epochs: int) -> dict:
    return {
        "data": {"name": "mnist1d"},
        "model": {"name": "cnn1d", "channels": [16, 32], "hidden": [64], "dropout": 0.1},
        "optimizer": {"name": "adamw", "lr": 0.003},
        "train": {"epochs": epochs, "batch_size": 128, "efficiency": False, "tensorboard": False},
        "search": {
            "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2},
            "optimizer.weight_decay": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
            "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
        },
    }


def one_run(
    workers: int, trials: int, epochs: int, folder: Path, tag: str, threads: int | None = None
) -> tuple[float, float, float]:
    """(trials/hour over the trials' span, trials/hour over the wall time, median seconds of
    training per trial) of one fresh study. The last shows interference: the same trial takes
    longer when other processes take the cores."""
    url = f"sqlite:///{folder / f'{tag}.db'}"
    s = prepare_search(recipe(epochs), trials=trials, sampler="random", storage=url, study_name=tag)
    t0 = time.perf_counter()
    codes = run_local_workers(s.study, s.storage, workers, base_seed=0, existing=0, threads=threads)
    wall = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"{tag}: worker exit codes {codes}")
    study = optuna.load_study(study_name=tag, storage=open_storage(url, heartbeat=False))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == trials, f"{tag}: {len(done)} complete trials, expected {trials}"
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    train = statistics.median(t.user_attrs["train_seconds"] for t in done)
    return trials / span * 3600, trials / wall * 3600, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument(
        "--reference",
        action="store_true",
        help="also run 1 worker with the K workers' thread count (process scaling alone)",
    )
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cores = available_cores()
    k = args.workers
    print(
        f"MNIST-1D CNN [16, 32] / [64], {args.epochs} epochs, batch 128, {args.trials} trials per run, "
        f"{cores} cores; 1 worker x {cores} threads vs {k} workers x {max(1, cores // k)} threads; "
        f"{args.repeats} pairs; load average before {os.getloadavg()[0]:.2f}"
    )
    one, many, ref = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            one.append(one_run(1, args.trials, args.epochs, Path(tmp), f"w1-{i}"))
            many.append(one_run(k, args.trials, args.epochs, Path(tmp), f"w{k}-{i}"))
            line = (
                f"pair {i}: trials/hour (span) 1 worker {one[-1][0]:,.0f}, {k} workers {many[-1][0]:,.0f} "
                f"-> x{many[-1][0] / one[-1][0]:.2f}; (wall) {one[-1][1]:,.0f} vs {many[-1][1]:,.0f} "
                f"-> x{many[-1][1] / one[-1][1]:.2f}; s/trial training {one[-1][2]:.2f} vs {many[-1][2]:.2f}"
            )
            if args.reference:
                ref.append(one_run(1, args.trials, args.epochs, Path(tmp), f"ref-{i}", max(1, cores // k)))
                line += (
                    f"; 1 worker x {max(1, cores // k)} thread(s): {ref[-1][0]:,.0f} (span), "
                    f"{ref[-1][2]:.2f} s/trial"
                )
            print(line + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    span = [m[0] / o[0] for o, m in zip(one, many, strict=True)]
    wall = [m[1] / o[1] for o, m in zip(one, many, strict=True)]
    print(
        f"{k} workers / 1 worker, trials per hour: median x{statistics.median(span):.2f} over the "
        f"trials' span (min {min(span):.2f}, max {max(span):.2f}); median x{statistics.median(wall):.2f} "
        f"over wall time with start-up; load average after {os.getloadavg()[0]:.2f}"
    )
    if ref:
        proc = [m[0] / r[0] for r, m in zip(ref, many, strict=True)]
        print(
            f"{k} workers / 1 worker at the same {max(1, cores // k)} thread(s) per process (process "
            f"scaling alone): median x{statistics.median(proc):.2f}"
        )


if __name__ == "__main__":
    main()
