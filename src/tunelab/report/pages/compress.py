"""The report of ``tunelab compress``, from ``CompressResult.to_dict()``
(``RUN_DIR/compress/result.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunelab.report.model import Figure, Item, Note, Report, Section, Series, Table
from tunelab.report.pages.common import num

AXES = (
    ("size_bytes", "size of the saved weights (bytes)", "size"),
    ("latency_ms", "latency ms (batch 1, median)", "latency"),
    ("nonzero_params", "nonzero parameters", "nonzero parameters"),
)


def build_compress_report(d: Mapping[str, Any], out_dir: str | None = None) -> Report:
    m = d["metric"]
    rows = list(d["rows"])
    seeds = max((len(r.get("seeds") or []) for r in rows), default=0)
    report = Report(
        kind="compress",
        title=f"compression of {d['run_dir']}",
        summary=(
            f"{len(rows)} rows · fine-tuning {d['finetune_epochs']} epoch(s) · {seeds} seed(s) · "
            f"{d['threads']} thread(s) on {d['device']}" + (" · compiled" if d.get("compiled") else "")
        ),
        source={"kind": "compress", "run_dir": d["run_dir"], "dir": out_dir},
    )
    section = Section(f"val {m} against what each row costs")
    for key, label, short in AXES:
        section.items.append(trade_figure(d, key, label, short))
    section.items.append(row_table(d))
    notes = [Note(f"{r['name']}: {n}") for r in rows for n in r.get("notes", [])]
    report.sections.append(section)
    if notes:
        report.sections.append(Section("notes", notes))
    return report


def trade_figure(d: Mapping[str, Any], key: str, label: str, short: str) -> Item:
    m = d["metric"]
    rows = [r for r in d["rows"] if r.get(key) is not None and r.get("val", {}).get(m) is not None]
    if not rows:
        return Note(f"no row has both {short} and val {m}")
    series = []
    for r in rows:
        s = (r.get("val_summary") or {}).get(m) or {}
        multi = (s.get("n") or 0) >= 2
        series.append(
            Series(
                r["name"] + (" ★" if r.get("pareto") else ""),
                [r[key]],
                [r["val"][m]],
                kind="scatter",
                low=[s.get("ci_low")] if multi else None,
                high=[s.get("ci_high")] if multi else None,
                labels=[f"{r['name']}: {short} {num(r[key])}, val {m} {num(r['val'][m])}"],
            )
        )
    pareto = [r for r in rows if r.get("pareto")]
    if pareto:
        series.append(
            Series(
                "★ on the val/latency Pareto front",
                [r[key] for r in pareto],
                [r["val"][m] for r in pareto],
                kind="scatter",
                role="pareto",
            )
        )
    seeds = max(len(r.get("seeds") or []) for r in rows)
    return Figure(
        f"compress-{key}",
        "xy",
        f"val {m} against {short}",
        f"Each row's mean val {m} over its fine-tuning seeds (up to {seeds}); bars: 95% t-interval "
        "over seeds "
        f"where a row has two or more. Ringed (★): rows on the Pareto front of val {m} and latency, as "
        "`tunelab compress` marks them. The dense row is the run's model as it is."
        + (" Latency: median at batch 1 on this machine." if key == "latency_ms" else ""),
        x_label=label,
        y_label=f"val {m}",
        series=series,
        half=True,
    )


def row_table(d: Mapping[str, Any]) -> Table:
    m = d["metric"]
    rows = [
        [
            r["name"],
            r.get("weight_sparsity"),
            r.get("params"),
            r.get("nonzero_params"),
            r.get("size_bytes"),
            r.get("flops"),
            r.get("latency_ms"),
            r.get("throughput"),
            r.get("val", {}).get(m),
            r.get("test", {}).get(m),
            "★" if r.get("pareto") else "",
        ]
        for r in d["rows"]
    ]
    return Table(
        "rows",
        [
            "row",
            "sparsity",
            "params",
            "nonzero",
            "size (bytes)",
            "FLOPs",
            "latency ms",
            "samples/s",
            f"val {m}",
            f"test {m}",
            "Pareto",
        ],
        rows,
        "Every row is the bare model (a run's tta is not applied); quality is the mean over seeds.",
    )
