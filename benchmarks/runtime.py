"""Runtime options measured, not assumed: precision, torch.compile, channels_last.

For each option, the same recipe trains the same number of epochs from the same seed; the figure
is the median training time per epoch and the inference latency (batch 1, median) and throughput
(batch 1024), each as a ratio to the fp32 eager baseline measured in the same process, plus the
val accuracy (an option that is fast but wrong is no option).

    .venv/bin/python benchmarks/runtime.py [--recipe examples/digits_cnn.yaml] [--epochs 3] [--repeats 3]

The int8 rows add the ``quantize`` method (post-training dynamic int8 of the Linear layers; the
training itself is the fp32 run's), eager and compiled.

What the CPU has decides the figures: on this machine's AVX512-BF16 CPU, bf16 autocast ran
2.3x the fp32 throughput at batch 1024 (MNIST-1D CNN) while fp16 trained 9x slower (no fp16
kernels); batch-1 latency was worse for every option, int8 included (~4x). On a recent GPU,
bf16/fp16 are the main speed-up. That is why tunelab measures instead of assuming.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import tunelab
from tunelab.data import load_data
from tunelab.train import resolve_device

ROOT = Path(__file__).resolve().parents[1]

OPTIONS = {
    "fp32 (baseline)": [],
    "bf16 autocast": ["train.precision=bf16"],
    "fp16 autocast + scaler": ["train.precision=fp16"],
    "torch.compile": ["train.compile=true"],
    "channels_last": ["train.channels_last=true"],
    # Post-training int8 of the Linear layers (the quantize method): inference only, training is fp32.
    "int8 (quantize)": ["methods.quantize={}"],
    "int8 + torch.compile": ["methods.quantize={}", "train.compile=true"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "examples" / "digits_cnn.yaml"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = tunelab.load_recipe(args.recipe, [f"train.epochs={args.epochs}", "methods=[]"])
    data = load_data(base.data)
    image = len(data.input_shape) == 3
    print(
        f"{args.recipe}: {base.model.name}, {args.epochs} epochs x {args.repeats} repeats, "
        f"threads {torch.get_num_threads()}, device {resolve_device('auto')}"
    )
    rows = {}
    for name, overrides in OPTIONS.items():
        if "channels_last" in name and not image:
            continue
        epoch_s, lat, thr, acc = [], [], [], []
        for _ in range(args.repeats):
            r = tunelab.fit(base, data=data, save=False, overrides=overrides)
            # The first epoch of a compiled model pays the compilation; report the steady state.
            epoch_s.append(statistics.median(h["seconds"] for h in r.history[1:] or r.history))
            lat.append(r.efficiency["latency_ms"])
            thr.append(r.efficiency["throughput"])
            acc.append(r.val["accuracy"])
        rows[name] = [statistics.median(v) for v in (epoch_s, lat, thr, acc)]
    b = rows["fp32 (baseline)"]
    print(
        f"{'option':26s} {'s/epoch':>8s} {'x base':>7s} {'lat ms':>7s} {'x base':>7s} "
        f"{'samples/s':>10s} {'x base':>7s} {'val acc':>8s}"
    )
    for name, (e, lat_ms, tput, a) in rows.items():
        print(
            f"{name:26s} {e:8.3f} {e / b[0]:7.2f} {lat_ms:7.3f} {lat_ms / b[1]:7.2f} "
            f"{tput:10.0f} {tput / b[2]:7.2f} {a:8.4f}"
        )


if __name__ == "__main__":
    main()
