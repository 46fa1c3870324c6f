"""Terminal rendering with rich: tables of a run's result, registry listings, a progress bar.

Renderers only format: the numbers come from ``RunResult.to_dict()`` and the registries.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from tunelab.methods import Method, TrainState
from tunelab.registry import Registry
from tunelab.runs import RunResult

QUALITY_ORDER = ("loss", "accuracy", "precision", "recall", "f1", "mse", "rmse", "mae", "r2")


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        return f"{v:.4f}" if abs(v) < 1e3 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _fact(v: Any) -> str:
    """A method's fact, short: lists of names (pretrained tensors) show as a count."""
    if isinstance(v, (list, tuple)) and len(v) > 4:
        return f"{len(v)} items"
    return fmt(v)


def preprocess_lines(report: dict[str, Any]) -> list[str]:
    """What cleaning and preprocessing did (``info["preprocess"]``), a line per kind of change.

    >>> preprocess_lines({"rows": {"read": 10, "dropped_missing_target": 1, "target": "y"},
    ...                   "dropped_columns": {"id": "ID-like"}})
    ['preprocess: rows: 1 of 10 dropped (target y missing)', '  dropped columns: id (ID-like)']
    """
    lines = []
    rows = report.get("rows") or {}
    if rows.get("dropped_missing_target"):
        n, read = rows["dropped_missing_target"], rows["read"]
        lines.append(f"rows: {n} of {read} dropped (target {rows['target']} missing)")
    dup = report.get("duplicates") or {}
    within = {k: v for k, v in (dup.get("within") or {}).items() if v}
    across = {k: v for k, v in (dup.get("across") or {}).items() if v}
    if within or across:
        where = ", ".join(
            [f"{v} within {k}" for k, v in within.items()] + [f"{v} {k}" for k, v in across.items()]
        )
        leak = " (across splits: leakage)" if across else ""
        lines.append(f"duplicate rows: {where}{leak}; {dup.get('action', '')}")
    near = dup.get("near") or {}
    near_where = [f"{v} within {k}" for k, v in (near.get("within") or {}).items() if v]
    near_where += [f"{v} {k}" for k, v in (near.get("across") or {}).items() if v]
    if near_where:
        # Documents carry their measure (1 - Jaccard of word shingles); arrays are RMS differences.
        what = f"documents ({near['measure']}" if near.get("measure") else "rows (RMS difference"
        unit = "" if near.get("measure") else " std"
        lines.append(
            f"near-duplicate {what} <= {near.get('threshold')}{unit}): {', '.join(near_where)}; "
            f"{dup.get('action', '')}"
        )
    for key, title in (
        ("dropped_columns", "dropped columns"),
        ("imputed", "imputed"),
        ("encoded", "encoded"),
    ):
        items = report.get(key) or {}
        if items:
            lines.append(f"{title}: " + "; ".join(f"{c} ({why})" for c, why in items.items()))
    if report.get("fit"):  # a streamed set's fit: over which rows (a sample, when memory is short)
        lines.append(f"fit on: {report['fit']}")
    return [("preprocess: " if i == 0 else "  ") + line for i, line in enumerate(lines)]


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_tables(result: RunResult) -> list[Table]:
    """The tables `tunelab train` prints: quality on val and test, then costs."""
    d = result.to_dict()
    quality = Table(title="quality", title_justify="left")
    quality.add_column("metric")
    quality.add_column("val", justify="right")
    quality.add_column("test", justify="right")
    for k in QUALITY_ORDER:
        if k in d["val"] or k in d["test"]:
            quality.add_row(k, fmt(d["val"].get(k)), fmt(d["test"].get(k)))
    tables = [quality]
    eff = d.get("efficiency") or {}
    if eff:
        cost = Table(title="cost", title_justify="left")
        cost.add_column("measure")
        cost.add_column("value", justify="right")
        rows = [
            ("parameters", eff.get("params")),
            ("size on disk", fmt_bytes(eff["size_bytes"]) if "size_bytes" in eff else None),
            ("FLOPs / sample", eff.get("flops")),
            ("train seconds", eff.get("train_seconds")),
            ("latency ms (batch 1, median)", eff.get("latency_ms")),
            ("latency ms (batch 1, p95)", eff.get("latency_p95_ms")),
            ("throughput samples/s", eff.get("throughput")),
        ]
        for name, v in rows:
            if v is not None:
                cost.add_row(name, fmt(v) if not isinstance(v, str) else v)
        tables.append(cost)
    return tables


def headline(result: RunResult) -> str:
    """One line: status, epochs, the best epoch of the monitor, and which weights were evaluated."""
    evaluated = (
        "best-epoch weights (restored)"
        if result.info.get("early_stopping", {}).get("restored")
        else f"weights after epoch {result.epochs}"
    )
    if "ema" in result.info:
        evaluated = f"EMA of the {evaluated}" if result.info["ema"].get("evaluate") == "ema" else evaluated
    return (
        f"{result.status} · {result.epochs} epochs · best {result.monitor} {fmt(result.best_value)} "
        f"at epoch {fmt(result.best_epoch)} · evaluated: {evaluated}"
    )


def print_run(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print(headline(result))
    for table in run_tables(result):
        console.print(table)
    if result.message:
        console.print(result.message)
    for name, facts in result.info.items():
        if name == "preprocess":
            for line in preprocess_lines(facts):
                console.print(escape(line))
            continue
        text = (
            ", ".join(f"{k} {_fact(v)}" for k, v in facts.items()) if isinstance(facts, dict) else fmt(facts)
        )
        console.print(f"[bold]{escape(name)}[/bold]: {escape(text)}")
    if result.run_dir:
        console.print(f"run directory: {result.run_dir}")


def print_registry(reg: Registry, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{reg.kind}s", title_justify="left", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("parameters")
    for e in reg:
        name = e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "")
        params = "\n".join(p.describe() for p in e.params) or "-"
        table.add_row(escape(name), escape(e.description), escape(params))
    console.print(table)


class Progress(Method):
    """A per-epoch progress bar on stderr, hooked in as a method (the loop's one mechanism)."""

    name = "progress"

    def __init__(self, epochs: int) -> None:
        self._bar = RichProgress(
            TextColumn("epoch"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("train", total=epochs, status="")
        self._bar.start()

    def epoch_end(self, state: TrainState) -> None:
        rec = state.history[-1]
        status = f"train loss {rec['train']['loss']:.4f} · {state.monitor} {state.last():.4f}"
        # Epochs done, read from the history: a resumed run's bar starts where the run stopped,
        # and the bar keeps no state of its own to checkpoint.
        self._bar.update(self._task, completed=len(state.history), status=status)

    def close(self) -> None:
        self._bar.stop()
