"""Unstructured pruning on MNIST-1D: fewer nonzero weights at the same val accuracy.

For each model (an MLP 40-512-512-10 and the CNN of examples/mnist1d_cnn.yaml as of this work, both
in compress_recipes.py) and each seed, the same recipe trains twice from the same initialization:
dense, and with the ``prune`` method (global magnitude, Zhu & Gupta's cubic schedule: dense for the
first 30% of training, ramped to the target sparsity by 80%, then fine-tuned with the masks fixed).
The figures are the reduction of nonzero Linear/Conv weights (dense count / pruned nonzero count)
and the val-accuracy difference pruned − dense, paired by seed, as a mean with its 95% t-interval
(tunelab.study.stats).

    .venv/bin/python benchmarks/compress_unstructured.py [--seeds 3] [--sparsity 0.93] [--threads 1]

``--set`` overrides both recipes, ``--dense-set`` the dense reference only (to compare a pruning
recipe with its own settings against the dense recipe as it was), ``--first-seed`` picks seeds
not used while choosing those settings.

Goal: >= 12x fewer nonzero weights at <= 0.3 points of val-accuracy loss (mean over seeds).
The runs for it (settings chosen on seeds 0-4, figures on seeds 5 and up):

    # CNN: 60 epochs, pruned from 20% to 60% of training
    ... --models cnn --seeds 8 --first-seed 5 --sparsity 0.92 --begin 0.2 --end 0.6 --set train.epochs=60
    # MLP 40-512-512-10: the recipe as it is (the default schedule, 30% -> 80% of training)
    ... --models mlp --seeds 10 --first-seed 5 --sparsity 0.92
"""

from __future__ import annotations

import argparse
import time

import torch
from compress_recipes import CNN, MLP

import tunelab
from tunelab.compress.prune import count_nonzero_params, weight_sparsity
from tunelab.data import load_data
from tunelab.study.stats import paired_difference, summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sparsity", type=float, default=0.93)
    ap.add_argument("--begin", type=float, default=0.3)
    ap.add_argument("--end", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument(
        "--set", action="append", default=[], help="recipe override for every model, e.g. train.epochs=60"
    )
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument(
        "--dense-set",
        action="append",
        default=[],
        help="override for the dense reference only (compare against another dense recipe)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cnn = tunelab.load_recipe(CNN)
    recipes = {"mlp": tunelab.load_recipe(MLP), "cnn": cnn}
    data = load_data(cnn.data)
    common = ["train.efficiency=false", "train.tensorboard=false", f"train.threads={args.threads}", *args.set]
    prune = (
        f"methods.prune={{sparsity: {args.sparsity}, begin: {args.begin}, end: {args.end}, "
        "scope: global, schedule: cubic}"
    )
    print(
        f"overrides {args.set or '-'}; dense reference only {args.dense_set or '-'}; "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
    )
    print(
        f"MNIST-1D, {args.seeds} seeds, target sparsity {args.sparsity} (global, cubic {args.begin}->"
        f"{args.end}), threads {args.threads}"
    )
    for name in args.models.split(","):
        base = recipes[name]
        dense_acc, pruned_acc, dense_test, pruned_test = [], [], [], []
        t0 = time.perf_counter()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            d = tunelab.fit(
                base, data=data, save=False, overrides=[*common, f"train.seed={seed}", *args.dense_set]
            )
            # prune listed first (before early stopping / EMA if a recipe has them): the rule of
            # methods.prune; these recipes have neither, so the order is only for the example.
            p = tunelab.fit(base, data=data, save=False, overrides=[*common, f"train.seed={seed}", prune])
            dense_acc.append(d.val["accuracy"])
            pruned_acc.append(p.val["accuracy"])
            dense_test.append(d.test["accuracy"])
            pruned_test.append(p.test["accuracy"])
            ws_d, ws_p = weight_sparsity(d.model), weight_sparsity(p.model)
            nz_d, nz_p = count_nonzero_params(d.model), count_nonzero_params(p.model)
            print(
                f"  {name} seed {seed}: val dense {d.val['accuracy']:.4f} pruned {p.val['accuracy']:.4f} · "
                f"weights {ws_d['weights']:,} -> nonzero {ws_p['weights'] - ws_p['zeros']:,} · "
                f"all params nonzero {nz_d['nonzero']:,} -> {nz_p['nonzero']:,}",
                flush=True,
            )
        kept = ws_p["weights"] - ws_p["zeros"]
        diff = paired_difference(pruned_acc, dense_acc)
        tdiff = paired_difference(pruned_test, dense_test)
        sd, sp = summarize(dense_acc), summarize(pruned_acc)
        print(
            f"{name}: nonzero Linear/Conv weights {ws_p['weights']:,} -> {kept:,} "
            f"({ws_p['weights'] / kept:.1f}x fewer; all parameters {nz_d['params']:,} -> "
            f"{nz_p['nonzero']:,}, {nz_d['params'] / nz_p['nonzero']:.1f}x)\n"
            f"  val accuracy dense {sd.mean:.4f} ± {sd.std:.4f}, pruned {sp.mean:.4f} ± {sp.std:.4f} (std)\n"
            f"  Δ val (pruned − dense, paired) {100 * diff.estimate:+.2f} points, 95% CI "
            f"[{100 * diff.ci_low:+.2f}, {100 * diff.ci_high:+.2f}] · Δ test {100 * tdiff.estimate:+.2f} "
            f"[{100 * tdiff.ci_low:+.2f}, {100 * tdiff.ci_high:+.2f}] · {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
