"""Exponential moving average (EMA) of the weights, evaluated and saved in place of the raw weights.

``ema_update`` is the update ``avg ← decay·avg + (1 − decay)·cur`` over lists of tensors. The
``EMA`` adapter keeps the average in a ``torch.optim.swa_utils.AveragedModel`` (with
``get_ema_multi_avg_fn``, PyTorch's fused ``_foreach_lerp_`` implementation), updates it in the
``after_step`` event and, with ``evaluate: ema``, returns it from ``eval_model`` so that the
averaged weights are the ones validated, early-stopped on, checkpointed and tested.

Buffers are averaged too (``use_buffers=True``): the batch-norm running statistics of the average
then describe the averaged weights rather than the raw ones, so no ``update_bn`` pass is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.schema import Doc, Range

__all__ = ["EMA", "ema_update"]


@torch.no_grad()
def ema_update(avg: Iterable[Tensor], cur: Iterable[Tensor], decay: float) -> None:
    """In place, ``avg ← decay·avg + (1 − decay)·cur`` for each pair of tensors.

    Floating tensors use one fused ``torch._foreach_lerp_``; integer tensors (counters such as
    batch norm's ``num_batches_tracked``) cannot hold an average and are copied from ``cur``.

    >>> import torch
    >>> a, c = [torch.tensor([0.0, 10.0])], [torch.tensor([1.0, 0.0])]
    >>> ema_update(a, c, decay=0.9); a[0]
    tensor([0.1000, 9.0000])
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    avg, cur = list(avg), list(cur)
    if len(avg) != len(cur):
        raise ValueError(f"avg and cur differ in length: {len(avg)} != {len(cur)}")
    floating = [(a, c) for a, c in zip(avg, cur, strict=True) if a.is_floating_point()]
    if floating:
        # lerp(avg, cur, w) = avg + w·(cur − avg) = (1 − w)·avg + w·cur, with w = 1 − decay.
        torch._foreach_lerp_([a for a, _ in floating], [c for _, c in floating], 1.0 - decay)
    for a, c in zip(avg, cur, strict=True):
        if not a.is_floating_point():
            a.copy_(c)


@METHODS.register("ema", "Exponential moving average of the weights and BN statistics, evaluated and saved.")
class EMA(Method):
    """Weight EMA through ``AveragedModel`` (see ``ema_update``).

    The average starts as a copy of the weights at the first update and then follows
    ``avg ← decay·avg + (1 − decay)·weights`` every ``update_every`` optimizer steps; its horizon
    is about ``update_every / (1 − decay)`` steps.
    """

    name = "ema"

    def __init__(
        self,
        *,
        # 0.99 averages over ~100 steps: one to a few epochs of a small dataset (a few hundred
        # to a few thousand steps per run). 0.999 (~1000 steps, common for ImageNet-scale runs)
        # would lean on early, poor weights for most of a short run.
        decay: Annotated[float, Range(gt=0, lt=1), Doc("weight of the old average at each update")] = 0.99,
        evaluate: Annotated[
            Literal["ema", "model"], Doc("which weights are evaluated and saved: the average or the raw ones")
        ] = "ema",
        # 1: every step; a larger value saves the update's cost on a large model.
        update_every: Annotated[int, Range(ge=1), Doc("update the average every this many steps")] = 1,
    ) -> None:
        self.decay, self.evaluate, self.update_every = decay, evaluate, update_every
        self.averaged: AveragedModel | None = None

    def setup(self, state: TrainState) -> None:
        model = state.model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        # torch's EMA function rounds integer buffers (BN's num_batches_tracked) back down after
        # averaging, which freezes them; copy them from the model instead (see ema_update).
        avg_buffers = dict(self.averaged.module.named_buffers())
        pairs = [(avg_buffers[n], b) for n, b in model.named_buffers() if not b.is_floating_point()]
        self._int_avg, self._int_cur = [a for a, _ in pairs], [b for _, b in pairs]
        state.info["ema"] = {"decay": self.decay, "evaluate": self.evaluate}

    def after_step(self, state: TrainState) -> None:
        if state.step % self.update_every:
            return
        self.averaged.update_parameters(state.model)  # type: ignore[union-attr]
        if self._int_avg:
            torch._foreach_copy_(self._int_avg, self._int_cur)

    def eval_model(self, state: TrainState, model: nn.Module) -> nn.Module:
        if self.evaluate == "ema":
            return self.averaged.module  # type: ignore[union-attr]
        return model

    def state_dict(self) -> dict[str, Any]:
        # The average's weights, buffers and n_averaged (0 until the first update).
        return {"averaged": self.averaged.state_dict()}  # type: ignore[union-attr]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Copied into the tensors setup made, so the integer-buffer pairs stay valid.
        self.averaged.load_state_dict(state["averaged"])  # type: ignore[union-attr]
