"""``transformer``: a pretrained BERT-family encoder (MiniLM) with a new head, fine-tuned end to end.

The encoder (``encoder: minilm``, or a directory: ``tunelab.encoders``) is built here with the
architecture of its ``config.json``; ``model.pretrained: minilm`` then loads its weights
(``tunelab.models.pretrained`` reads the encoder's ``model.safetensors``), and the head is new.
The recipe's ``preprocess.tokenizer`` must be the same encoder (the recipe checks it).

Forward: token ids ``[B, L]`` -> the encoder (attention mask = non-padding) -> mean of the
token states over the document (the pooling MiniLM was trained with) -> [Dropout] -> Linear.

The module's parameter names are the checkpoint's (``embeddings.*``, ``encoder.layer.N.*``) and
its blocks are the transformer's layers, so the transfer methods find them:
``tunelab.optim.layer_blocks`` gives ``embeddings``, ``encoder.layer.0`` .. ``encoder.layer.5``
and ``head.1``; ``freeze`` (all but the head), ``gradual_unfreeze`` (the top layer first) and
``optimizer.layer_decay`` (smaller steps for lower layers) work on them as on any model.

A frozen encoder with a new head is cheaper done as preprocessing: ``preprocess.features: minilm``
computes the features once (cached) and an ``mlp`` head trains on them in seconds
(``tunelab.data.features``). Fine-tuning MiniLM costs ~4.4 s per step at batch 16 and length 256
on 2 CPU cores; use a short ``preprocess.max_length`` and few epochs there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from torch import Tensor, nn

from tunelab.encoders import build_bert, mean_pool
from tunelab.errors import ModelError
from tunelab.models._base import MODELS
from tunelab.models.text import vocabulary
from tunelab.schema import Doc, Range

__all__ = ["TransformerClassifier"]


@MODELS.register(
    "transformer",
    "Pretrained BERT-family encoder (minilm) + mean pooling + a new Linear head, fine-tuned.",
    skip=3,
    text=True,
    tokenizer_param="encoder",
)
class TransformerClassifier(nn.Module):
    """A BERT encoder's layers as this module's blocks, mean pooling, and a Linear head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        text: Mapping[str, Any] | None,
        *,
        encoder: Annotated[
            str, Doc("the encoder's architecture: minilm, or a directory with config.json (HF layout)")
        ] = "minilm",
        # BERT's own dropout rate, as its fine-tuning recipe puts before the classifier.
        dropout: Annotated[float, Range(ge=0, lt=1), Doc("dropout on the pooled features")] = 0.1,
    ) -> None:
        super().__init__()
        vocab_size, pad = vocabulary("transformer", text, input_shape)
        bert = build_bert(encoder, weights=False)
        config = bert.config
        if vocab_size != config.vocab_size:
            raise ModelError(
                f"transformer: the data's token ids come from a vocabulary of {vocab_size}, but {encoder!r} "
                f"embeds {config.vocab_size}; set preprocess.tokenizer: {encoder}"
            )
        positions = config.max_position_embeddings
        if input_shape[0] > positions:
            raise ModelError(
                f"transformer: documents of {input_shape[0]} tokens exceed the {positions} positions "
                f"{encoder!r} embeds; set preprocess.max_length <= {positions}"
            )
        self.pad_id = pad
        # The BERT's own submodules, registered here under the checkpoint's names. The layers sit
        # in containers (ModuleDict -> ModuleList) so layer_blocks opens them into one block each;
        # the BertModel itself is kept unregistered and runs the forward pass with these very
        # modules (its public forward: stable across transformers versions, unlike its layers').
        self.embeddings = bert.embeddings
        self.encoder = nn.ModuleDict({"layer": bert.encoder.layer})
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(config.hidden_size, num_outputs))
        self.__dict__["_bert"] = bert

    def forward(self, ids: Tensor) -> Tensor:
        mask = (ids != self.pad_id).long()  # [B, L]
        hidden = self._bert(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, L, H]
        return self.head(mean_pool(hidden, mask))  # [B, H] -> [B, num_outputs]

    def train(self, mode: bool = True) -> TransformerClassifier:
        super().train(mode)
        self._bert.training = mode  # its submodules are ours (switched above); this is its own flag
        return self
