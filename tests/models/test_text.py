"""embedding_bag and textcnn over token ids, and the gru reading tokens."""

from __future__ import annotations

import pytest
import torch

from tunelab.errors import ModelError
from tunelab.models import build_model
from tunelab.models.gru import GRUNet
from tunelab.models.text import EmbeddingBagNet, TextCNN, hashed_bigrams
from tunelab.spec import ModelSpec

TEXT = {"vocab_size": 40, "pad_id": 0}


def test_embedding_bag_is_the_mean_of_the_tokens_embeddings_padding_left_out():
    torch.manual_seed(0)
    net = EmbeddingBagNet((5,), 2, TEXT)
    ids = torch.tensor([[4, 9, 9, 0, 0]])
    table, head = net.embedding.weight, net.head[-1]
    expected = head((table[4] + 2 * table[9]) / 3)
    assert torch.allclose(net(ids)[0], expected, atol=1e-6)


def test_bigrams_add_hashed_pairs_after_the_vocabulary_and_skip_padding():
    h = hashed_bigrams(torch.tensor([[3, 4, 5, 0]]), pad_id=0, vocab_size=40, buckets=7)
    assert h.shape == (1, 3) and (h[0, :2] >= 40).all() and h[0, 2] == 0
    net = EmbeddingBagNet((4,), 2, TEXT, ngrams=2, buckets=7)
    assert net.embedding.weight.shape[0] == 47 and net(torch.tensor([[3, 4, 5, 0]])).shape == (1, 2)


def test_textcnn_output_does_not_depend_on_how_much_padding_follows():
    torch.manual_seed(0)
    net = TextCNN((12,), 3, TEXT, embed_dim=8, channels=4).eval()
    short = torch.tensor([[5, 6, 7, 0, 0, 0]])
    long = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    assert torch.allclose(net(short), net(long), atol=1e-6)
    assert torch.isfinite(net(torch.zeros(1, 12, dtype=torch.long))).all()  # an empty document


def test_gru_reads_token_ids_through_an_embedding_and_ignores_padding():
    torch.manual_seed(0)
    net = GRUNet((10,), 2, TEXT, hidden_size=8, embed_dim=6).eval()
    a = net(torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0]]))
    b = net(torch.tensor([[3, 4, 5, 0, 0]]))
    assert torch.allclose(a, b, atol=1e-6) and net.embedding is not None
    assert GRUNet((1, 40), 3).embedding is None  # signals: as before


def test_build_model_passes_the_vocabulary_and_refuses_mismatches():
    net = build_model(ModelSpec("textcnn", params={"channels": 4}), (8,), 2, text=TEXT)
    assert net(torch.ones(3, 8, dtype=torch.long)).shape == (3, 2)
    with pytest.raises(ModelError, match="does not read token ids"):
        build_model(ModelSpec("mlp"), (8,), 2, text=TEXT)
    with pytest.raises(ModelError, match="reads token ids of text data"):
        build_model(ModelSpec("embedding_bag"), (4,), 2)


# --- the contract of every family over token ids (the transformer's: tests/models/test_transformer.py)

CONTRACT = {"embedding_bag": {}, "textcnn": {"channels": 8, "embed_dim": 16}, "gru": {"hidden_size": 16}}


def _ids_task(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents of 4-10 tokens whose class is which third of the vocabulary most tokens come from."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    ids = 2 + y[:, None] * 12 + torch.randint(0, 12, (n, 10), generator=g)
    lengths = torch.randint(4, 11, (n,), generator=g)
    ids[torch.arange(10) >= lengths[:, None]] = 0
    return ids, y


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_contract_on_token_ids_learns_backprops_everywhere_and_round_trips(name):
    x, y = _ids_task()
    torch.manual_seed(0)
    net = build_model(ModelSpec(name, params=CONTRACT[name]), (10,), 3, text=TEXT)
    torch.manual_seed(0)
    twin = build_model(ModelSpec(name, params=CONTRACT[name]), (10,), 3, text=TEXT)
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), twin.state_dict().values(), strict=True)
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    before = torch.nn.functional.cross_entropy(net.eval()(x), y).item()
    for _ in range(30):
        net.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    grads = [n for n, p in net.named_parameters() if p.grad is None]
    assert not grads, f"no gradient for {grads}"
    after = torch.nn.functional.cross_entropy(net.eval()(x), y).item()
    assert after < 0.5 * before
    twin.load_state_dict(net.state_dict())
    assert torch.equal(net.eval()(x), twin.eval()(x))
