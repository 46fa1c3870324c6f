"""The tokenizer step: fit on train only, truncation and padding, saved and read back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunelab.data import load_data
from tunelab.data.preprocess import Preprocessing
from tunelab.data.tokenize import TextStep
from tunelab.errors import DataError
from tunelab.spec import DataSpec, PreprocessSpec

pytest.importorskip("tokenizers")


def docs(*texts: str) -> np.ndarray:
    a = np.empty(len(texts), dtype=object)
    a[:] = texts
    return a


def test_word_vocabulary_comes_from_train_only_with_min_freq_and_max_vocab():
    train = docs("the cat sat", "the cat ran", "the dog")
    step, notes = TextStep.fit(train, PreprocessSpec(min_freq=2, max_length=6))
    vocab = step.vocabulary()
    assert vocab == ["[PAD]", "[UNK]", "the", "cat"]  # sat, ran, dog: seen once, so unknown
    ids = step.apply(docs("The CAT sat on a zebra"))
    assert ids.tolist() == [[2, 3, 1, 1, 1, 1]]  # lower-cased; unseen words are [UNK] = 1
    small, _ = TextStep.fit(train, PreprocessSpec(min_freq=1, max_vocab=3))
    assert small.vocab_size == 3 and small.vocabulary()[2] == "the"
    assert notes["text"]["vocab_size"] == 4 and notes["text"]["tokenizer"] == "word"


def test_documents_are_truncated_and_padded_to_max_length():
    step, _ = TextStep.fit(docs("a b c d e f", "a b"), PreprocessSpec(min_freq=1, max_length=4))
    ids = step.apply(docs("a b c d e f", "a", ""))
    assert ids.shape == (3, 4) and ids.dtype == np.int64
    assert (ids[0] != 0).all() and ids[1].tolist()[1:] == [0, 0, 0] and (ids[2] == 0).all()


def test_the_same_train_split_gives_the_same_ids():
    train = docs("x y z", "z y", "y")
    a, _ = TextStep.fit(train, PreprocessSpec(min_freq=1))
    b, _ = TextStep.fit(train, PreprocessSpec(min_freq=1))
    assert a == b and a.vocabulary() == ["[PAD]", "[UNK]", "y", "z", "x"]  # by count, then a-z


def test_json_round_trip_through_its_tokenizer_file_and_a_tampered_file_is_refused(tmp_path, text_csv):
    b = load_data(DataSpec(name="text_csv", params={"path": str(text_csv)}), PreprocessSpec(max_length=20))
    pre = b.preprocessing
    assert set(pre.files()) == {"tokenizer.json"}
    (tmp_path / "preprocess.json").write_text(json.dumps(pre.to_json()))
    for name, text in pre.files().items():
        (tmp_path / name).write_text(text)
    back = Preprocessing.from_json(
        json.loads((tmp_path / "preprocess.json").read_text()), str(tmp_path / "preprocess.json")
    )
    sample = docs("soup and bread", "a new laptop")
    assert back == pre and np.array_equal(back.transform(sample), pre.transform(sample))
    assert Preprocessing.from_json(pre.to_json(), files=pre.files()) == pre
    (tmp_path / "tokenizer.json").write_text(pre.files()["tokenizer.json"].replace("soup", "stew"))
    with pytest.raises(DataError, match="SHA-256"):
        Preprocessing.from_json(pre.to_json(), str(tmp_path / "preprocess.json"))


def test_a_pretrained_tokenizer_wraps_each_document_in_its_special_tokens(tiny_bert):
    step, _ = TextStep.fit(docs("soup"), PreprocessSpec(tokenizer=str(tiny_bert), max_length=8))
    cls, sep = step.start_id, step.end_id
    ids = step.apply(docs("soup", "goal " * 20))
    row = ids[0].tolist()
    assert row[0] == cls and sep in row and set(row[row.index(sep) + 1 :]) == {step.pad_id}
    assert ids[1, 0] == cls and ids[1, -1] == sep  # truncation keeps [SEP] last
    assert {cls, sep, step.pad_id} <= set(step.special_ids)


def test_inputs_that_are_not_documents_are_refused_with_a_fix():
    step, _ = TextStep.fit(docs("a b"), PreprocessSpec(min_freq=1))
    with pytest.raises(DataError, match="list of strings"):
        step.apply(np.zeros((2, 3)))
