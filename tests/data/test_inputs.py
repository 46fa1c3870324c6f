"""New raw inputs for a trained model: arrays, tensors, DataFrames, CSV, NPZ, images; their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tunelab.data.inputs import feature_columns, read_inputs
from tunelab.errors import DataError

TABULAR = {"input_shape": [3], "feature_names": ["a", "b", "c"], "id_column": "id", "image": None}
SIGNAL = {"input_shape": [1, 4], "feature_names": None, "id_column": None, "image": None}
IMAGES = {"input_shape": [3, 4, 5], "feature_names": None, "id_column": None, "image": {"size": [4, 5]}}


def test_arrays_tensors_and_flattened_inputs():
    x = np.arange(8, dtype=np.float64).reshape(2, 1, 4)
    for given in (x, torch.from_numpy(x), x.reshape(2, 4), x.tolist()):
        a, rows = read_inputs(given, SIGNAL)
        assert a.dtype == np.float32 and a.shape == (2, 1, 4) and rows == ["0", "1"]
        assert a.tolist() == x.astype(np.float32).tolist()
    assert feature_columns(SIGNAL) == ["x0", "x1", "x2", "x3"]
    a, _ = read_inputs([1.0, 2.0], {**TABULAR, "input_shape": [1], "feature_names": ["a"]})
    assert a.shape == (2, 1)  # N samples of the one feature


def test_wrong_shapes_and_nan_get_one_line_errors():
    with pytest.raises(
        DataError, match=r"inputs of shape \[2, 5\] do not fit this model, which takes \[N, 1, 4\]"
    ):
        read_inputs(np.zeros((2, 5)), SIGNAL)
    with pytest.raises(DataError, match=r"x has NaN or inf values in 1 of 3 samples \(first: sample 2\)"):
        read_inputs(np.array([[0, 0, 0, 0], [1, 1, 1, 1], [np.nan, 0, 0, 0]]), SIGNAL)
    with pytest.raises(DataError, match="inputs must be numeric"):
        read_inputs(np.array([["a", "b", "c"]]), TABULAR)


def test_csv_columns_in_any_order_extras_ignored_and_ids_kept(tmp_path):
    p = tmp_path / "new.csv"
    p.write_text("c,note,id,a,b\n3,x,u7,1,2\n6,y,u8,4,5\n")
    a, rows = read_inputs(p, TABULAR)
    assert a.tolist() == [[1, 2, 3], [4, 5, 6]] and rows == ["u7", "u8"]
    p.write_text("c,a\n3,1\n")
    with pytest.raises(
        DataError, match=r"new\.csv: missing the feature column\(s\) b; the model was trained"
    ):
        read_inputs(p, TABULAR)
    p.write_text("a,b,c\n1,2,3\n4,,6\n")
    with pytest.raises(DataError, match=r"column 'b' has 1 of 2 rows empty, NaN or inf \(lines 3\)"):
        read_inputs(p, TABULAR)
    p.write_text("a,b,c\n1,two,3\n")
    with pytest.raises(DataError, match=r"column 'b' holds the non-numeric value 'two' on line 2"):
        read_inputs(p, TABULAR)


def test_dataframes_like_csv():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"c": [3.0, 6.0], "a": [1.0, 4.0], "b": [2.0, 5.0], "id": ["p", "q"], "other": [0, 0]})
    a, rows = read_inputs(df, TABULAR)
    assert a.tolist() == [[1, 2, 3], [4, 5, 6]] and rows == ["p", "q"]
    a, rows = read_inputs(df.drop(columns="id").set_index(pd.Index([10, 11])), TABULAR)
    assert rows == ["10", "11"]
    with pytest.raises(DataError, match=r"lacks the feature column\(s\) c"):
        read_inputs(df.drop(columns="c"), TABULAR)


def test_npz_needs_x(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.ones((3, 4)))
    a, rows = read_inputs(tmp_path / "ok.npz", SIGNAL)
    assert a.shape == (3, 1, 4) and rows == ["0", "1", "2"]
    np.savez(tmp_path / "bad.npz", inputs=np.ones((3, 4)))
    with pytest.raises(DataError, match=r"no array x \(the file holds \['inputs'\]\)"):
        read_inputs(tmp_path / "bad.npz", SIGNAL)
    (tmp_path / "a.txt").write_text("1,2,3,4\n")
    with pytest.raises(DataError, match=r"unknown kind of input file '\.txt'"):
        read_inputs(tmp_path / "a.txt", SIGNAL)
    with pytest.raises(DataError, match="no such file or folder"):
        read_inputs(tmp_path / "missing.csv", SIGNAL)


def test_images_decoded_as_training_decoded_them(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (10, 8), (255, 0, 0)).save(tmp_path / "b.png")
    Image.new("RGB", (10, 8), (0, 0, 255)).save(tmp_path / "sub" / "a.png")
    a, rows = read_inputs(tmp_path, IMAGES)
    assert a.shape == (2, 3, 4, 5) and rows == ["b.png", "sub/a.png"]
    assert a[0, 0].min() == 1.0 and a[1, 2].min() == 1.0 and a[1, 0].max() == 0.0
    a, rows = read_inputs(tmp_path / "b.png", IMAGES)
    assert a.shape == (1, 3, 4, 5) and rows == ["b.png"]
    with pytest.raises(DataError, match="images, but this run was trained on 'digits', not an image folder"):
        read_inputs(tmp_path, {**SIGNAL, "dataset": {"name": "digits"}})
