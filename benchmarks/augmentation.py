"""Augmentation on MNIST-1D: what it costs per epoch, and what it does to a CNN's val accuracy.

**Overhead** (always run). The CNN of ``examples/mnist1d_cnn.yaml`` trained for a few epochs
without augmentation and with ``signal_augment`` (shift + gaussian noise) plus ``mixup``, runs
alternating (none, augmented, none, ...) in one process so that machine noise hits both alike.
The figure is the median over pairs of the ratio of median epoch times (an epoch = its training
steps plus its validation pass). The first pair warms up and is dropped. The cost of the
augmentation functions alone, per batch, is printed beside it.

**Effect** (``--effect``, minutes). The same recipe over ``--seeds`` seeds (0, 1, ...) for each
variant: none, + shift, + shift + TTA, + shift + noise + mixup. For each, the mean val accuracy
with its 95% interval, and the paired difference from "none" (same seeds, same split). Model
selection reads val only; the test accuracy is printed for reference.

    .venv/bin/python benchmarks/augmentation.py [--pairs 5] [--epochs 3]
    .venv/bin/python benchmarks/augmentation.py --effect [--seeds 5]

Every run uses one thread (``train.threads=1``): the machine is shared, and one thread keeps the
two variants' timings comparable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import tunelab
from tunelab.data import load_data
from tunelab.methods.augment import augment_signals
from tunelab.methods.augment_mix import mixup

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist1d_cnn.yaml"
# Removed from the example to get the reference without augmentation (null removes a method).
AUGMENTATIONS = ("signal_augment", "mixup", "cutmix", "tta")

SHIFT = {"shift": 8}  # 8 of 40 steps, circular (the mode MNIST-1D's own translation uses)
NOISE_MIXUP = {"signal_augment": {"shift": 8, "noise": 0.05}, "mixup": {"alpha": 0.2}}
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "shift": {"signal_augment": SHIFT},
    "shift + tta": {"signal_augment": SHIFT, "tta": {"shifts": [1, 2], "shift_mode": "circular"}},
    "shift + noise + mixup": NOISE_MIXUP,
}


def recipe(methods: dict[str, Any], *overrides: str) -> tunelab.Recipe:
    """The example recipe without its augmentation, plus ``methods`` ({name: params})."""
    sets = [f"methods.{name}=null" for name in AUGMENTATIONS]
    sets += [f"methods.{name}={json.dumps(params)}" for name, params in methods.items()]
    return tunelab.load_recipe(EXAMPLE, [*sets, "train.efficiency=false", "train.threads=1", *overrides])


def overhead(pairs: int, epochs: int) -> None:
    base = recipe({}, f"train.epochs={epochs}")
    aug = recipe(NOISE_MIXUP, f"train.epochs={epochs}")
    data = load_data(base.data)
    print(
        f"Overhead: MNIST-1D CNN {base.model.params.get('channels')}, {epochs} epochs x {pairs} pairs, batch "
        f"{base.train.batch_size}, {len(data.x_train)} train / {len(data.x_val)} val, 1 thread"
    )
    ratios, t_none, t_aug = [], [], []
    for i in range(pairs + 1):  # the first pair warms up caches and is dropped
        a = tunelab.fit(base, data=data, save=False)
        b = tunelab.fit(aug, data=data, save=False)
        ea = statistics.median(h["seconds"] for h in a.history)
        eb = statistics.median(h["seconds"] for h in b.history)
        if i:
            ratios.append(eb / ea)
            t_none.append(ea)
            t_aug.append(eb)
    none_s, aug_s = statistics.median(t_none), statistics.median(t_aug)
    print(f"  epoch time: none {none_s:.3f} s, shift+noise+mixup {aug_s:.3f} s")
    print(
        f"  median ratio augmented/none = {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; goal <= 1.3)"
    )
    # The hooks alone, on one batch of the run's size.
    x = data.x_train[: base.train.batch_size]
    y = data.y_train[: base.train.batch_size]
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        xa = augment_signals(x, shift_max=8, noise=0.05)
        mixup(xa, y, 10, alpha=0.2)
    per_batch = (time.perf_counter() - t0) / reps
    steps = -(-len(data.x_train) // base.train.batch_size)
    print(
        f"  augmentation alone: {per_batch * 1e6:.0f} us per batch of {len(x)}, "
        f"{per_batch * steps * 1e3:.1f} ms per epoch ({steps} batches)"
    )


def _interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% interval of the mean (tunelab.study.stats when present, else a t-interval)."""
    try:
        from tunelab.study.stats import summarize

        s = summarize(values)
        return s.mean, s.ci_low, s.ci_high
    except ImportError:  # pragma: no cover - the study package predates this benchmark
        from scipy import stats

        m, se = statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5
        half = stats.t.ppf(0.975, len(values) - 1) * se
        return m, m - half, m + half


def _paired(variant: list[float], base: list[float]) -> str:
    try:
        from tunelab.study.stats import paired_difference

        d = paired_difference(variant, base)
        return f"{d.mean * 100:+.2f} pts [{d.ci_low * 100:+.2f}, {d.ci_high * 100:+.2f}], p={d.p_value:.3g}"
    except ImportError:  # pragma: no cover
        from scipy import stats

        diff = [v - b for v, b in zip(variant, base, strict=True)]
        return f"{statistics.fmean(diff) * 100:+.2f} pts, p={stats.ttest_rel(variant, base).pvalue:.3g}"


def effect(seeds: int) -> None:
    data = load_data(recipe({}).data)
    base = recipe({})
    print(
        f"\nEffect: {base.train.epochs} epochs, {base.optimizer.name} + {base.schedule.name}, "
        f"{seeds} seeds (0..{seeds - 1}), val = {len(data.x_val)} samples, 1 thread"
    )
    results: dict[str, list[float]] = {}
    for name, methods in VARIANTS.items():
        val, test, secs = [], [], []
        for seed in range(seeds):
            t0 = time.perf_counter()
            r = tunelab.fit(recipe(methods, f"train.seed={seed}"), data=data, save=False)
            secs.append(time.perf_counter() - t0)
            val.append(r.val["accuracy"])
            test.append(r.test["accuracy"])
        results[name] = val
        m, lo, hi = _interval(val)
        line = (
            f"  {name:24s} val {m * 100:.2f}% [{lo * 100:.2f}, {hi * 100:.2f}]  "
            f"(seeds: {', '.join(f'{v * 100:.2f}' for v in val)})  test {statistics.fmean(test) * 100:.2f}%  "
            f"{statistics.fmean(secs):.0f} s/run"
        )
        if name != "none":
            line += f"\n  {'':24s} vs none: {_paired(val, results['none'])}"
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per overhead run")
    ap.add_argument("--effect", action="store_true", help="also run the accuracy ablation (minutes)")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    overhead(args.pairs, args.epochs)
    if args.effect:
        effect(args.seeds)


if __name__ == "__main__":
    main()
