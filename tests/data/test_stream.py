"""The streaming data path (tunelab.data.stream): the same results as in memory, the sources it
reads lazily, and a peak RSS well below the decoded size of a 20k-image folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.data.conftest import noise_images
from torch.utils.data import TensorDataset

from tunelab.data.preprocess import Standardize
from tunelab.data.stream import StreamBundle, StreamSplit, decoded_bytes, load_stream, wants_stream
from tunelab.recipe import load_recipe
from tunelab.spec import DataSpec, PreprocessSpec
from tunelab.train import fit, load_bundle

FAST = {"epochs": 2, "batch_size": 32, "device": "cpu", "efficiency": False, "tensorboard": False}
MNIST1D = {
    "data": {"name": "mnist1d", "train_fraction": 1.0},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.0},
    "train": FAST,
}


def test_stream_true_gives_the_in_memory_result():
    # The same preprocessed tensors, the same permutation: the DataLoader changes nothing.
    memory = fit(MNIST1D, save=False)
    streamed = fit({**MNIST1D, "data": {"name": "mnist1d", "stream": True}}, save=False)
    assert streamed.history[-1]["train"]["loss"] == memory.history[-1]["train"]["loss"]
    assert streamed.val == memory.val and streamed.test == memory.test


def test_image_folder_streams_with_the_statistics_of_the_in_memory_fit(tmp_path):
    root = noise_images(tmp_path / "img", 64, 6)
    params = {"path": str(root), "size": [6, 6]}
    streamed = load_stream(DataSpec(name="image_folder", params=params, num_workers=0), PreprocessSpec())
    assert isinstance(streamed, StreamBundle) and isinstance(streamed.x_train, StreamSplit)
    memory = load_bundle(load_recipe(fit_recipe(params, stream=False)))
    assert torch.equal(streamed.y_train.cpu(), memory.y_train)  # the same split by seed
    a, b = streamed.preprocessing.x[0], memory.preprocessing.x[0]
    assert isinstance(a, Standardize) and np.allclose(a.mean, b.mean) and np.allclose(a.std, b.std, rtol=1e-6)
    assert torch.allclose(streamed.x_val[0:5], memory.x_val[:5], atol=1e-5)  # decoded alike


def fit_recipe(params: dict, stream: bool, **train) -> dict:
    data = {"name": "image_folder", **params, "stream": stream, "num_workers": 1}
    return {"data": data, "model": {"name": "linear"}, "train": {**FAST, **train}}


def test_image_folder_stream_resumes_mid_epoch_exactly(tmp_path):
    from tunelab.methods import Method

    class Killed(BaseException):
        pass

    class KillAt(Method):
        def after_step(self, state):
            if state.step == 5:
                raise Killed

    root = noise_images(tmp_path / "img", 64, 6)
    recipe = fit_recipe({"path": str(root), "size": [6, 6]}, True, batch_size=8, checkpoint_every=2)
    whole = fit(recipe, save=False)
    with pytest.raises(Killed):
        fit(recipe, out=tmp_path / "run", methods=[KillAt()])
    resumed = fit(resume=tmp_path / "run")
    assert resumed.val == whole.val
    assert [h["train"] for h in resumed.history] == [h["train"] for h in whole.history]


def test_npz_is_memory_mapped_and_streams_on_its_own_above_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 1, 16)).astype(np.float32), np.arange(200) % 2
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    spec = DataSpec(name="npz", params={"path": str(path)}, memory_limit=1e-6, num_workers=0)
    assert decoded_bytes(spec) == (x.size + y.size) * 4
    assert wants_stream(spec) and not wants_stream(DataSpec(name="npz", params={"path": str(path)}))
    bundle = load_stream(spec, PreprocessSpec())
    inner = bundle.x_train.dataset.dataset  # a Subset of the memmapped rows
    assert isinstance(np.load(inner.x_path, mmap_mode="r"), np.memmap)
    data = {"name": "npz", "path": str(path), "memory_limit": 1e-6, "num_workers": 0}
    r = fit({"data": data, "model": {"name": "linear"}, "train": FAST}, save=False)
    assert r.status == "completed" and len(r.history) == 2


def test_torch_datasets_stream_through_fit():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=gen)
    y = (x[:, 0] > 0).long()
    train, val = TensorDataset(x[:200], y[:200]), TensorDataset(x[200:], y[200:])
    recipe = {"model": {"name": "linear"}, "train": {**FAST, "epochs": 5}, "optimizer": {"lr": 0.05}}
    r = fit(recipe, data=(train, val), save=False, overrides=["data.num_workers=0"])
    assert r.val["accuracy"] > 0.8  # it learned the sign of the first feature
    one = fit(recipe, data=TensorDataset(x, y), save=False, overrides=["data.num_workers=0"])
    assert one.status == "completed"


# --- memory -----------------------------------------------------------------------------------------

N_IMAGES, SIDE = 20_000, 64
DECODED = N_IMAGES * 3 * SIDE * SIDE * 4  # float32: 983 MB
# The process holds torch, the model and a few batches, never the set. Measured on the development
# machine: 596 MiB peak for the loop's process, of which 460 MiB are the imports (torch, scikit-learn),
# and 395 MiB for its worker; the in-memory path holds the 938 MiB decoded set on top of the imports.
RSS_BOUND = 750 * 2**20
GROWTH_BOUND = 200 * 2**20  # above the imports: a fifth of the decoded size

MEASURE = """
import json, resource, sys
kib = 1024  # ru_maxrss and VmHWM are in KiB on Linux

def peak():
    # This process's peak RSS. Not ru_maxrss: Linux keeps it across exec, so a child of a big
    # pytest process starts at pytest's size; VmHWM belongs to the new address space.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * kib

from tunelab.train import fit
imports = peak()
recipe = {"data": {"name": "image_folder", "path": sys.argv[1], "size": [64, 64],
                   "stream": True, "num_workers": 1},
          "model": {"name": "linear"}, "preprocess": {"scaling": "none"},
          "train": {"epochs": 1, "batch_size": 256, "device": "cpu", "efficiency": False,
                    "eval_batch_size": 256}}
r = fit(recipe, save=False, evaluate_test=False)
import gc; gc.collect()  # the loaders go: their workers are stopped and waited for (RUSAGE_CHILDREN)
print(json.dumps({"self": peak(), "imports": imports,
                  "workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib,
                  "status": r.status, "n": len(r.history)}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_streaming_peak_rss_stays_far_below_the_decoded_size(tmp_path):
    root = noise_images(
        Path(tempfile.gettempdir()) / f"tunelab-test-images-{N_IMAGES}-{SIDE}", N_IMAGES, SIDE, 10
    )
    env = {**os.environ, "TUNELAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(root)], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert rss["status"] == "completed"
    assert rss["self"] < RSS_BOUND < DECODED, rss
    assert rss["self"] - rss["imports"] < GROWTH_BOUND, rss
    assert rss["workers"] < RSS_BOUND, rss
