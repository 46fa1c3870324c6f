"""Every command on a text run: train, report, predict (.txt and CSV), search, ablate, cv, lr-find,
compress.

The data is the tiny three-topic corpus of tests/conftest.py (120 one-line documents), so each
command takes a second or two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tunelab
from tunelab.cli import main
from tunelab.data import load_data

FAST = "train: {epochs: 4, batch_size: 16, threads: 1, efficiency: false, tensorboard: false}"


def recipe(
    path: Path, csv: Path, model: str = "{name: embedding_bag, embed_dim: 16}", extra: str = ""
) -> Path:
    path.write_text(
        f"data: {{name: text_csv, path: {csv}}}\n"
        "preprocess: {max_length: 24, min_freq: 1}\n"
        f"model: {model}\n"
        "optimizer: {name: adam, lr: 0.05}\n"
        f"{FAST}\n{extra}"
    )
    return path


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, text_csv):
    out = tmp_path_factory.mktemp("text_run")
    r = recipe(out / "topics.yaml", text_csv, extra="methods: [{name: text_augment, synonyms: vocabulary}]\n")
    assert main(["train", str(r), "--out", str(out / "run"), "--quiet"]) == 0
    return out / "run"


def test_train_writes_the_tokenizer_beside_preprocess_json(text_run):
    pre = json.loads((text_run / "preprocess.json").read_text())
    assert pre["x"][0]["kind"] == "text" and pre["x"][0]["file"] == "tokenizer.json"
    assert (text_run / "tokenizer.json").is_file()
    card = json.loads((text_run / "data.json").read_text())
    assert card["documents"] and card["text_column"] == "text" and card["input_shape"] == [24]
    result = json.loads((text_run / "result.json").read_text())
    assert result["test"]["accuracy"] > 0.8 and result["info"]["preprocess"]["documents"]["duplicates"] == 1


def _test_split(run: Path):
    """The run's raw test documents and labels, as the split left them."""
    recipe = tunelab.load_recipe(run / "recipe.yaml")
    b = load_data(recipe.data, recipe.preprocess, keep_raw=True)
    return b.raw.x_test, np.asarray(b.class_names)[b.raw.y_test]


def test_predict_on_the_raw_test_texts_reproduces_the_test_accuracy_exactly(text_run, tmp_path, capsys):
    docs, labels = _test_split(text_run)
    (tmp_path / "test.txt").write_text("\n".join(docs) + "\n")
    (tmp_path / "test.csv").write_text("text\n" + "\n".join(f'"{d}"' for d in docs) + "\n")
    accuracy = json.loads((text_run / "result.json").read_text())["test"]["accuracy"]
    for source in ("test.txt", "test.csv"):
        assert main(["predict", str(text_run), str(tmp_path / source), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)["rows"]
        predicted = np.array([r["prediction"] for r in rows])
        assert float((predicted == labels).mean()) == accuracy
    p = tunelab.load_run(text_run)
    assert p.predict(["soup and bread with butter", "the goal of the match"]).tolist() == ["food", "sport"]


def test_the_run_report_of_a_text_run_shows_documents_and_tokenizer(text_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert (text_run / "report.html").is_file()
    assert main(["report", str(text_run), "--out", str(tmp_path / "r.html"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "run"
    report = json.loads((tmp_path / "r.json").read_text())
    data = next(s for s in report["sections"] if s["title"].startswith("data"))
    rows = {r[0]: r[1:] for r in data["items"][0]["rows"]}
    prep = json.loads((text_run / "result.json").read_text())["info"]["preprocess"]
    assert rows["documents read"] == ["", prep["documents"]["read"]]
    assert rows["exact duplicate documents"] == ["dropped before the split", 1]
    assert rows["tokenizer"][1] == f"word, vocabulary of {prep['text']['vocab_size']}"
    assert rows["truncated documents"][1] == prep["text"]["truncated_documents"]
    html = (tmp_path / "r.html").read_text()
    assert "confusion matrix" in html and "documents read" in html


def test_export_refuses_a_text_run_with_the_way_to_predict(text_run, capsys):
    pytest.importorskip("safetensors")
    assert main(["export", str(text_run), "--format", "safetensors"]) != 0
    assert "tunelab.load_run" in capsys.readouterr().err


def test_search_ablate_cv_and_lr_find_run_on_text(tmp_path, text_csv, capsys):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    r = recipe(
        tmp_path / "t.yaml",
        text_csv,
        extra="search: {optimizer.lr: {type: loguniform, low: 0.01, high: 0.1}}\n",
    )
    assert main(["search", str(r), "--trials", "2", "--storage", storage, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["value"] > 0.5
    a = recipe(tmp_path / "a.yaml", text_csv, extra="methods: [{name: text_augment, synonyms: vocabulary}]\n")
    assert main(["ablate", str(a), "--seeds", "2", "--storage", storage, "--json"]) == 0
    variants = json.loads(capsys.readouterr().out)["variants"]
    assert any("text_augment" in v["name"] for v in variants)
    assert main(["cv", str(r), "--folds", "2", "--storage", storage, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["lr-find", str(r), "--steps", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["suggested_lr"] > 0


def test_compress_prunes_a_textcnn_and_quantizes_its_linear_layers(tmp_path, text_csv, capsys):
    r = recipe(tmp_path / "cnn.yaml", text_csv, model="{name: textcnn, embed_dim: 16, channels: 8}")
    assert main(["train", str(r), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    args = [
        "compress",
        str(tmp_path / "run"),
        "--sparsity",
        "0.5",
        "--finetune-epochs",
        "1",
        "--threads",
        "1",
    ]
    assert main([*args, "--quantize", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) >= 3 and all(0 <= row["val"]["accuracy"] <= 1 for row in rows)
    assert main([*args, "--structured", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[1]["params"] < rows[0]["params"]
