"""The NPZ loader (tunelab.data.npz): published test splits, task inference, every error a user can fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunelab.data import load_data
from tunelab.data.npz import npz_file
from tunelab.errors import DataError
from tunelab.spec import DataSpec, PreprocessSpec


def test_npz_classification_keeps_published_test_split(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(60, 2, 5)), rng.normal(size=(15, 2, 5))
    y, yt = np.arange(60) % 3 + 1, np.arange(15) % 3 + 1  # labels 1..3 become 0..2
    np.savez(p, x=x, y=y, x_test=xt, y_test=yt)
    raw = npz_file(path=str(p))
    assert raw.task == "classification" and raw.class_names == ["1", "2", "3"]
    assert raw.x.dtype == np.float32 and raw.x.shape == (60, 2, 5)
    np.testing.assert_array_equal(raw.y, y - 1)
    np.testing.assert_array_equal(raw.y_test, yt - 1)

    b = load_data(DataSpec(name="npz", params={"path": str(p)}), PreprocessSpec(scaling="none"))
    assert b.summary()["sizes"] == {"train": 48, "val": 12, "test": 15}
    np.testing.assert_allclose(b.x_test.numpy(), xt.astype(np.float32))
    assert b.input_shape == (2, 5)


def test_npz_regression_and_string_labels(tmp_path: Path) -> None:
    p = tmp_path / "r.npz"
    np.savez(p, x=np.ones((10, 3)), y=np.linspace(0, 1, 10).reshape(10, 1))
    raw = npz_file(path=str(p))
    assert raw.task == "regression" and raw.y.shape == (10,) and raw.y.dtype == np.float32

    p2 = tmp_path / "s.npz"
    np.savez(p2, x=np.ones((4, 3)), y=np.array(["no", "yes", "no", "yes"]))
    raw2 = npz_file(path=str(p2))
    assert raw2.task == "classification" and raw2.class_names == ["no", "yes"]


def test_npz_missing_keys_name_what_is_there(tmp_path: Path) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, features=np.ones((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError) as e:
        npz_file(path=str(p))
    assert "missing the arrays ['x']" in str(e.value) and "['features', 'y']" in str(e.value)


def test_npz_other_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="NPZ file not found"):
        npz_file(path=str(tmp_path / "none.npz"))
    half = tmp_path / "half.npz"
    np.savez(half, x=np.ones((3, 2)), y=np.zeros(3), x_test=np.ones((2, 2)))
    with pytest.raises(DataError, match="both x_test and y_test"):
        npz_file(path=str(half))
    single = tmp_path / "single.npy"
    np.save(single, np.ones(3))
    with pytest.raises(DataError, match=r"single \.npy array, not an \.npz archive"):
        npz_file(path=str(single))
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.ones((2, 1)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"object \(pickled\) arrays"):
        npz_file(path=str(obj))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"is not an \.npz archive"):
        npz_file(path=str(junk))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataError, match=r"not a readable \.npz file"):
        npz_file(path=str(truncated))
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x=np.ones((5, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="x has 5 samples but y has 4"):
        npz_file(path=str(mismatch))
