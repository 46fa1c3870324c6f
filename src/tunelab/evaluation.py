"""Evaluation of a model on a split: the loop's per-epoch validation, the final val and test
reports, and the inference cost of the final weights (split out of ``tunelab.train``, which
re-exports ``evaluate`` and ``predict``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.data import DataBundle
from tunelab.data.stream import StreamSplit
from tunelab.methods import TrainState
from tunelab.metrics import efficiency_report, epoch_metrics, full_report
from tunelab.step import AMP_DTYPES

__all__ = ["efficiency", "evaluate", "predict"]

Criterion = Callable[[Tensor, Tensor], Tensor]


@torch.inference_mode()
def predict(net: nn.Module, x: Tensor | StreamSplit, batch_size: int) -> Tensor:
    """Outputs of ``net`` on ``x`` in eval mode, in batches (restores the training flag)."""
    was_training = net.training
    net.eval()
    chunks = (
        x.batches(batch_size)
        if isinstance(x, StreamSplit)
        else (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    )
    try:
        return torch.cat([net(chunk) for chunk in chunks]).float()
    finally:
        net.train(was_training)


def evaluate(
    net: nn.Module, data: DataBundle, split: str, loss_fn: Criterion, batch_size: int, full: bool = False
) -> dict[str, Any]:
    """Loss and metrics of ``net`` on one split; ``full`` adds the per-class report."""
    x, y = data.split(split)
    out = predict(net, x, batch_size)
    metrics: dict[str, Any] = {"loss": float(loss_fn(out, y))}
    if data.task == "regression":  # metrics in the data's own units
        out, y = data.unscale_y(out), data.unscale_y(y)
    if full:
        metrics.update(full_report(data.task, out, y, data.class_names))
    else:
        metrics.update(epoch_metrics(data.task, out, y, data.num_classes))
    return metrics


def efficiency(state: TrainState, net: nn.Module) -> dict[str, Any]:
    """Size and inference cost of the final weights, in the run's precision and memory layout."""
    t, device = state.recipe.train, state.device
    amp_dtype = AMP_DTYPES.get(t.precision)
    fmt = torch.channels_last if t.channels_last else torch.contiguous_format
    # Inference is timed in the run's precision and memory layout: what it would deploy. A model a
    # method handed on (a quantized or narrowed copy, an EMA average) is not the one compiled in
    # prepare(): compiled here, so train.compile times it compiled.
    if t.compile and net is not state.model:
        net.compile()
    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
        example = state.data.example_inputs(1024)
        report = efficiency_report(net, state.data.input_shape, device, memory_format=fmt, example=example)
    report["precision"] = t.precision
    return report
