"""Frozen encoder features: the encoder's mean-pooled states, computed once and cached per document."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.data import features as feats
from tunelab.data import load_data
from tunelab.encoders import build_bert, mean_pool
from tunelab.spec import DataSpec, PreprocessSpec

pytest.importorskip("transformers")


def test_features_are_the_mean_pooled_encoder_states(tiny_bert, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(feats, "_MEMORY", {})
    ids = np.array([[2, 7, 9, 3, 0, 0], [2, 8, 3, 0, 0, 0]], dtype=np.int64)
    out = feats.encode_ids(str(tiny_bert), ids, pad_id=0)
    bert = build_bert(str(tiny_bert), weights=True).eval()
    x = torch.from_numpy(ids)
    with torch.no_grad():
        ref = mean_pool(bert(input_ids=x, attention_mask=(x != 0).long()).last_hidden_state, (x != 0).long())
    assert out.shape == (2, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)


def test_a_second_call_reads_the_cache_and_never_runs_the_encoder(tiny_bert, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(feats, "_MEMORY", {})
    ids = np.array([[2, 7, 3, 0], [2, 9, 3, 0]], dtype=np.int64)
    first = feats.encode_ids(str(tiny_bert), ids, pad_id=0)
    assert list((tmp_path / "text_features").glob("*.npz"))
    monkeypatch.setattr(feats, "_MEMORY", {})  # a new process: only the file remains

    def no_encoder(source):
        raise AssertionError("the encoder ran although every document was cached")

    monkeypatch.setattr(feats, "_encoder", no_encoder)
    again = feats.encode_ids(str(tiny_bert), ids[::-1].copy(), pad_id=0)
    assert np.array_equal(again, first[::-1])


def test_a_features_run_gives_a_head_numbers_and_scales_them(tiny_bert, text_csv):
    spec = PreprocessSpec(tokenizer=str(tiny_bert), features=str(tiny_bert), max_length=24)
    b = load_data(DataSpec(name="text_csv", params={"path": str(text_csv)}), spec)
    assert b.input_shape == (16,) and b.x_train.dtype == torch.float32
    assert "text" not in b.meta  # the model reads numbers, not token ids
    assert float(b.x_train.mean(0).abs().max()) < 1e-4  # standardized on train
    assert b.card()["documents"] is True
    assert [s.to_json()["kind"] for s in b.preprocessing.x] == ["text", "features", "standardize"]
