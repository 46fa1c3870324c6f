"""Pretrained text encoders read offline from files: names, directories, weights, fingerprints."""

from __future__ import annotations

import shutil

import pytest
import torch

from tunelab.encoders import build_bert, encoder_dir, encoder_key, is_encoder, require, tokenizer_file
from tunelab.errors import TunelabError

pytest.importorskip("transformers")


def test_a_directory_in_hugging_faces_layout_is_an_encoder(tiny_bert):
    assert is_encoder(str(tiny_bert)) and not is_encoder("word")
    assert (
        encoder_dir(str(tiny_bert)) == tiny_bert and tokenizer_file(str(tiny_bert)).name == "tokenizer.json"
    )


def test_unknown_sources_and_missing_packages_say_what_to_do(tmp_path):
    with pytest.raises(TunelabError, match=r"neither a known encoder.*config\.json"):
        encoder_dir(str(tmp_path))
    with pytest.raises(TunelabError, match=r"pip install 'tunelab\[text\]'"):
        require("no_such_module_here")


def test_build_bert_with_and_without_the_weights(tiny_bert):
    from safetensors.torch import load_file

    saved = load_file(str(tiny_bert / "model.safetensors"))
    loaded = build_bert(str(tiny_bert), weights=True)
    assert torch.equal(
        loaded.state_dict()["encoder.layer.0.attention.self.query.weight"],
        saved["encoder.layer.0.attention.self.query.weight"],
    )
    torch.manual_seed(1)
    fresh = build_bert(str(tiny_bert), weights=False)
    assert not torch.equal(
        fresh.state_dict()["encoder.layer.0.attention.self.query.weight"],
        saved["encoder.layer.0.attention.self.query.weight"],
    )


def test_the_fingerprint_follows_the_weights(tiny_bert, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_bert, other)
    assert encoder_key(str(other)) == encoder_key(str(tiny_bert))
    (other / "model.safetensors").write_bytes(b"changed")
    encoder_key.cache_clear()
    assert encoder_key(str(other)) != encoder_key(str(tiny_bert))
