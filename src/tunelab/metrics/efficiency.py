"""Efficiency metrics: what a model costs to store and to run.

Counts (parameters, size on disk, FLOPs) are exact and deterministic. Timings (latency, throughput)
are measured under a time budget, after a warm-up, and summarized by the median, which one stall of
a shared machine does not move; they are evidence for comparing runs on the same machine, never
absolute truths, and ``efficiency_report`` records the thread count and device beside them.

Every function leaves the model as it found it: each module's training flag is restored one by one
(a frozen BatchNorm kept in eval mode inside a training model stays so), and no global RNG is drawn.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from tunelab.errors import ModelError

# Timed calls made even when the budget is already spent: five keeps the median robust to two
# outliers (a GC pause, a scheduler hiccup), yet costs little when a test passes a tiny budget.
MIN_REPEATS = 5


def dense_values(t: Tensor) -> Tensor:
    """The plain float values of ``t``; a quantized tensor subclass (torchao) is dequantized.

    Quantized tensors implement few operators (not ``count_nonzero``); their dequantized values
    are zero exactly where the int8 values are.

    >>> dense_values(torch.tensor([0.0, 1.5]))
    tensor([0.0000, 1.5000])
    """
    t = t.detach()
    if type(t) not in (Tensor, nn.Parameter) and hasattr(t, "dequantize"):
        return t.dequantize()
    return t


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts: ``params`` (all), ``trainable`` (requires_grad) and ``nonzero`` entries.

    Quantized weights (torchao int8) count by their dequantized values.

    A parameter shared by two modules is counted once. For a weight pruned with
    ``torch.nn.utils.prune`` (stored as ``weight_orig`` and a ``weight_mask`` buffer), ``nonzero``
    counts the masked weight the model actually uses, so pruning shows before it is made permanent.

    >>> count_parameters(nn.Linear(10, 5))
    {'params': 55, 'trainable': 55, 'nonzero': 55}
    """
    total = trainable = nonzero = 0
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
            mask = getattr(module, name[: -len("_orig")] + "_mask", None) if name.endswith("_orig") else None
            effective = dense_values(p) if mask is None else p.detach() * mask
            nonzero += int(torch.count_nonzero(effective))
    return {"params": total, "trainable": trainable, "nonzero": nonzero}


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the serialized ``state_dict`` (``torch.save``): what a checkpoint takes on disk.

    Buffers (BatchNorm statistics, pruning masks) count too, as they are saved with the weights.

    >>> model_size_bytes(nn.Linear(1000, 1000)) // 1_000_000  # 1,001,000 float32 values, ~2 kB of zip
    4
    """
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def flops(model: nn.Module, example: Tensor) -> int:
    """Forward FLOPs of ``model(example)`` for the whole batch, from ``torch.utils.flop_counter``.

    A multiply-add counts as 2 FLOPs; element-wise ops (bias, activations, norms) are not counted,
    as in PyTorch's counter. Measured in eval mode under ``torch.no_grad``.

    >>> flops(nn.Linear(10, 5), torch.zeros(3, 10))  # 2 * batch * in * out
    300
    """
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        model(example)
    return int(counter.get_total_flops())


def latency(
    model: nn.Module, example: Tensor, *, warmup: int = 10, repeats: int = 50, budget_s: float = 2.0
) -> dict[str, float | int]:
    """Time per forward call at ``example``'s batch size (pass a batch of 1 for latency).

    Runs ``warmup`` untimed calls, then up to ``repeats`` timed ones, in eval mode under
    ``torch.inference_mode``, synchronizing CUDA / MPS around each call. Warm-up stops once half of
    ``budget_s`` is spent (after at least one call: the first pays lazy initialization) and timing
    stops once all of it is, after at least ``MIN_REPEATS`` calls, so the budget may be exceeded by
    those few calls on a slow model. Returns ``median_ms``, ``p95_ms`` and ``repeats`` (calls timed).

    >>> r = latency(nn.Linear(4, 2), torch.zeros(1, 4), warmup=1, repeats=5, budget_s=0.01)
    >>> r["repeats"], 0 < r["median_ms"] <= r["p95_ms"]
    (5, True)
    """
    times = _time_calls(model, example, warmup=warmup, repeats=repeats, budget_s=budget_s)
    ms = np.asarray(times) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "repeats": len(times),
    }


def throughput(
    model: nn.Module, example: Tensor, *, warmup: int = 3, repeats: int = 10, budget_s: float = 2.0
) -> dict[str, float | int]:
    """Samples per second at ``example``'s batch size (pass a large batch, e.g. 1024 samples).

    Same protocol as ``latency``. The rate is ``batch_size / median time per call``: the median,
    not the mean, so one stall does not decide a comparison. Returns ``samples_per_s``,
    ``batch_size`` and ``repeats``.

    >>> r = throughput(nn.Linear(4, 2), torch.zeros(64, 4), warmup=1, repeats=5, budget_s=0.01)
    >>> r["batch_size"], r["samples_per_s"] > 0
    (64, True)
    """
    times = _time_calls(model, example, warmup=warmup, repeats=repeats, budget_s=budget_s)
    batch = int(example.shape[0])
    return {"samples_per_s": batch / float(np.median(times)), "batch_size": batch, "repeats": len(times)}


def efficiency_report(
    model: nn.Module,
    input_shape: tuple[int, ...],
    device: str | torch.device,
    *,
    large_batch: int = 1024,
    budget_s: float = 2.0,
    memory_format: torch.memory_format = torch.contiguous_format,
    example: Tensor | None = None,
) -> dict[str, Any]:
    """Counts and timings of ``model`` on random inputs of one sample's ``input_shape``.

    ``example``: real inputs to time instead, for data that random numbers cannot stand in for
    (token ids): its first sample is the batch of 1, its first ``large_batch`` the large batch.

    ``memory_format=torch.channels_last`` feeds NHWC inputs to a channels_last model. Timings run
    under whatever autocast context the caller holds (the run's precision).

    The model must already be on ``device``. ``budget_s`` is shared: half for latency (batch 1),
    half for throughput (batch ``large_batch``). FLOPs are per sample (measured at batch 1). The
    inputs come from a private generator, so measuring never shifts the global RNG that seeds a run.

    >>> r = efficiency_report(nn.Linear(10, 5), (10,), "cpu", large_batch=32, budget_s=0.02)
    >>> r["params"], r["flops"], r["device"]
    (55, 100, 'cpu')
    """
    device = torch.device(device)
    p = next(model.parameters(), None)
    if p is not None and p.device.type != device.type:
        raise ModelError(
            f"the model is on {p.device} but efficiency is measured on {device}; "
            f"move it first with model.to({str(device)!r})"
        )
    gen = torch.Generator().manual_seed(0)
    if example is not None:
        one, big = example[:1].to(device), example[:large_batch].to(device)
    else:
        one = torch.randn((1, *input_shape), generator=gen).to(device).contiguous(memory_format=memory_format)
        big = (
            torch.randn((large_batch, *input_shape), generator=gen)
            .to(device)
            .contiguous(memory_format=memory_format)
        )
    counts = count_parameters(model)
    lat = latency(model, one, budget_s=budget_s / 2)
    thr = throughput(model, big, budget_s=budget_s / 2)
    return {
        "params": counts["params"],
        "trainable": counts["trainable"],
        "nonzero": counts["nonzero"],
        "size_bytes": model_size_bytes(model),
        "flops": flops(model, one),
        "latency_ms": lat["median_ms"],
        "latency_p95_ms": lat["p95_ms"],
        "throughput": thr["samples_per_s"],
        "throughput_batch": thr["batch_size"],
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """model.eval() for the block, then each module's own flag back.

    Restored per module, not with ``model.train(was_training)``, which would also switch on
    submodules the user keeps in eval mode on purpose (frozen BatchNorm in transfer learning).
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work; a no-op on CPU.

    CUDA and MPS launch kernels asynchronously: without a sync the clock measures the launch, not
    the work.
    """
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def _time_calls(
    model: nn.Module, example: Tensor, *, warmup: int, repeats: int, budget_s: float
) -> list[float]:
    """Seconds per timed ``model(example)`` call, under the budget rules of ``latency``."""
    if warmup < 0 or repeats < 1 or budget_s <= 0:
        raise ValueError(
            f"need warmup >= 0, repeats >= 1 and budget_s > 0; got {warmup=}, {repeats=}, {budget_s=}"
        )
    sync = _synchronizer(example.device)
    min_repeats = min(MIN_REPEATS, repeats)
    start = time.perf_counter()
    times: list[float] = []
    with _eval_mode(model), torch.inference_mode():
        for i in range(max(warmup, 1)):
            if i > 0 and time.perf_counter() - start > budget_s / 2:
                break
            model(example)
        sync()
        for _ in range(repeats):
            if len(times) >= min_repeats and time.perf_counter() - start > budget_s:
                break
            t0 = time.perf_counter()
            model(example)
            sync()
            times.append(time.perf_counter() - t0)
    return times
