"""``gru``: a recurrent network (torch ``nn.GRU``) that reads each sample as a sequence.

How a sample becomes a sequence ``[B, T, F]`` (T steps of F features):

    tabular (F,)      F steps of 1 feature
    signal  (C, L)    L steps of C features (one step per position, all channels at once)
    image   (C, H, W) H steps of C*W features (the image is read row by row)
    text    (L,)      token ids: each id is looked up in an embedding of ``embed_dim`` features,
                      and the GRU reads the document's tokens only (a packed sequence: the
                      padding after each document is never read, so its final state is the last
                      token's)

Text is the one kind of data that this family reads through a layer of its own: whether the
``L`` numbers of a sample are token ids is what the data says (``DataBundle.meta["text"]``, passed
by ``build_model``), so a recipe names ``gru`` for text as for signals; ``embed_dim`` is used by
text only.

The last layer's final hidden state (both directions when bidirectional) goes through
[Dropout] -> Linear to the outputs. There is no ``batch_norm`` parameter: batch statistics do not
fit a recurrence whose steps share weights; the GRU's gates already keep its state bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from tunelab.models._base import MODELS, check_input
from tunelab.schema import Doc, Range


def as_sequence(x: Tensor) -> Tensor:
    """``[B, *input_shape]`` -> ``[B, T, F]`` following the table in the module docstring.

    >>> import torch
    >>> as_sequence(torch.zeros(2, 3, 8, 5)).shape  # image (3, 8, 5): 8 rows of 3*5 features
    torch.Size([2, 8, 15])
    """
    if x.dim() == 2:  # [B, F] -> [B, F, 1]
        return x.unsqueeze(-1)
    if x.dim() == 3:  # [B, C, L] -> [B, L, C]
        return x.transpose(1, 2)
    b, c, h, w = x.shape  # [B, C, H, W] -> [B, H, C, W] -> [B, H, C*W]
    return x.permute(0, 2, 1, 3).reshape(b, h, c * w)


@MODELS.register(
    "gru",
    "Recurrent GRU network; reads signals by step, images by row, tables by feature, text by token.",
    skip=3,
    text="optional",
)
class GRUNet(nn.Module):
    """``nn.GRU`` over the sample read as a sequence, then a Linear on the final hidden state.

    >>> import torch
    >>> GRUNet((1, 40), 10)(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        text: Mapping[str, Any] | None = None,
        *,
        # 64 units hold a 40-step signal or an 8-row image comfortably and train quickly on a CPU.
        hidden_size: Annotated[int, Range(ge=1), Doc("units of each GRU layer (per direction)")] = 64,
        # One layer: small data rarely pays for a deeper recurrence, which is slower to train.
        num_layers: Annotated[int, Range(ge=1), Doc("stacked GRU layers")] = 1,
        # Off: one direction halves the cost; a bidirectional read helps when the end of a sequence
        # says as much as its start.
        bidirectional: Annotated[bool, Doc("read the sequence both ways")] = False,
        # Off: recurrent nets on small data are usually capacity-limited before they overfit.
        dropout: Annotated[
            float, Range(ge=0, lt=1), Doc("dropout between GRU layers and before the final Linear")
        ] = 0.0,
        # 128 dimensions: enough for a vocabulary of tens of thousands of words on small data.
        embed_dim: Annotated[int, Range(ge=1), Doc("size of each token's embedding (text data only)")] = 128,
    ) -> None:
        super().__init__()
        shape = check_input("gru", input_shape, ranks=(1, 2, 3), num_outputs=num_outputs)
        self.embedding: nn.Embedding | None = None
        self.pad_id = 0
        if text:
            self.pad_id = int(text["pad_id"])
            self.embedding = nn.Embedding(int(text["vocab_size"]), embed_dim, padding_idx=self.pad_id)
            features = embed_dim
        elif len(shape) == 1:
            features = 1
        elif len(shape) == 2:
            features = shape[0]
        else:
            features = shape[0] * shape[2]
        directions = 2 if bidirectional else 1
        self.directions = directions
        self.rnn = nn.GRU(
            features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            # nn.GRU drops out only between layers (and warns when there is a single layer).
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Sequential(  # [B, directions * hidden_size] -> [B, num_outputs]
            *([nn.Dropout(dropout)] if dropout > 0 else []),
            nn.Linear(directions * hidden_size, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.embedding is not None:  # token ids [B, L], right-padded
            lengths = (x != self.pad_id).sum(1).clamp(min=1).cpu()  # an empty document reads one pad
            packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
            _, h_n = self.rnn(packed)
        else:
            _, h_n = self.rnn(as_sequence(x))  # h_n: [num_layers * directions, B, H]
        last = h_n[-self.directions :].transpose(0, 1).flatten(1)  # [directions, B, H] -> [B, directions*H]
        return self.head(last)  # [B, num_outputs]
