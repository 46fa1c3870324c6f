"""Streamed CSV files (tunelab.data.stream_csv): the in-memory path's splits, rows, report and
metrics from a table read in chunks; the sampled fit, the cache, and a peak RSS far below the table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from tunelab.data import load_data, stream_csv
from tunelab.data.stream import MemmapArrays, StreamBundle, load_stream, wants_stream
from tunelab.errors import DataError
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


def test_bad_rows_are_named_as_in_memory(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,x\n3,4,y\n5,z\n")
    with pytest.raises(DataError, match="line 4 has 2 fields"):
        load_stream(_spec(path, True, target="y"), PreprocessSpec())
    path.write_text("a,b,y\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match="no target column 'label'"):
        load_stream(_spec(path, True, target="label"), PreprocessSpec())
