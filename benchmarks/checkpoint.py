"""What resumability costs: the time spent writing last.pt per epoch, as a share of the epoch.

Trains examples/mnist1d_cnn.yaml (its model, optimizer, schedule and methods) into a run directory
for a few epochs, with last.pt written at every epoch end as in every run, and reads the time of
each write (``RunResult.efficiency["checkpoint_seconds"]``, measured around ``write_last``: the
state_dict, serialization, checksum, write, fsync and rename) against the epoch's time (the
history's ``seconds``: training and evaluation, the write itself comes after). Goal: at most 2% of
an epoch.

    .venv/bin/python benchmarks/checkpoint.py [--epochs 5] [--repeats 3]

It also prints the size of last.pt and the time of ``write_last`` alone, repeated on the final
state, so a slow disk shows apart from a slow serialization.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import tunelab
from tunelab.data import load_data
from tunelab.resume import LAST, read_last, write_last

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="runs; the figure is the median over them")
    args = ap.parse_args()
    recipe = tunelab.load_recipe(
        ROOT / "examples" / "mnist1d_cnn.yaml",
        [f"train.epochs={args.epochs}", "train.efficiency=false", "train.tensorboard=false"],
    )
    data = load_data(recipe.data, recipe.preprocess)
    shares, writes, epochs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            out = Path(tmp) / f"run{i}"
            r = tunelab.fit(recipe, data=data, out=out)
            per_write = r.efficiency["checkpoint_seconds"] / r.epochs  # one write per epoch end
            epoch = statistics.median(h["seconds"] for h in r.history)
            shares.append(per_write / epoch)
            writes.append(per_write)
            epochs.append(epoch)
        size = (out / LAST).stat().st_size
        checkpoint = read_last(out / LAST)
        alone = []
        for _ in range(10):
            t0 = time.perf_counter()
            write_last(out / LAST, checkpoint)
            alone.append(time.perf_counter() - t0)
    print(
        f"{recipe.data.name} {recipe.model.name}, {args.epochs} epochs x {args.repeats} runs, "
        f"threads {torch.get_num_threads()}; last.pt {size / 1e6:.2f} MB"
    )
    print(
        f"last.pt write per epoch {statistics.median(writes) * 1000:.1f} ms, epoch "
        f"{statistics.median(epochs):.2f} s: {statistics.median(shares):.2%} of an epoch "
        f"(runs: {', '.join(f'{s:.2%}' for s in shares)}; goal <= 2%)"
    )
    print(f"write_last alone on the final state: median {statistics.median(alone) * 1000:.1f} ms over 10")


if __name__ == "__main__":
    main()
