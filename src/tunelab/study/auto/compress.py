"""Stage 7 of ``tunelab auto``: the smallest and the fastest model within a quality tolerance.

The deployable run (``run/``) is compressed three ways (``tunelab.study.compress.compress_run``):
unstructured pruning (``UNSTRUCTURED``, with int8 quantization in the same measurement) and
structured pruning (``STRUCTURED``), each pruned model fine-tuned a few epochs (what the stage's
time allows, possibly none). Models are chosen on val only (the test split stays unread here:
stage 6 read it). A row is within tolerance when its val metric is at most ``tolerance`` points
below the dense model's (points: hundredths of a classification metric, which lies in [0, 1];
units of the metric for a regression loss, above it). Of those rows: the smallest (bytes on
disk; the sparse file of an unstructured row) and the fastest (latency at batch 1 relative to
the dense model timed in the same interleaved rounds, since the two measurements run apart).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunelab.study.compress import CompressResult, CompressRow, compress_run

UNSTRUCTURED = (0.5, 0.8, 0.9)
STRUCTURED = (0.25, 0.5)
TIMING_S = 0.25  # timing budget per model and measurement: enough for a stable median at batch 1
THROUGHPUT_BATCH = 256  # the throughput's batch: 1024 (compress's default) took minutes for a resnet
# Below this many seconds left, only the unstructured rows and int8 (no fine-tuning) are measured:
# the structured rows need a second measurement of their own.
STRUCTURED_MIN_S = 60.0
ROWS = len(UNSTRUCTURED) + len(STRUCTURED)


def finetune_epochs(seconds: float, seconds_per_epoch: float, epochs: int) -> int:
    """Fine-tuning epochs per pruned row: a quarter of the run's, fewer if the stage's time is short.

    >>> finetune_epochs(100, 1.0, 40), finetune_epochs(10, 1.0, 40), finetune_epochs(1, 1.0, 40)
    (10, 2, 0)
    """
    fits = int(seconds / (ROWS * max(seconds_per_epoch, 1e-6)))
    return max(0, min(max(1, epochs // 4), fits))


def run_compress_stage(
    run_dir: Path, *, tolerance: float, epochs: int, classification: bool, seconds: float = math.inf
) -> dict[str, Any]:
    """Compress ``run_dir``; every row's figures and the smallest and fastest within tolerance.

    ``seconds``: the stage's time; below ``STRUCTURED_MIN_S`` the structured rows are left out."""
    common = {
        "finetune_epochs": epochs,
        "seeds": 1,
        "budget_s": TIMING_S,
        "throughput_batch": THROUGHPUT_BATCH,
        "evaluate_test": False,
    }
    parts: list[CompressResult] = []
    notes: list[str] = []
    if seconds < STRUCTURED_MIN_S:
        notes.append(
            f"structured pruning not measured: {seconds:.0f} s left (it needs {STRUCTURED_MIN_S:.0f})"
        )
    calls: list[dict[str, Any]] = [{"sparsities": UNSTRUCTURED, "quantize": True, "save": True}]
    if seconds >= STRUCTURED_MIN_S:
        calls.append({"sparsities": STRUCTURED, "structured": True, "save": False})
    for options in calls:
        try:
            parts.append(compress_run(run_dir, **options, **common))  # type: ignore[arg-type]
        except Exception as e:
            notes.append(
                f"{'structured' if options.get('structured') else 'unstructured'} pruning failed: {e}"
            )
    if not parts:
        return {"rows": [], "smallest": None, "fastest": None, "notes": notes}
    # The tolerance is in points of accuracy for a classification (the compared metric may be the
    # val loss auto selects on), else in units of the compared metric.
    metric, mode = ("accuracy", "max") if classification else (parts[0].metric, parts[0].mode)
    tol = tolerance / 100 if classification else tolerance
    rows = []
    for part in parts:
        dense = part.row("dense")
        for r in part.rows:
            if r.name == "dense" and rows:
                continue  # one dense row: the first measurement's
            rows.append(_row(r, dense, metric, mode, tol))
    within = [r for r in rows if r["within"]]
    return {
        "metric": metric,
        "tolerance": tolerance,
        "tolerance_value": tol,
        "finetune_epochs": epochs,
        "rows": rows,
        "smallest": min(within, key=lambda r: (r["bytes"], r["name"] != "dense"))["name"] if within else None,
        "fastest": max(within, key=lambda r: (r["speedup"], r["name"] == "dense"))["name"]
        if within
        else None,
        "notes": notes,
    }


def _row(r: CompressRow, dense: CompressRow, metric: str, mode: str, tol: float) -> dict[str, Any]:
    val, ref = r.val.get(metric, math.nan), dense.val.get(metric, math.nan)
    loss = (ref - val) if mode == "max" else (val - ref)
    return {
        "name": r.name,
        "method": r.method,
        "val": val,
        "val_drop": loss,
        "within": bool(math.isfinite(loss) and loss <= tol + 1e-12),
        "params": r.params,
        "nonzero_params": r.nonzero_params,
        "bytes": r.sparse_size_bytes if r.sparse_size_bytes is not None else r.size_bytes,
        "size_bytes": r.size_bytes,
        "latency_ms": r.latency_ms,
        "throughput": r.throughput,
        "speedup": dense.latency_ms / r.latency_ms if r.latency_ms > 0 else math.nan,
        "path": str(Path(r.path)),
    }
