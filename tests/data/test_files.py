"""CSV loader and array conversion: round trips, task inference, and every error a user can fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunelab.data import DATASETS, load_data
from tunelab.data.files import MAX_AUTO_CLASSES, arrays_to_raw, csv_file, encode_labels, infer_task
from tunelab.errors import DataError, RecipeError
from tunelab.spec import DataSpec, PreprocessSpec


def write(tmp_path: Path, text: str, name: str = "d.csv", encoding: str = "utf-8") -> str:
    p = tmp_path / name
    p.write_text(text, encoding=encoding)
    return str(p)


# --- task inference ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (["cat", "dog"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 2, 1], "classification"),
        ([1.0, 2.0, 1.0], "classification"),  # integer-valued floats count as integers
        (list(range(MAX_AUTO_CLASSES)), "classification"),
        (list(range(MAX_AUTO_CLASSES + 1)), "regression"),
        ([0.5, 1.25, 3.0], "regression"),
        (np.zeros((4, 3)), "regression"),  # several targets
    ],
)
def test_infer_task(y: object, task: str) -> None:
    assert infer_task(y) == task


def test_encode_labels_sorts_numbers_numerically_and_maps_test() -> None:
    codes, test_codes, names = encode_labels(np.array([10, 2, 9, 2]), np.array([9, 10]))
    assert names == ["2", "9", "10"]
    assert codes.tolist() == [2, 0, 1, 0] and test_codes.tolist() == [1, 2]
    with pytest.raises(DataError, match=r"test labels \['7'\] never occur"):
        encode_labels(np.array([1, 2]), np.array([7]))


# --- csv round trips ---------------------------------------------------------------------------


def test_csv_classification_round_trip(tmp_path: Path) -> None:
    labels = [f"{'ab'[i % 2]}{'xy'[i % 3 == 0]}" for i in range(30)]
    rows = ["height,weight,species"] + [f"{i},{2 * i + 0.5},{labels[i]}" for i in range(30)]
    path = write(tmp_path, "\n".join(rows) + "\n\n")  # trailing blank lines are ignored
    raw = csv_file(path=path, target="species")
    assert raw.task == "classification"
    assert raw.class_names == ["ax", "ay", "bx", "by"]  # sorted original strings
    assert raw.feature_names == ["height", "weight"]
    assert raw.x.dtype == object and raw.x.shape == (30, 2)  # text cells: typed by the preprocessing
    np.testing.assert_allclose(raw.x[:, 1].astype(float), 2 * np.arange(30) + 0.5)
    decoded = [raw.class_names[c] for c in raw.y]
    assert decoded == labels
    assert raw.name == "d"

    spec = DataSpec(name="csv", params={"path": path, "target": "species"}, test_fraction=0.25)
    b = load_data(spec)
    # height is 0, 1, 2, ...: a different integer on every row, which reads as a row number.
    assert b.report["dropped_columns"] == {
        "height": "ID-like: a different integer on every row, densely numbered"
    }
    b = load_data(spec, PreprocessSpec(numeric=["height"]))  # unless the recipe says otherwise
    assert b.task == "classification" and b.num_classes == 4 and b.input_shape == (2,)
    assert sum(b.summary()["sizes"].values()) == 30


def test_csv_integer_labels_are_classes_in_numeric_order(tmp_path: Path) -> None:
    path = write(tmp_path, "a,grade\n" + "".join(f"{i},{[10, 2, 9][i % 3]}\n" for i in range(12)))
    raw = csv_file(path=path, target="grade")
    assert raw.task == "classification" and raw.class_names == ["2", "9", "10"]
    assert raw.y[:3].tolist() == [2, 0, 1]
    assert raw.label_values == [2, 9, 10]  # the original labels, numbers (a predictor returns them)


def test_csv_id_column_is_no_feature_and_reaches_the_bundle(tmp_path: Path) -> None:
    rows = ["id,a,b,kind"] + [f"r{i},{i},{i % 3},{'xy'[i % 2]}" for i in range(20)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    raw = csv_file(path=path, target="kind", id_column="id")
    assert raw.feature_names == ["a", "b"] and raw.x.shape == (20, 2)
    assert raw.label_values == ["x", "y"]
    assert raw.meta == {
        "target_column": "kind",
        "id_column": "id",
        "delimiter": ",",
        "cleaning": {"rows": {"read": 20, "dropped_missing_target": 0, "target": "kind"}},
    }
    b = load_data(DataSpec(name="csv", params={"path": path, "target": "kind", "id_column": "id"}))
    card = b.card()
    assert card["feature_names"] == ["a", "b"] and card["id_column"] == "id"
    assert card["target_column"] == "kind" and card["label_values"] == ["x", "y"]
    assert card["dataset"] == {"name": "d", "loader": "csv", "source": "file"}
    with pytest.raises(DataError, match=r"no id column 'idd'; the columns are: id, a, b, kind \(did you"):
        csv_file(path=path, target="kind", id_column="idd")
    with pytest.raises(DataError, match=r"data\.id_column and data\.target are both 'kind'"):
        csv_file(path=path, target="kind", id_column="kind")


def test_csv_booleans_are_classes(tmp_path: Path) -> None:
    path = write(tmp_path, "a,ok\n1,true\n2,false\n3,true\n")
    raw = csv_file(path=path, target="ok")
    assert raw.task == "classification" and raw.class_names == ["false", "true"]
    assert raw.y.tolist() == [1, 0, 1]


def test_csv_regression_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    price = x @ [1.0, -2.0, 0.5] + 0.123
    lines = ["a;b;c;price"] + [";".join(f"{v:.6f}" for v in (*r, p)) for r, p in zip(x, price, strict=True)]
    path = write(tmp_path, "\n".join(lines))
    raw = csv_file(path=path, target="price", delimiter=";")
    assert raw.task == "regression" and raw.y.dtype == np.float32 and raw.class_names is None
    np.testing.assert_allclose(raw.y, price, atol=1e-5)
    np.testing.assert_allclose(raw.x.astype(float), x, atol=1e-5)

    b = load_data(DataSpec(name="csv", params={"path": path, "target": "price", "delimiter": ";"}))
    assert b.task == "regression" and b.num_outputs == 1 and b.y_train.shape[1] == 1
    # Predictions come back in the CSV's units.
    assert abs(float(b.unscale_y(b.y_train).mean()) - b.preprocessing.y.mean[0]) < 1e-4


def test_csv_many_distinct_integers_are_regression(tmp_path: Path) -> None:
    path = write(tmp_path, "a,count\n" + "".join(f"{i},{i * 3}\n" for i in range(MAX_AUTO_CLASSES + 1)))
    assert csv_file(path=path, target="count").task == "regression"


def test_csv_task_override(tmp_path: Path) -> None:
    path = write(tmp_path, "a,y\n1,0\n2,1\n3,2\n4,1\n")
    raw = csv_file(path=path, target="y", task="regression")
    assert raw.task == "regression" and raw.y.tolist() == [0.0, 1.0, 2.0, 1.0]
    path2 = write(tmp_path, "a,y\n1,0.5\n2,1.5\n3,0.5\n", name="f.csv")
    raw2 = csv_file(path=path2, target="y", task="classification")
    assert raw2.class_names == ["0.5", "1.5"] and raw2.y.tolist() == [0, 1, 0]


def test_csv_tab_delimiter_quotes_and_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, 'a\t"b c"\tlabel\n1\t2\t"x, y"\n3\t4\tz\n', encoding="utf-8-sig")
    raw = csv_file(path=path, target="label", delimiter="\t")
    assert raw.feature_names == ["a", "b c"]  # the BOM is not part of the first name
    assert raw.class_names == ["x, y", "z"]


# --- csv errors --------------------------------------------------------------------------------


def test_csv_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found") as e:
        csv_file(path=str(missing), target="y")
    assert str(missing) in str(e.value) and "data.path" in str(e.value)
    with pytest.raises(DataError, match="not a file"):
        csv_file(path=str(tmp_path), target="y")


def test_csv_empty_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty; it needs a header row"):
        csv_file(path=write(tmp_path, "\n\n"), target="y")
    with pytest.raises(DataError, match=r"header \(a, y\) but no data rows"):
        csv_file(path=write(tmp_path, "a,y\n"), target="y")


def test_csv_missing_target_lists_columns_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "height,weight,species\n1,2,a\n")
    with pytest.raises(DataError) as e:
        csv_file(path=path, target="specie")
    msg = str(e.value)
    assert "no target column 'specie'" in msg
    assert "height, weight, species" in msg and 'did you mean "species"?' in msg


def test_csv_text_features_and_missing_cells_are_read_as_cells(tmp_path: Path) -> None:
    # Text and missing cells load (the preprocessing types, imputes and encodes them on train).
    path = write(tmp_path, "age,city,y\n30,1,a\n41,Paris,b\n,NA,a\n")
    raw = csv_file(path=path, target="y")
    assert raw.x.tolist() == [["30", "1"], ["41", "Paris"], [None, None]]


def test_csv_a_non_numeric_cell_in_a_numeric_column_is_named(tmp_path: Path) -> None:
    rows = "".join(f"{i * 7},{i % 2}\n" for i in range(30))
    path = write(tmp_path, f"a,y\n{rows}")
    assert load_data(DataSpec(name="csv", params={"path": path, "target": "y"})).input_shape == (1,)
    bad = write(tmp_path, f"a,y\n{rows}oops,1\n", name="bad.csv")
    with pytest.raises(DataError, match=r"column 'a' is numeric but holds 'oops'.*preprocess\.categorical"):
        load_data(DataSpec(name="csv", params={"path": bad, "target": "y"}), PreprocessSpec(numeric=["a"]))


def test_csv_infinite_cells_are_refused(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % 2}\n" for i in range(30))
    path = write(tmp_path, f"a,y\n{rows}inf,1\n")
    with pytest.raises(DataError, match=r"column 'a' holds an infinite value"):
        load_data(DataSpec(name="csv", params={"path": path, "target": "y"}))


def test_csv_rows_without_a_target_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "a,y\n1,0\n2,\n3,1\n4,NA\n5,0\n")
    raw = csv_file(path=path, target="y")
    assert raw.x[:, 0].tolist() == ["1", "3", "5"] and raw.y.tolist() == [0, 1, 0]
    assert raw.meta["cleaning"] == {"rows": {"read": 5, "dropped_missing_target": 2, "target": "y"}}
    with pytest.raises(DataError, match="target column 'y' is empty or missing on every row"):
        csv_file(path=write(tmp_path, "a,y\n1,\n2,NA\n", name="e.csv"), target="y")


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,y\n1,2,0\n3,4,5,1\n")
    with pytest.raises(DataError) as e:
        csv_file(path=path, target="y")
    assert "line 3 has 4 fields but the header has 3 columns" in str(e.value)


def test_csv_without_header_duplicates_and_only_target(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs a header row"):
        csv_file(path=write(tmp_path, "1,2,3\n4,5,6\n"), target="3")
    with pytest.raises(DataError, match=r"repeats the column names \['a'\]"):
        csv_file(path=write(tmp_path, "a,a,y\n1,2,0\n"), target="y")
    with pytest.raises(DataError, match="needs feature columns"):
        csv_file(path=write(tmp_path, "y\n1\n2\n"), target="y")


def test_csv_regression_with_text_target(tmp_path: Path) -> None:
    path = write(tmp_path, "a,y\n1,cat\n2,dog\n")
    with pytest.raises(DataError) as e:
        csv_file(path=path, target="y", task="regression")
    assert "target column 'y' holds the non-numeric value 'cat' on line 2" in str(e.value)
    assert "task: classification" in str(e.value)


def test_csv_bad_parameters_are_recipe_errors(tmp_path: Path) -> None:
    entry = DATASETS.get("csv")
    with pytest.raises(RecipeError, match=r"data\.delimiter.*one character"):
        entry.check({"path": "x.csv", "target": "y", "delimiter": ";;"}, "data")
    with pytest.raises(RecipeError, match=r"data\.target.*is required"):
        entry.check({"path": "x.csv"}, "data")
    with pytest.raises(RecipeError, match=r"data\.task.*did you mean \"regression\""):
        entry.check({"path": "x.csv", "target": "y", "task": "regresion"}, "data")


def test_arrays_to_raw_rejects_bad_input() -> None:
    with pytest.raises(DataError, match=r"x must be numbers, or a table \[N, F\] of cells"):
        arrays_to_raw(np.array(["a", "b"]), [0, 1])
    assert arrays_to_raw(np.array([["a"], [""]]), [0, 1]).x.tolist() == [["a"], [None]]  # a table
    with pytest.raises(DataError, match="one label per sample"):
        arrays_to_raw(np.ones((4, 2)), np.zeros((4, 2)), task="classification")
    with pytest.raises(DataError, match="x_test has samples of shape"):
        arrays_to_raw(np.ones((4, 2)), [0, 1, 0, 1], x_test=np.ones((2, 3)), y_test=[0, 1])
    with pytest.raises(DataError, match="regression needs numeric targets but y holds 'cat'"):
        arrays_to_raw(np.ones((2, 2)), ["cat", "dog"], task="regression")
    as_text = arrays_to_raw(np.ones((2, 2)), np.array(["1.5", "2"]), task="regression")
    assert as_text.y.tolist() == [1.5, 2.0]
    with pytest.raises(RecipeError, match=r"data\.task"):
        arrays_to_raw(np.ones((4, 2)), [0, 1, 0, 1], task="classify")  # type: ignore[arg-type]
