"""Quality (accuracy, precision, recall, F1, MSE, R², ...) and efficiency (params, FLOPs, latency, size).

``epoch_metrics`` is the fast per-epoch set the training loop calls; ``full_report`` and
``efficiency_report`` are the end-of-run reports.
"""

from tunelab.metrics.efficiency import (
    count_parameters,
    efficiency_report,
    flops,
    latency,
    model_size_bytes,
    throughput,
)
from tunelab.metrics.quality import epoch_metrics, full_report

__all__ = [
    "count_parameters",
    "efficiency_report",
    "epoch_metrics",
    "flops",
    "full_report",
    "latency",
    "model_size_bytes",
    "throughput",
]
