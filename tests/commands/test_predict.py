"""`tunelab predict RUN_DIR INPUT`: CSV / NPZ inputs, the output CSV, table and JSON, exit codes."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from tunelab.cli import main
from tunelab.commands.predict import format_table

CULTIVARS = ["barbera", "barolo", "grignolino"]  # the wine run's string labels, sorted (conftest)


def result(run_dir):
    return json.loads((run_dir / "result.json").read_text())


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_csv_run_reproduces_its_test_accuracy(wine_run, raw_test_split, tmp_path, capsys):
    x, y = raw_test_split(wine_run)
    card = json.loads((wine_run / "data.json").read_text())
    features = card["feature_names"]
    assert card["id_column"] == "wine_id" and card["label_values"] == CULTIVARS
    # The test rows as a user's file: columns in another order, an extra column, ids.
    lines = [",".join(["note", *reversed(features), "wine_id"])]
    for i, row in enumerate(x):
        lines.append(",".join(["-", *(repr(float(v)) for v in reversed(row)), f"t{i}"]))
    new = tmp_path / "new.csv"
    new.write_text("\n".join(lines) + "\n")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(wine_run), str(new), "--out", str(out)]) == 0
    assert f"wrote {len(x)} predictions to {out}" in capsys.readouterr().out
    rows = read_csv(out)
    assert list(rows[0]) == ["row", "prediction", "p_barbera", "p_barolo", "p_grignolino"]
    assert [r["row"] for r in rows] == [f"t{i}" for i in range(len(x))]
    labels = np.asarray(card["label_values"])[y]
    accuracy = float(np.mean(np.array([r["prediction"] for r in rows]) == labels))
    assert accuracy == result(wine_run)["test"]["accuracy"]
    p = np.array([[float(r[f"p_{c}"]) for c in CULTIVARS] for r in rows])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_digits_from_npz_and_from_flattened_csv_columns(digits_run, raw_test_split, tmp_path, capsys):
    x, y = raw_test_split(digits_run)
    np.savez(tmp_path / "x.npz", x=x)
    flat = x.reshape(len(x), -1)
    (tmp_path / "x.csv").write_text(
        ",".join(f"x{i}" for i in range(64))
        + "\n"
        + "".join(",".join(repr(float(v)) for v in r) + "\n" for r in flat)
    )
    expected = result(digits_run)["test"]["accuracy"]
    for name in ("x.npz", "x.csv"):
        assert main(["predict", str(digits_run), str(tmp_path / name), "--json", "--batch-size", "7"]) == 0
        d = json.loads(capsys.readouterr().out)
        predicted = np.array([r["prediction"] for r in d["rows"]])
        assert [r["row"] for r in d["rows"][:2]] == ["0", "1"] and set(d["rows"][0]) >= {"p_0", "p_9"}
        assert float(np.mean(predicted == y)) == expected  # label values of digits are the digits


def test_without_out_a_short_table(digits_run, raw_test_split, tmp_path, capsys):
    x, _ = raw_test_split(digits_run)
    np.savez(tmp_path / "x.npz", x=x[:12])
    assert main(["predict", str(digits_run), str(tmp_path / "x.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["row", "prediction", "p_0"] and len(lines) == 12
    assert lines[-1] == "... 2 more rows (12 in all); --out FILE writes them all"
    assert format_table({"row": ["a"], "prediction": [1.5]}) == "row  prediction\na    1.500"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x0,x1\n1,2\n", r"missing the feature column\(s\) x2, x3, x4, x5, x6, ... \(62 in all\)"),
        (None, r"column 'x5' has 1 of 2 rows empty, NaN or inf \(lines 3\)"),
    ],
)
def test_bad_csv_inputs_exit_2_with_one_line(digits_run, tmp_path, capsys, content, message):
    if content is None:
        rows = [["0"] * 64, ["0"] * 64]
        rows[1][5] = "nan"
        content = ",".join(f"x{i}" for i in range(64)) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    (tmp_path / "bad.csv").write_text(content)
    assert main(["predict", str(digits_run), str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_wrong_shape_npz_and_bad_arguments(digits_run, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 8, 7)))
    assert main(["predict", str(digits_run), str(tmp_path / "x.npz")]) == 2
    assert (
        "inputs of shape [3, 8, 7] do not fit this model, which takes [N, 1, 8, 8]" in capsys.readouterr().err
    )
    assert main(["predict", str(digits_run), str(tmp_path / "x.npz"), "--batch-size", "0"]) == 2
    assert "--batch-size: got 0; must be >= 1" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "no-run"), str(tmp_path / "x.npz")]) == 2
    assert "no such run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_a_mixed_csv_trains_from_the_command_line_and_predicts_its_raw_rows(mixed_csv, tmp_path, capsys):
    # The default recipe: only the file and its target. Text, missing cells, an id, a copy.
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"data: {{name: csv, path: '{mixed_csv}', target: label}}\ntrain: {{efficiency: false}}\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "preprocess: rows: 2 of 243 dropped (target label missing)" in printed
    assert "dropped columns: id (ID-like: a different text on every row); site (constant" in printed
    assert (
        "imputed: x1 (" in printed
        and "colour (" in printed
        and "encoded: colour (onehot, 4 categories" in printed
    )
    assert re.search(r"duplicate rows: 1 (within|test~|val~)[^;]*; dropped", printed)

    # The raw rows of its test split, as a user's file (empty cells where values are missing).
    from tunelab.data import load_data
    from tunelab.recipe import load_recipe

    r = load_recipe(run / "recipe.yaml")
    pool = load_data(r.data, r.preprocess, keep_raw=True)
    columns = pool.feature_names
    lines = [",".join(columns)] + [",".join("" if v is None else v for v in row) for row in pool.raw.x_test]
    new = tmp_path / "new.csv"
    new.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(new), "--out", str(out)]) == 0
    labels = np.asarray(json.loads((run / "data.json").read_text())["label_values"])[pool.raw.y_test]
    predicted = np.array([row["prediction"] for row in read_csv(out)])
    assert float(np.mean(predicted == labels)) == result(run)["test"]["accuracy"]
