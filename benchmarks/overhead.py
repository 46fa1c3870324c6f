"""Overhead of tunelab.fit against a plain PyTorch loop doing the same work.

The same MNIST-1D CNN (the model of examples/mnist1d_cnn.yaml), data in memory, same batch size
and epochs, val loss and accuracy evaluated every epoch. Runs alternate (plain, tunelab, plain,
...) in one process so that machine noise hits both alike; the figure is the median of the
per-pair wall-time ratios. Two settings: no methods, and l2 + grad_clip + label_smoothing +
early_stopping (the plain loop implements the same four by hand).

    .venv/bin/python benchmarks/overhead.py [--pairs 7] [--epochs 5] [--clock wall|cpu] [--threads N]

On a machine shared with other work, wall time measures the neighbours as much as the loop:
``--clock cpu --threads 1`` times the process's own CPU seconds (``time.process_time``) with one
torch thread, which other processes barely move (more threads would add spin-wait time).

tunelab runs with save=False and train.efficiency=false: the plain loop writes no run directory
and measures no latency, so the figure compares training work only. The cost of the run
directory (checkpoints, metrics.jsonl, TensorBoard) is printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import tunelab
from tunelab.data import load_data
from tunelab.models import build_model
from tunelab.params import split_decay

ROOT = Path(__file__).resolve().parents[1]
METHODS = [
    {"name": "l2", "weight": 1e-4},
    {"name": "grad_clip", "max_norm": 1.0},
    {"name": "label_smoothing", "eps": 0.1},
    # patience larger than the epochs: the stopping check runs every epoch but never fires, so
    # both loops run the same number of epochs.
    {"name": "early_stopping", "patience": 1000},
]


def plain_loop(recipe: tunelab.Recipe, data: tunelab.DataBundle, with_methods: bool) -> float:
    """A hand-written loop: what a careful engineer writes without a framework."""
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe.model, data.input_shape, data.num_outputs)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.optimizer.params.get("lr", 1e-3))
    decayed, _ = split_decay(model)
    x, y, xv, yv = data.x_train, data.y_train, data.x_val, data.y_val
    bs, n = recipe.train.batch_size, len(x)
    gen = torch.Generator().manual_seed(recipe.train.seed)
    best, bad = -1.0, 0
    for _ in range(recipe.train.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            out = model(x[idx])
            if with_methods:
                loss = F.cross_entropy(out, y[idx], label_smoothing=0.1)
                loss = loss + 1e-4 / 2 * sum(p.pow(2).sum() for p in decayed)
            else:
                loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if with_methods:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        with torch.inference_mode():
            out = model(xv)
            float(F.cross_entropy(out, yv))
            acc = float((out.argmax(1) == yv).float().mean())
        if with_methods:
            if acc > best:
                best, bad = acc, 0
                {k: v.clone() for k, v in model.state_dict().items()}  # what restore_best keeps
            else:
                bad += 1
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    base = tunelab.load_recipe(
        ROOT / "examples" / "mnist1d_cnn.yaml",
        overrides=[
            f"train.epochs={args.epochs}",
            "train.efficiency=false",
            "methods=[]",
            "schedule.name=constant",
            "optimizer.name=adam",
            "optimizer.lr=0.001",
            "optimizer.weight_decay=0",
        ],
    )
    data = load_data(base.data)
    print(
        f"MNIST-1D CNN, {args.epochs} epochs, batch {base.train.batch_size}, "
        f"{len(data.x_train)} train / {len(data.x_val)} val, threads {torch.get_num_threads()}, "
        f"{args.pairs} pairs, {args.clock} clock"
    )
    for label, with_methods in (("no methods", False), ("l2+grad_clip+label_smoothing+early_stopping", True)):
        recipe = tunelab.load_recipe(base, [f"methods={METHODS if with_methods else []}"])
        ratios = []
        for i in range(args.pairs + 1):  # the first pair warms up caches and is dropped
            t0 = clock()
            plain_loop(recipe, data, with_methods)
            t_plain = clock() - t0
            t0 = clock()
            tunelab.fit(recipe, data=data, save=False)
            t_tl = clock() - t0
            if i:
                ratios.append(t_tl / t_plain)
        print(
            f"{label:45s} median ratio tunelab/plain = {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
    # The run directory's own cost, measured the same way.
    import tempfile

    recipe = tunelab.load_recipe(base, ["train.efficiency=false"])
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs + 1):
            t0 = clock()
            tunelab.fit(recipe, data=data, save=False)
            t_nosave = clock() - t0
            t0 = clock()
            tunelab.fit(recipe, data=data, out=Path(tmp) / f"run{i}")
            t_save = clock() - t0
            if i:
                ratios.append(t_save / t_nosave)
    print(
        f"{'run directory (ckpt+jsonl+tensorboard)':45s} median ratio saved/unsaved = "
        f"{statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
