"""Structured pruning on MNIST-1D: measured CPU throughput of a narrower model at the same accuracy.

Per seed: the recipe trains a dense model; then, from those weights, (a) the dense model is
fine-tuned ``--finetune`` more epochs (the fair reference: the same extra training), and (b) the
fraction ``--ratio`` of channels/neurons is removed with Torch-Pruning and the narrower model is
fine-tuned the same epochs. Val accuracy: pruned − dense, paired by seed (mean, 95% CI).

Timing (seed 0's models, threads fixed): throughput at batch 1024 and latency at batch 1, dense
and pruned alternated in ``--rounds`` rounds in this one process (tunelab.study.compress's
``measure_interleaved``); the figure is the ratio of the medians. At batch 1 a model this small is
dominated by per-call overhead (Python, dispatch, allocation), so the script also times each
pruned layer alone on its own input and reports which share of the model's batch-1 time those
layers are.

    .venv/bin/python benchmarks/compress_structured.py [--model cnn] [--ratio 0.5] [--seeds 3]

``--in-loop`` compares instead the recipe as it is against the same recipe with the
``channel_prune`` method (channels chosen at ``--at`` of training, the rest of training
fine-tunes the narrow model): the same epochs for both, so neither gets extra training.

    .venv/bin/python benchmarks/compress_structured.py --in-loop --ratio 0.5 --at 0.5 --seeds 5

Goal: >= 2x throughput at batch 1024, <= 0.5 points of val-accuracy loss.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from compress_recipes import CNN, MLP
from torch import Tensor, nn

import tunelab
from tunelab.compress.structured import prune_channels
from tunelab.data import load_data
from tunelab.metrics.efficiency import flops, latency
from tunelab.study.compress import finetune_recipe, measure_interleaved
from tunelab.study.stats import paired_difference


def layer_share(model: nn.Module, one: Tensor, budget_s: float) -> tuple[float, float]:
    """(ms of the Linear/Conv layers timed alone on their batch-1 inputs, ms of the whole model)."""
    inputs: dict[nn.Module, Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: inputs.setdefault(mod, args[0].detach()))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))
    ]
    with torch.no_grad():
        model.eval()(one)
    for h in hooks:
        h.remove()
    layers = sum(latency(m, x, budget_s=budget_s)["median_ms"] for m, x in inputs.items())
    return layers, latency(model, one, budget_s=budget_s)["median_ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--finetune", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--in-loop", action="store_true", help="recipe vs recipe + channel_prune, same epochs")
    ap.add_argument("--at", type=float, default=0.5, help="--in-loop: when channel_prune prunes")
    ap.add_argument("--set", action="append", default=[], help="recipe override, e.g. train.epochs=40")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = tunelab.load_recipe(CNN) if args.model == "cnn" else tunelab.load_recipe(MLP)
    data = load_data(recipe.data)
    common = ["train.efficiency=false", "train.tensorboard=false", f"train.threads={args.threads}", *args.set]
    gen = torch.Generator().manual_seed(0)
    one = torch.randn((1, *data.input_shape), generator=gen)
    big = torch.randn((args.batch, *data.input_shape), generator=gen)
    how = f"channel_prune at {args.at} of training" if args.in_loop else f"fine-tuning {args.finetune} epochs"
    print(
        f"MNIST-1D {args.model}, channel ratio {args.ratio}, {args.seeds} seeds, {how}, "
        f"threads {args.threads}",
        flush=True,
    )
    trained_acc, dense_acc, pruned_acc, models = [], [], [], {}
    for seed in range(args.seeds):
        if args.in_loop:
            method = f"methods.channel_prune={{ratio: {args.ratio}, at: {args.at}}}"
            dense = tunelab.fit(recipe, data=data, save=False, overrides=[*common, f"train.seed={seed}"])
            pruned = tunelab.fit(
                recipe, data=data, save=False, overrides=[*common, f"train.seed={seed}", method]
            )
            trained_acc.append(dense.val["accuracy"])
            dense_acc.append(dense.val["accuracy"])
            pruned_acc.append(pruned.val["accuracy"])
            print(
                f"  seed {seed}: val dense {dense.val['accuracy']:.4f} · pruned {pruned.val['accuracy']:.4f}"
            )
            if seed == 0:
                models = {"dense": dense.model.eval(), "pruned": pruned.model.eval()}
            continue
        base = tunelab.fit(recipe, data=data, save=False, overrides=[*common, f"train.seed={seed}"])
        ft = finetune_recipe(base.recipe, args.finetune, seed, args.threads, None)
        dense = tunelab.fit(ft, model=copy.deepcopy(base.model), data=data, save=False)
        narrow = copy.deepcopy(base.model)
        prune_channels(narrow, torch.cat([one, one]), args.ratio)
        pruned = tunelab.fit(ft, model=narrow, data=data, save=False)
        trained_acc.append(base.val["accuracy"])
        dense_acc.append(dense.val["accuracy"])
        pruned_acc.append(pruned.val["accuracy"])
        print(
            f"  seed {seed}: val trained {base.val['accuracy']:.4f} · +{args.finetune} epochs dense "
            f"{dense.val['accuracy']:.4f} · pruned {pruned.val['accuracy']:.4f}",
            flush=True,
        )
        if seed == 0:
            models = {"dense": dense.model.eval(), "pruned": pruned.model.eval()}
    diff = paired_difference(pruned_acc, dense_acc)
    vs_trained = paired_difference(pruned_acc, trained_acc)
    d, p = models["dense"], models["pruned"]
    n_d, n_p = sum(x.numel() for x in d.parameters()), sum(x.numel() for x in p.parameters())
    t0 = time.perf_counter()
    timed = measure_interleaved(models, one, big, rounds=args.rounds, budget_s=0.4 * args.rounds)
    thr = timed["pruned"]["throughput"] / timed["dense"]["throughput"]
    lat = timed["dense"]["latency_ms"] / timed["pruned"]["latency_ms"]
    share_d = layer_share(d, one, 1.0)
    share_p = layer_share(p, one, 1.0)
    print(
        f"parameters {n_d:,} -> {n_p:,} ({n_d / n_p:.2f}x fewer) · FLOPs/sample {flops(d, one):,} -> "
        f"{flops(p, one):,} ({flops(d, one) / flops(p, one):.2f}x fewer)\n"
        f"throughput at batch {args.batch}: dense {timed['dense']['throughput']:,.0f}/s, pruned "
        f"{timed['pruned']['throughput']:,.0f}/s -> {thr:.2f}x\n"
        f"latency at batch 1 (median / p95 ms): dense {timed['dense']['latency_ms']:.4f} / "
        f"{timed['dense']['latency_p95_ms']:.4f}, pruned {timed['pruned']['latency_ms']:.4f} / "
        f"{timed['pruned']['latency_p95_ms']:.4f} -> {lat:.2f}x faster\n"
        f"batch-1 time in the Linear/Conv layers (timed alone): dense {share_d[0]:.4f} of "
        f"{share_d[1]:.4f} ms "
        f"({100 * share_d[0] / share_d[1]:.0f}%), pruned {share_p[0]:.4f} of {share_p[1]:.4f} ms "
        f"({100 * share_p[0] / share_p[1]:.0f}%)\n"
        f"Δ val accuracy (pruned − dense, {'same epochs' if args.in_loop else 'both fine-tuned'}, "
        f"paired over {diff.n} seeds): "
        f"{100 * diff.estimate:+.2f} points, 95% CI [{100 * diff.ci_low:+.2f}, {100 * diff.ci_high:+.2f}]"
        + (
            ""
            if args.in_loop
            else f"; versus the dense model as trained (no extra epochs): {100 * vs_trained.estimate:+.2f} "
            f"points, 95% CI [{100 * vs_trained.ci_low:+.2f}, {100 * vs_trained.ci_high:+.2f}]"
        )
        + f" · timing {time.perf_counter() - t0:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
