"""Models over token ids ``[B, L]`` (int64, right-padded with ``pad_id``): ``embedding_bag``, ``textcnn``.

Both read the data's vocabulary (``DataBundle.meta["text"]``: ``vocab_size``, ``pad_id``), which
``build_model`` passes as ``text``; the recurrent ``gru`` reads token ids too (``tunelab.models.gru``),
and ``transformer`` fine-tunes a pretrained encoder (``tunelab.models.transformer``).

* ``embedding_bag`` (fastText, Joulin et al. 2017): the mean of the tokens' embeddings (and, with
  ``ngrams: 2``, of hashed bigram embeddings) -> [Dropout] -> Linear. Linear in the embeddings,
  so fast and strong on topic classification.
* ``textcnn`` (Kim 2014): embeddings -> parallel Conv1d of several widths -> ReLU -> max over time
  -> Dropout -> Linear.

Padding never counts: ``nn.EmbeddingBag`` leaves ``padding_idx`` out of the mean, and the CNN's
padding embeddings are zero (``padding_idx``) and masked before the max.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from tunelab.errors import ModelError
from tunelab.models._base import MODELS, Widths
from tunelab.schema import Doc, Range

__all__ = ["EmbeddingBagNet", "TextCNN", "hashed_bigrams", "vocabulary"]

# A large odd multiplier spreads the (previous, next) id pairs over the hash buckets.
_BIGRAM_PRIME = 1_000_003


def vocabulary(family: str, text: Mapping[str, Any] | None, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(vocab_size, pad_id)`` of the data's token ids, or a ModelError when the data is no text."""
    if not text:
        raise ModelError(
            f"{family} reads token ids of text data (text_csv, text_folder, bbc_news); this data has "
            f"samples of shape {tuple(input_shape)}: use mlp, cnn1d, cnn2d or gru"
        )
    return int(text["vocab_size"]), int(text["pad_id"])


def hashed_bigrams(ids: Tensor, pad_id: int, vocab_size: int, buckets: int) -> Tensor:
    """fastText's bigram features: each pair of neighbouring tokens hashed into one of ``buckets``
    ids placed after the vocabulary; a pair touching padding becomes ``pad_id``. ``[B, L] -> [B, L-1]``.

    >>> hashed_bigrams(torch.tensor([[3, 4, 0]]), 0, vocab_size=10, buckets=5).tolist()
    [[13, 0]]
    """
    a, b = ids[:, :-1], ids[:, 1:]
    h = (a * _BIGRAM_PRIME + b) % buckets + vocab_size
    return torch.where((a == pad_id) | (b == pad_id), torch.full_like(h, pad_id), h)


@MODELS.register(
    "embedding_bag",
    "fastText-style text classifier: mean of token (and hashed bigram) embeddings, then a Linear.",
    skip=3,
    text=True,
)
class EmbeddingBagNet(nn.Module):
    """Mean of token embeddings (plus hashed bigram embeddings) -> [Dropout] -> Linear.

    >>> net = EmbeddingBagNet((6,), 3, {"vocab_size": 50, "pad_id": 0}, ngrams=2)
    >>> net(torch.tensor([[5, 7, 9, 0, 0, 0]])).shape
    torch.Size([1, 3])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        text: Mapping[str, Any] | None,
        *,
        # 64 dimensions separate a few topics well; fastText's paper used 10 for sentiment.
        embed_dim: Annotated[int, Range(ge=1), Doc("size of each token's embedding")] = 64,
        # Bigrams add word order; fastText reports +1 to 4 points from them on sentiment.
        ngrams: Annotated[int, Range(ge=1, le=2), Doc("1: words only; 2: words and hashed bigrams")] = 1,
        # 2^18 buckets keep bigram collisions rare for corpora of a few thousand documents.
        buckets: Annotated[int, Range(ge=1), Doc("hash buckets of the bigrams (ngrams: 2)")] = 262144,
        dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout on the mean embedding")] = 0.0,
    ) -> None:
        super().__init__()
        vocab_size, pad = vocabulary("embedding_bag", text, input_shape)
        self.pad_id, self.vocab_size, self.ngrams, self.buckets = pad, vocab_size, ngrams, buckets
        rows = vocab_size + (buckets if ngrams == 2 else 0)
        self.embedding = nn.EmbeddingBag(rows, embed_dim, mode="mean", padding_idx=pad)
        self.head = nn.Sequential(
            *([nn.Dropout(dropout)] if dropout > 0 else []), nn.Linear(embed_dim, num_outputs)
        )

    def forward(self, ids: Tensor) -> Tensor:
        if self.ngrams == 2:
            ids = torch.cat([ids, hashed_bigrams(ids, self.pad_id, self.vocab_size, self.buckets)], dim=1)
        return self.head(self.embedding(ids))  # [B, L'] -> [B, E] -> [B, num_outputs]


@MODELS.register(
    "textcnn",
    "Kim (2014) CNN for text: parallel convolutions of several widths, max over time.",
    skip=3,
    text=True,
)
class TextCNN(nn.Module):
    """Embedding -> Conv1d per kernel size -> ReLU -> max over positions -> Dropout -> Linear.

    >>> net = TextCNN((8,), 2, {"vocab_size": 30, "pad_id": 0}, embed_dim=4, channels=2)
    >>> net(torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0]])).shape
    torch.Size([1, 2])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        text: Mapping[str, Any] | None,
        *,
        # Kim's settings: 300-d embeddings (word2vec), widths 3, 4, 5 with 100 maps each, dropout 0.5.
        embed_dim: Annotated[int, Range(ge=1), Doc("size of each token's embedding")] = 128,
        kernel_sizes: Annotated[Widths, Doc("widths (in tokens) of the parallel convolutions")] = (3, 4, 5),
        channels: Annotated[int, Range(ge=1), Doc("feature maps per kernel size")] = 100,
        dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout before the output layer")] = 0.5,
    ) -> None:
        super().__init__()
        vocab_size, pad = vocabulary("textcnn", text, input_shape)
        if not kernel_sizes:
            raise ModelError("textcnn: kernel_sizes must list at least one width, e.g. [3, 4, 5]")
        self.pad_id = pad
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k - 1) for k in kernel_sizes)
        self.head = nn.Sequential(
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(channels * len(kernel_sizes), num_outputs),
        )

    def forward(self, ids: Tensor) -> Tensor:
        e = self.embedding(ids).transpose(1, 2)  # [B, L] -> [B, E, L]
        lengths = (ids != self.pad_id).sum(1, keepdim=True)  # [B, 1]; right-padded documents
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(e))  # [B, C, L + k - 1]: output t sees tokens t-k+1 .. t
            k = conv.kernel_size[0]
            # Windows of padding alone would give relu(bias), a constant competing in the max:
            # they are zeroed (the floor of ReLU), so only windows touching a token count.
            seen = torch.arange(h.shape[2], device=ids.device) < lengths + k - 1  # [B, L + k - 1]
            pooled.append((h * seen.unsqueeze(1)).amax(dim=2))  # max over time -> [B, C]
        return self.head(torch.cat(pooled, dim=1))  # [B, C * kernels] -> [B, num_outputs]
