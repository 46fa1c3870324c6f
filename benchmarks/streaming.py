"""In-memory vs streaming (data.stream) on the same image folder: epoch time and peak RSS.

Each path runs in a fresh process (peak RSS is per process), a linear model on 64x64 RGB images,
``--epochs`` epochs; the in-memory path decodes the folder once into its cache before timing (the
first run of a folder pays the decode; the figure is the loop's own). The folder is generated once
(``--images`` PNGs in 10 classes) under the system's temp directory.

    .venv/bin/python benchmarks/streaming.py [--images 20000] [--epochs 2] [--workers 2] [--device cpu]

Prints, per path: seconds per epoch (the mean after the first epoch, which includes starting the
DataLoader workers), the process's peak RSS, and the workers' (streaming).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUN = """
import json, resource, sys, gc
from tunelab.train import fit
path, stream, device = sys.argv[1], sys.argv[2] == "1", sys.argv[5]
epochs, workers = int(sys.argv[3]), int(sys.argv[4])
recipe = {"data": {"name": "image_folder", "path": path, "size": [64, 64], "stream": stream,
                   "num_workers": workers, "memory_limit": None},
          "model": {"name": "linear"}, "preprocess": {"scaling": "standard"},
          "train": {"epochs": epochs, "batch_size": 256, "device": device, "efficiency": False,
                    "eval_batch_size": 256}}
r = fit(recipe, save=False, evaluate_test=False)
gc.collect()
kib = 1024
print(json.dumps({"epochs": [h["seconds"] for h in r.history], "val": r.val["accuracy"],
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib,
                  "workers_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib}))
"""


def make_folder(n: int, side: int = 64, classes: int = 10) -> Path:
    """``n`` PNGs (a class colour plus noise), written once."""
    from PIL import Image

    root = Path(tempfile.gettempdir()) / f"tunelab-test-images-{n}-{side}"  # the RSS test's folder
    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(classes, 3))
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        a = np.clip(colours[c] + rng.integers(-40, 40, size=(side, side, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(root / f"c{c}" / f"{i}.png", compress_level=1)
    (root / ".complete").touch()
    return root


def run(root: Path, stream: bool, epochs: int, workers: int, device: str) -> dict:
    argv = [sys.executable, "-c", RUN, str(root), "1" if stream else "0", str(epochs), str(workers), device]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    root = make_folder(a.images)
    run(root, False, 1, 0, a.device)  # decode the folder into the in-memory path's cache first
    mib = 2**20
    decoded = a.images * 3 * 64 * 64 * 4
    size = f"decoded float32 {decoded / mib:.0f} MiB"
    print(f"{a.images} PNG 64x64 RGB ({size}), linear model, batch 256, {a.device}")
    for stream in (False, True):
        r = run(root, stream, a.epochs, a.workers, a.device)
        later = r["epochs"][1:] or r["epochs"]
        name = f"streaming ({a.workers} workers)" if stream else "in memory"
        extra = f", workers' peak {r['workers_rss'] / mib:.0f} MiB" if stream else ""
        print(
            f"{name:24s} {sum(later) / len(later):6.2f} s/epoch (first {r['epochs'][0]:.2f}), "
            f"peak RSS {r['rss'] / mib:.0f} MiB{extra}, val acc {r['val']:.3f}"
        )


if __name__ == "__main__":
    main()
