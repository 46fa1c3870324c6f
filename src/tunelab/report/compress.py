"""Rendering of ``tunelab compress`` results: one table, and the JSON ``--json`` prints.

Renderers only format: every number comes from ``tunelab.study.compress.CompressResult``.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from tunelab.report.terminal import fmt, fmt_bytes
from tunelab.study.compress import CompressResult, CompressRow

# The table is wide (an interval per quality column): piped output gets this width.
PIPED_WIDTH = 190


def compress_json(result: CompressResult) -> dict[str, Any]:
    """What ``--json`` prints: the settings and ``rows`` (see ``CompressRow``); each row has
    ``sparsity``, ``nonzero_params``, ``size_bytes``, ``latency_ms``, ``val.<metric>`` (the mean
    over seeds) and ``val_summary.<metric>`` (n, mean, std, confidence interval)."""
    return result.to_dict()


def _quality(row: CompressRow, split: str, metric: str) -> str:
    """mean ± half-width of the interval, or the mean alone when there is one value."""
    mean = getattr(row, split).get(metric)
    s = getattr(row, f"{split}_summary").get(metric)
    if mean is None:
        return "-"
    if not s or s.get("ci_low") is None or s["n"] < 2:
        return fmt(mean)
    half = (s["ci_high"] - s["ci_low"]) / 2
    return f"{fmt(mean)} ± {half:.4f}"


def _delta(row: CompressRow, base: CompressRow, metric: str) -> str:
    a, b = row.val.get(metric), base.val.get(metric)
    if a is None or b is None or row is base:
        return "-"
    return f"{a - b:+.4f}"


def compress_table(result: CompressResult) -> Table:
    """The one table: counts, size, FLOPs, timings, quality with intervals, Pareto marks."""
    m = result.metric
    seeds = max(len(r.seeds) for r in result.rows)
    title = (
        f"compress · {result.run_dir} · fine-tuning {result.finetune_epochs} epoch(s) · "
        f"{seeds} seed(s) · {result.threads} thread(s) on {result.device}"
        + (" · compiled" if result.compiled else "")
    )
    t = Table(title=title, title_justify="left")
    for name, justify in [
        ("row", "left"),
        ("sparsity", "right"),
        ("params", "right"),
        ("nonzero", "right"),
        ("size", "right"),
        ("sparse size", "right"),
        ("FLOPs", "right"),
        ("latency ms p50 / p95", "right"),
        (f"samples/s (b={result.throughput_batch})", "right"),
        (f"val {m}", "right"),
        (f"Δ val {m}", "right"),
        (f"test {m}", "right"),
        ("pareto", "center"),
    ]:
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    base = next((r for r in result.rows if r.method == "dense"), result.rows[0])
    for r in result.rows:
        t.add_row(
            r.name,
            f"{r.weight_sparsity:.3f}",
            fmt(r.params),
            fmt(r.nonzero_params),
            fmt_bytes(r.size_bytes),
            fmt_bytes(r.sparse_size_bytes) if r.sparse_size_bytes is not None else "-",
            fmt(r.flops),
            f"{r.latency_ms:.4f} / {r.latency_p95_ms:.4f}",
            f"{r.throughput:,.0f}" if math.isfinite(r.throughput) else "-",
            _quality(r, "val", m),
            _delta(r, base, m),
            _quality(r, "test", m),
            "★" if r.pareto else "",
        )
    return t


def print_compress(result: CompressResult, console: Console | None = None) -> None:
    """The table, the notes of each row, and where the models were saved."""
    if console is None:
        console = Console()
        console = console if console.is_terminal else Console(width=PIPED_WIDTH)
    console.print(compress_table(result))
    console.print(
        "sparsity: measured share of the dense model's Linear/Conv weights that are zero or removed; "
        f"quality: mean ± half-width of the 95% interval over seeds; ★: on the {result.metric}/latency "
        "Pareto front"
    )
    for r in result.rows:
        for note in r.notes:
            console.print(f"[bold]{r.name}[/bold]: {note}")
    console.print(f"models: {result.run_dir}/compress/<row>/seed-<seed>/ · {result.seconds:.0f} s")
