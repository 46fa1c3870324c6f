"""Dynamic int8 quantization (torchao) on MNIST-1D: Linear weight bytes, accuracy, measured latency.

Per model (the MLP 40-512-512-10 and the CNN of examples/mnist1d_cnn.yaml as of this work, both in
compress_recipes.py; the CNN's Linear head holds most of its weights) and seed, the recipe trains a
float model, which is then quantized after training (``tunelab.compress.quantize_dynamic_int8``:
int8 weights with a per-row scale, int8 activations quantized per row at run time). Figures: the
bytes of the Linear weights (fp32 / int8 data + scales), val accuracy int8 − fp32 paired by seed
(mean, 95% CI), and latency at batch 1 and throughput at batch 1024 of seed 0's models, fp32 and
int8 alternated in one process (``measure_interleaved``), eager and, with ``--compile``, under
torch.compile (where torchao's int8 path fuses on CPU).

    .venv/bin/python benchmarks/compress_quantize.py [--seeds 3] [--threads 1] [--compile]

Goal: >= 3.5x smaller Linear weights, <= 0.3 points of val-accuracy loss, latency reported.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from compress_recipes import CNN, MLP

import tunelab
from tunelab.compress.quantize import linear_weight_bytes, quantize_dynamic_int8
from tunelab.data import load_data
from tunelab.metrics.efficiency import model_size_bytes
from tunelab.study.compress import measure_interleaved
from tunelab.study.stats import paired_difference
from tunelab.train import LOSSES, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--compile", action="store_true", help="also time both under torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipes = {
        "mlp": tunelab.load_recipe(MLP),
        "cnn": tunelab.load_recipe(CNN),
    }
    data = load_data(recipes["cnn"].data)
    common = ["train.efficiency=false", "train.tensorboard=false", f"train.threads={args.threads}"]
    gen = torch.Generator().manual_seed(0)
    one = torch.randn((1, *data.input_shape), generator=gen)
    big = torch.randn((1024, *data.input_shape), generator=gen)
    print(f"MNIST-1D, {args.seeds} seeds, threads {args.threads}", flush=True)
    for name in args.models.split(","):
        fp32_acc, int8_acc = [], []
        pair: dict[str, torch.nn.Module] = {}
        for seed in range(args.seeds):
            r = tunelab.fit(recipes[name], data=data, save=False, overrides=[*common, f"train.seed={seed}"])
            q = quantize_dynamic_int8(copy.deepcopy(r.model).eval())
            v = evaluate(q, data, "val", LOSSES["cross_entropy"], 1024)
            fp32_acc.append(r.val["accuracy"])
            int8_acc.append(v["accuracy"])
            print(
                f"  {name} seed {seed}: val fp32 {r.val['accuracy']:.4f} int8 {v['accuracy']:.4f}", flush=True
            )
            if seed == 0:
                pair = {"fp32": r.model.eval(), "int8": q}
        diff = paired_difference(int8_acc, fp32_acc)
        lw = linear_weight_bytes(pair["fp32"]), linear_weight_bytes(pair["int8"])
        size = model_size_bytes(pair["fp32"]), model_size_bytes(pair["int8"])
        t0 = time.perf_counter()
        timed = measure_interleaved(pair, one, big, rounds=args.rounds, budget_s=0.4 * args.rounds)
        lines = [
            f"{name}: Linear weights {lw[0]:,} -> {lw[1]:,} bytes ({lw[0] / lw[1]:.2f}x smaller); state_dict "
            f"{size[0]:,} -> {size[1]:,} bytes ({size[0] / size[1]:.2f}x)",
            f"  Δ val accuracy (int8 − fp32, paired over {diff.n} seeds) {100 * diff.estimate:+.2f} points, "
            f"95% CI [{100 * diff.ci_low:+.2f}, {100 * diff.ci_high:+.2f}]",
            _timing("eager", timed),
        ]
        if args.compile:
            compiled = {k: torch.compile(copy.deepcopy(m)) for k, m in pair.items()}
            lines.append(
                _timing(
                    "torch.compile", measure_interleaved(compiled, one, big, rounds=args.rounds, budget_s=4.0)
                )
            )
        print("\n".join(lines) + f" · timing {time.perf_counter() - t0:.0f} s", flush=True)


def _timing(label: str, t: dict[str, dict[str, float]]) -> str:
    f, q = t["fp32"], t["int8"]
    return (
        f"  {label}: batch 1 median / p95 ms fp32 {f['latency_ms']:.4f} / {f['latency_p95_ms']:.4f}, int8 "
        f"{q['latency_ms']:.4f} / {q['latency_p95_ms']:.4f} ({f['latency_ms'] / q['latency_ms']:.2f}x); "
        f"batch 1024 samples/s fp32 {f['throughput']:,.0f}, int8 {q['throughput']:,.0f} "
        f"({q['throughput'] / f['throughput']:.2f}x)"
    )


if __name__ == "__main__":
    main()
