"""Post-training int8 quantization as a recipe method, so that a study can search and ablate it.

The pure function is ``tunelab.compress.quantize.quantize_int8`` (torchao's int8 of every Linear
layer: dynamic, or weight-only). The ``Quantize`` adapter uses the ``eval_model`` event: each epoch, the
weights being evaluated (the raw ones, or the EMA average, or the channel-pruned copy, whichever
the methods listed before it chose) are copied and quantized, and that int8 copy is what is
validated, checkpointed, early-stopped on, tested and timed. Training itself stays in float (the
copy is thrown away each epoch), so this is post-training quantization, measured as deployed: the
val accuracy that selects the best epoch, and the latency a search trades against accuracy, are
the int8 model's, never the float model's.

List it after ``ema`` and ``channel_prune`` (it quantizes what they hand on) and before ``tta``
(which wraps the final model); ``validate_recipe`` says so when the order is wrong.

Checkpoints hold torchao tensors (int8 data plus per-row scales): they load where torchao is
installed, and tunelab's loaders (``model.pretrained``, ``tunelab compress``) dequantize them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from torch import nn

from tunelab.compress.quantize import quantize_int8
from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.models._base import eager_copy
from tunelab.schema import Doc

__all__ = ["Quantize"]

# Methods whose eval_model result quantize must see (listed before it). That tta, which wraps
# the final model, comes after quantize is tta's own check.
_BEFORE = ("ema", "channel_prune")


@METHODS.register(
    "quantize",
    "Post-training int8 of the Linear layers (dynamic or weight-only); the int8 model is evaluated.",
)
class Quantize(Method):
    """Evaluate (and save, and time) an int8 copy of the weights each epoch; see the module doc."""

    name = "quantize"

    def __init__(
        self,
        *,
        # Both need no calibration data. Dynamic also runs the matmul in int8 (fast where int8
        # kernels are, e.g. compiled); weight-only keeps float activations (lower eager latency).
        scheme: Annotated[
            Literal["int8_dynamic", "int8_weight_only"],
            Doc("int8 Linear weights (per row); int8_dynamic also quantizes activations at run time"),
        ] = "int8_dynamic",
    ) -> None:
        self.scheme = scheme

    @classmethod
    def validate_recipe(cls, recipe: Any, spec: Any) -> None:
        names = [m.name for m in recipe.methods]
        at = names.index("quantize")
        late = [n for n in _BEFORE if n in names and names.index(n) > at]
        if late:
            raise RecipeError(
                "methods",
                names,
                f"list {' and '.join(late)} before quantize: it converts the weights they choose "
                "(the EMA average, the narrowed model)",
            )

    def setup(self, state: TrainState) -> None:
        if not any(isinstance(m, nn.Linear) for m in state.model.modules()):
            raise RecipeError(
                "methods.quantize",
                type(state.model).__name__,
                "has no nn.Linear layer; int8_dynamic quantizes Linear layers only (remove the method)",
            )
        state.info["quantize"] = {"scheme": self.scheme}

    def eval_model(self, state: TrainState, model: nn.Module) -> nn.Module:
        return quantize_int8(eager_copy(model), self.scheme)
