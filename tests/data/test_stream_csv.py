"""Streamed CSV files (tunelab.data.stream_csv): the in-memory path's splits, rows, report and
metrics from a table read in chunks; the sampled fit, the cache, and a peak RSS far below the table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tunelab.data import load_data, stream_csv
from tunelab.data.stream import MemmapArrays, StreamBundle, load_stream, wants_stream
from tunelab.errors import DataError, RecipeError
from tunelab.spec import DataSpec, PreprocessSpec
from tunelab.train import fit

FAST = {"epochs": 2, "batch_size": 32, "device": "cpu", "efficiency": False, "tensorboard": False}
SPLITS = ("train", "val", "test")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stream_csv, "CHUNK_ROWS", 64)  # many chunks on a small file


def _table(path: Path, n: int = 600) -> Path:
    """Numbers with missing cells, integers, text and yes/no categories with missing cells, rows
    without a label, and 15 rows written twice (duplicates within and across splits)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = ("adelie", "gentoo", "chinstrap")[i % 3]
        rows.append(
            [
                f"{rng.normal(loc=i % 3):.3f}" if rng.random() > 0.1 else "NA",
                str(rng.integers(0, 50)),
                str(rng.choice(["red", "green", "blue", ""])),
                str(rng.choice(["yes", "no"])),
                label if rng.random() > 0.02 else "",
            ]
        )
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["length", "count", "colour", "flag", "species"])
        out.writerows(rows + rows[:15])
    return path


def _spec(path: Path, stream: bool, **data) -> DataSpec:
    params = {"path": str(path), "target": data.pop("target", "species")}
    return DataSpec(name="csv", params=params, stream=stream, num_workers=0, **data)


def _same_bundles(streamed: StreamBundle, memory) -> None:
    for s in SPLITS:
        x, y = streamed.split(s)
        assert torch.equal(y.cpu(), memory.split(s)[1])  # the same rows in the same order
        np.testing.assert_allclose(x[0 : len(x)].numpy(), memory.split(s)[0].numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_streamed_csv_has_the_in_memory_splits_rows_and_report(tmp_path, encoding):
    path = _table(tmp_path / "t.csv")
    pre = PreprocessSpec(encoding=encoding)
    streamed, memory = load_stream(_spec(path, True), pre), load_data(_spec(path, False), pre)
    assert isinstance(streamed.x_train.dataset.dataset, MemmapArrays)
    _same_bundles(streamed, memory)
    report = dict(streamed.report)
    assert report.pop("fit") == f"all {len(memory.y_train)} train rows"
    assert report == memory.report
    assert memory.report["rows"]["dropped_missing_target"] > 0
    assert sum(memory.report["duplicates"]["within"].values()) + sum(
        memory.report["duplicates"]["across"].values()
    )
    assert streamed.meta.get("embeddings") == memory.meta.get("embeddings")
    assert streamed.preprocessing == memory.preprocessing  # what a predictor applies to raw rows


def test_streamed_csv_trains_to_the_in_memory_metrics(tmp_path):
    path = _table(tmp_path / "t.csv")
    data = {"name": "csv", "path": str(path), "target": "species", "num_workers": 0}
    recipe = {"model": {"name": "mlp", "hidden": [16]}, "train": FAST}
    memory = fit({**recipe, "data": data}, save=False)
    streamed = fit({**recipe, "data": {**data, "stream": True}}, save=False)
    assert [h["train"] for h in streamed.history] == [h["train"] for h in memory.history]
    assert streamed.val == memory.val and streamed.test == memory.test


def test_diabetes_csv_streams_a_regression_to_the_in_memory_metrics(tmp_path):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    path = tmp_path / "diabetes.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*d.feature_names, "progression"])
        out.writerows([[*x, t] for x, t in zip(d.data.tolist(), d.target.tolist(), strict=True)])
    data = {"name": "csv", "path": str(path), "target": "progression", "num_workers": 0}
    recipe = {"model": {"name": "mlp", "hidden": [16]}, "train": FAST}
    memory = fit({**recipe, "data": data}, save=False)
    streamed = fit({**recipe, "data": {**data, "stream": True}}, save=False)
    assert memory.val["loss"] > 0 and "rmse" in memory.val
    assert [h["train"] for h in streamed.history] == [h["train"] for h in memory.history]
    assert streamed.val == memory.val and streamed.test == memory.test


def test_train_fraction_keeps_the_in_memory_subsample(tmp_path):
    path = _table(tmp_path / "t.csv")
    streamed = load_stream(_spec(path, True, train_fraction=0.3), PreprocessSpec())
    memory = load_data(_spec(path, False, train_fraction=0.3), PreprocessSpec())
    assert len(memory.y_train) < 0.5 * len(load_data(_spec(path, False), PreprocessSpec()).y_train)
    _same_bundles(streamed, memory)
    # The memory-mapped npz path subsamples train alike.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 1, 8)).astype(np.float32), np.arange(300) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    spec = DataSpec(name="npz", params={"path": str(tmp_path / "d.npz")}, train_fraction=0.4, num_workers=0)
    npz_stream, npz_memory = load_stream(spec, PreprocessSpec()), load_data(spec, PreprocessSpec())
    for s in SPLITS:
        assert torch.equal(npz_stream.split(s)[1].cpu(), npz_memory.split(s)[1])


def test_a_sampled_fit_is_seeded_and_stated(tmp_path, monkeypatch):
    monkeypatch.setattr(stream_csv, "MIN_FIT_ROWS", 50)
    path = _table(tmp_path / "t.csv")
    spec = _spec(path, False, memory_limit=1e-6)
    assert wants_stream(spec)  # far above a 1 KiB limit: streamed without data.stream
    a, b = (
        load_stream(spec, PreprocessSpec()),
        load_stream(_spec(path, True, memory_limit=1e-6), PreprocessSpec()),
    )
    assert a.report["fit"].startswith(f"a uniform sample of 50 of the {len(a.y_train)} train rows")
    assert a.preprocessing == b.preprocessing  # the same sample (seeded): one cache, two keys alike
    full = load_data(_spec(path, False), PreprocessSpec())
    assert a.preprocessing.table.fill != full.preprocessing.table.fill  # fit on fewer rows
    for s in SPLITS:
        assert torch.equal(a.split(s)[1].cpu(), full.split(s)[1])  # the split never samples


def test_the_cache_is_rebuilt_on_a_change_and_a_crash_leaves_nothing(tmp_path, monkeypatch):
    path = _table(tmp_path / "t.csv")
    cache = tmp_path / "cache"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(stream_csv, "_transform", crash)
        with pytest.raises(KeyboardInterrupt):
            load_stream(_spec(path, True), PreprocessSpec())
    assert not list(cache.glob("csv_stream_*"))  # the half-written folder is gone
    first = load_stream(_spec(path, True), PreprocessSpec())
    (folder,) = cache.glob("csv_stream_*")
    again = load_stream(_spec(path, True), PreprocessSpec())
    assert again.x_train.dataset.dataset.x_path == first.x_train.dataset.dataset.x_path
    load_stream(_spec(path, True), PreprocessSpec(scaling="minmax"))  # another preprocess section
    with path.open("a") as f:
        f.write("1.0,3,red,no,gentoo\n")  # another size and time
    changed = load_stream(_spec(path, True), PreprocessSpec())
    assert len(list(cache.glob("csv_stream_*"))) == 3 and folder.is_dir()
    assert len(changed.y_train) + len(changed.y_val) + len(changed.y_test) == (
        len(first.y_train) + len(first.y_val) + len(first.y_test) + 1
    )


def test_a_killed_builds_folder_is_removed_by_the_next_build(tmp_path):
    from tunelab.cache import temp_name

    path = _table(tmp_path / "t.csv")
    cache = tmp_path / "cache"
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # stands for a build killed mid-way
    child.wait()
    killed = cache / temp_name("csv_stream_0123456789abcdef").replace(
        f"tmp{os.getpid()}@", f"tmp{child.pid}@"
    )
    killed.mkdir(parents=True)
    (killed / "x.npy").write_bytes(b"half")
    load_stream(_spec(path, True), PreprocessSpec())
    assert not killed.exists() and len(list(cache.glob("csv_stream_*"))) == 1


def test_bad_rows_are_named_as_in_memory(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,x\n3,4,y\n5,z\n")
    with pytest.raises(DataError, match="line 4 has 2 fields"):
        load_stream(_spec(path, True, target="y"), PreprocessSpec())
    path.write_text("a,b,y\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match="no target column 'label'"):
        load_stream(_spec(path, True, target="label"), PreprocessSpec())


def test_near_duplicates_are_refused_for_a_csv_streamed_or_not(tmp_path):
    path = _table(tmp_path / "t.csv", n=50)
    for stream in (True, False):
        with pytest.raises(RecipeError, match=r"near_duplicates: got 0\.05; compares numeric arrays"):
            load_data(_spec(path, stream), PreprocessSpec(near_duplicates=0.05))


# --- memory -----------------------------------------------------------------------------------------

ROWS, QUESTIONS = 200_000, 40
# The baseline file: enough rows to fill a transform chunk and a memmap window (40 MB of table), so
# what the big file adds is what grows with the rows.
SMALL = 30_000
# 40 answers a-h (one-hot: 320 inputs), 4 numbers with 5% missing cells, 4 classes: 324 float32
# inputs a row, 259 MB for the table of a 21 MB CSV. The in-memory path measured 1.7 GB of peak RSS
# on 250,000 of these rows (1.24 GB over its imports).
TABLE_BYTES = ROWS * (QUESTIONS * 8 + 4) * 4
# What 170,000 more rows add to the peak RSS of the small file's run: the labels, the row digests
# and the split's indices (a few dozen bytes a row), never the table. Measured 7 MiB.
PER_ROW_BOUND = 32 * 2**20
# The whole growth over the imports (torch, scikit-learn), with what any run adds (lazy imports,
# the model and optimizer, a transform chunk, a memmap window): measured 150-160 MiB.
RSS_GROWTH_BOUND = 220 * 2**20

MEASURE = """
import json, sys
from tunelab.train import fit

def peak():
    # This process's peak RSS (VmHWM, KiB), not ru_maxrss: Linux keeps that across exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024

imports = peak()
data = {"name": "csv", "path": sys.argv[1], "target": "label", "stream": True, "num_workers": 0,
        "memory_limit": 0.02}  # GiB: the fit reads a sample of 7,281 train rows
train = {"epochs": 1, "batch_size": 1024, "device": "cpu", "efficiency": False, "tensorboard": False,
         "eval_batch_size": 4096}
r = fit({"data": data, "model": {"name": "linear"}, "train": train}, save=False, evaluate_test=False)
print(json.dumps({"self": peak(), "imports": imports, "status": r.status, "val": r.val["accuracy"]}))
"""


def _survey(path: Path, n: int) -> Path:
    """``n`` rows of ``QUESTIONS`` answers a-h, 4 numbers (5% missing) and a label that the first
    answer decides; written once (renamed into place when complete)."""
    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    letters, labels = np.array(list("abcdefgh")), np.array(["c0", "c1", "c2", "c3"])
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with tmp.open("w") as f:
        f.write(",".join([f"q{j}" for j in range(QUESTIONS)] + ["m0", "m1", "m2", "m3", "label"]) + "\n")
        for lo in range(0, n, 50_000):
            codes = rng.integers(0, 8, size=(min(50_000, n - lo), QUESTIONS))
            numbers = np.round(rng.normal(size=(len(codes), 4)), 2).astype(str)
            numbers[rng.random(numbers.shape) < 0.05] = ""
            cells = np.concatenate([letters[codes], numbers, labels[codes[:, :1] % 4]], axis=1)
            f.write("\n".join(",".join(row) for row in cells.tolist()) + "\n")
    tmp.rename(path)
    return path


def _measure(path: Path, cache: Path) -> dict:
    env = {**os.environ, "TUNELAB_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_streaming_a_csv_keeps_peak_rss_far_below_its_table(tmp_path):
    folder = Path(tempfile.gettempdir())
    big = _survey(folder / f"tunelab-test-survey-{ROWS}.csv", ROWS)
    small = _survey(folder / f"tunelab-test-survey-{SMALL}.csv", SMALL)
    base = _measure(small, tmp_path / "small")
    rss = _measure(big, tmp_path / "cache")  # built here: read, fit, transformed, then trained
    assert rss["status"] == "completed" and rss["val"] > 0.6, (
        rss
    )  # chance is 0.25: the first answer decides the label
    (table,) = (tmp_path / "cache").glob("csv_stream_*/x.npy")
    assert table.stat().st_size > TABLE_BYTES  # the float32 table on disk, all of it
    assert rss["self"] - base["self"] < PER_ROW_BOUND < TABLE_BYTES / 6, (rss, base)
    assert rss["self"] - rss["imports"] < RSS_GROWTH_BOUND < TABLE_BYTES, rss
    print(
        f"peak RSS MiB: {rss['self'] / 2**20:.0f} ({base['self'] / 2**20:.0f} on {SMALL} rows, imports "
        f"{rss['imports'] / 2**20:.0f}); float32 table {table.stat().st_size / 2**20:.0f} MiB"
    )
