"""The report of ``tunelab auto`` (its ``auto.json``): one section per stage, with its figures.

The answer first (the final recipe's test figure over new seeds, with its interval), then the
budget as planned and spent, the data profile (copies and leakage), the baseline's curve, the lr
range test, the search's trials, the ablation's differences with their intervals and the Occam
step's verdicts, the final seeds, and the compressed models against the dense one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunelab.metrics.quality import metric_range
from tunelab.report.model import Code, Figure, Marker, Note, Report, Section, Series, Table
from tunelab.report.pages.common import interval_text, num, plural


def build_auto_report(d: Mapping[str, Any], out_dir: str | None = None) -> Report:
    """The auto report from ``auto.json`` (what ``run_auto`` returns)."""
    fin = d.get("final") or {}
    test = fin.get("test") or {}
    metric = fin.get("metric", "metric")
    summary = (
        f"{d.get('name')}: test {metric} {num(test.get('mean'))} "
        f"{interval_text(test.get('ci_low'), test.get('ci_high'))} "
        f"over {plural(test.get('n', 0), 'new seed')}"
    )
    sections = [
        _answer(d),
        _budget(d),
        _profile(d.get("profile") or {}),
        _baseline(d.get("baseline") or {}, d.get("lr_find") or {}),
        _search(d.get("search") or {}),
        _ablation(d.get("ablation") or {}),
        _final(fin),
        _compress(d.get("compress") or {}),
    ]
    return Report(
        "auto", f"tunelab auto: {d.get('name')}", summary, {"kind": "auto", "dir": out_dir}, sections
    )


def _answer(d: Mapping[str, Any]) -> Section:
    fin, seeds = d.get("final") or {}, d.get("seeds") or {}
    test, val = fin.get("test") or {}, fin.get("val") or {}
    rows = [
        [
            f"test {fin.get('metric')}",
            num(test.get("mean")),
            interval_text(test.get("ci_low"), test.get("ci_high")),
        ],
        [
            f"val {fin.get('metric')}",
            num(val.get("mean")),
            interval_text(val.get("ci_low"), val.get("ci_high")),
        ],
    ]
    items: list[Any] = [
        Table(
            f"final recipe, new seeds (mean and {ci_caption(fin.get('metric'))})",
            ["", "mean", "95% CI"],
            rows,
        ),
        Note(
            f"Seeds: selection {seeds.get('selection')} (baseline, lr-find, search), ablation "
            f"{seeds.get('ablation')}, final {seeds.get('final')}. The test split was read only by the final "
            "runs; every choice before them read val."
        ),
    ]
    if d.get("recipe"):
        import yaml

        items.append(
            Code("best.yaml (rerun with tunelab train)", yaml.safe_dump(d["recipe"], sort_keys=False), "yaml")
        )
    return Section("answer", items)


def _budget(d: Mapping[str, Any]) -> Section:
    b = d.get("budget") or {}
    stages = b.get("stages") or {}
    names = list(stages)
    planned = [stages[n].get("planned_s") for n in names]
    spent = [stages[n].get("spent_s") for n in names]
    fig = Figure(
        "budget",
        "bars",
        "budget: planned and spent per stage",
        f"Wall seconds per stage, over every session of this run (total {_seconds(b.get('total_s'))}, "
        f"spent {_seconds(b.get('spent_s'))}). Rule: {b.get('rule', '')}.",
        y_label="seconds",
        series=[Series("planned", names, planned, role="neutral"), Series("spent", names, spent, role="val")],
    )
    return Section("budget", [fig])


def _profile(p: Mapping[str, Any]) -> Section:
    rows = [
        ["task", p.get("task")],
        ["modality", p.get("modality")],
        ["input shape", "x".join(map(str, p.get("input_shape") or []))],
        ["sizes", ", ".join(f"{k} {v}" for k, v in (p.get("sizes") or {}).items())],
        ["model family", p.get("family")],
        ["missing values", (p.get("missing") or {}).get("cells", 0)],
        ["exact copies dropped", (p.get("dropped") or {}).get("exact", 0)],
        ["near copies found", _near_found(p.get("near") or {})],
        ["near copies dropped", (p.get("dropped") or {}).get("near", 0)],
        [
            "leakage across splits",
            ", ".join(f"{k} {v}" for k, v in (p.get("leakage") or {}).items()) or "none",
        ],
    ]
    return Section(
        "data profile", [Table("profile", ["", "value"], rows), *[Note(n) for n in p.get("notes", [])]]
    )


def _seconds(v: Any) -> str:
    """Wall time as a person reads it: ``_seconds(21.677) == "21.7 s"``."""
    return f"{v:.1f} s" if isinstance(v, (int, float)) else "-"


def _counts(counts: Mapping[str, int]) -> str:
    """Trial states in words: ``_counts({"COMPLETE": 18, "PRUNED": 28}) == "18 complete, 28 pruned"``."""
    return ", ".join(f"{n} {state.lower()}" for state, n in counts.items()) or "none"


def _near_found(near: Mapping[str, Any]) -> int:
    return sum((near.get("within") or {}).values()) + sum((near.get("across") or {}).values())


def ci_caption(metric: str | None) -> str:
    """What the final interval is: a t-interval over seeds, clipped to a bounded metric's range.

    >>> ci_caption("accuracy")
    "95% CI: a t-interval over the seeds, clipped to the metric's range [0, 1]"
    >>> ci_caption("loss")
    '95% CI: a t-interval over the seeds'
    """
    bounds = metric_range(metric or "")
    clip = f", clipped to the metric's range [{bounds[0]:g}, {bounds[1]:g}]" if bounds else ""
    return f"95% CI: a t-interval over the seeds{clip}"


def _baseline(b: Mapping[str, Any], lr: Mapping[str, Any]) -> Section:
    items: list[Any] = []
    curve = b.get("curve") or []
    if curve:
        items.append(
            Figure(
                "baseline",
                "xy",
                "baseline: val per epoch",
                f"The baseline recipe, one run on the selection seed ({b.get('status')}: "
                f"{b.get('message') or ''}).",
                x_label="epoch",
                y_label=b.get("monitor", "val"),
                series=[Series("val", list(range(1, len(curve) + 1)), list(curve), role="val")],
            )
        )
    if lr.get("lrs"):
        low, high = lr["range"]
        items.append(
            Figure(
                "lr-find",
                "xy",
                "lr range test",
                f"Smoothed training loss while the lr grows ({lr.get('steps')} "
                f"steps). The search's lr range is [{low:.3g}, {high:.3g}]: a decade around the suggestion.",
                x_label="learning rate",
                y_label="training loss (smoothed)",
                x_log=True,
                series=[
                    Series("smoothed loss", list(lr["lrs"]), list(lr.get("smoothed") or []), role="train")
                ],
                markers=[
                    Marker("x", lr["suggested_lr"], f"suggested {lr['suggested_lr']:.2g}"),
                    Marker("x", low, "range", role="neutral"),
                    Marker("x", high, "range", role="neutral"),
                ],
            )
        )
    return Section("baseline and lr range", items or [Note("the baseline recorded no epoch")])


def _search(s: Mapping[str, Any]) -> Section:
    trials = s.get("trials") or []
    done = [t for t in trials if t.get("value") is not None]
    if not done:
        return Section("search", [Note("no search trial finished in its time: the baseline was the winner")])
    best = s.get("best") or {}
    fig = Figure(
        "search",
        "xy",
        f"search: {s.get('objective')} per trial",
        f"TPE + ASHA, {plural(len(trials), 'trial')} ({_counts(s.get('counts') or {})}), "
        f"{s.get('epochs')} epochs each at most; "
        "pruned and stopped trials have no value. One seed per trial: no intervals.",
        x_label="trial",
        y_label=str(s.get("objective")),
        series=[
            Series(
                "complete",
                [t["number"] for t in done],
                [t["value"] for t in done],
                kind="scatter",
                role="val",
                labels=[f"trial {t['number']} {t.get('model')} {t.get('optimizer')}" for t in done],
            ),
            Series("best", [best.get("number")], [best.get("value")], kind="scatter", role="best"),
        ],
    )
    params = Table(
        "the winner's settings",
        ["parameter", "value"],
        [[k, v] for k, v in (best.get("params") or {}).items()],
    )
    return Section("search", [fig, params])


def _ablation(a: Mapping[str, Any]) -> Section:
    variants = [v for v in a.get("variants") or [] if v.get("difference") is not None]
    if not variants:
        return Section(
            "ablation (Occam step)", [Note(f"no ablation: {a.get('note') or 'nothing to ablate'}")]
        )
    fig = Figure(
        "ablation",
        "intervals",
        "ablation: removal minus winner on val",
        f"Paired over {plural(len(a.get('seeds', [])), 'seed')} {a.get('seeds')}; Holm-consistent intervals. "
        "A method stays only when its removal is detectably worse (the interval lies below 0).",
        x_label="Δ val",
        horizontal=True,
        series=[
            Series(
                "Δ",
                [v["name"] for v in variants],
                [v["difference"] for v in variants],
                kind="scatter",
                low=[v["ci_low"] for v in variants],
                high=[v["ci_high"] for v in variants],
                roles=["helped" if v["outcome"] == "helped" else "neutral" for v in variants],
            )
        ],
        markers=[Marker("x", 0.0, "no difference", role="neutral")],
    )
    rows = [
        [
            w["name"],
            "kept" if w in a.get("kept", []) else "dropped",
            num(w["delta"]),
            interval_text(w["ci_low"], w["ci_high"], signed=True),
            w["effect"],
        ]
        for w in [*a.get("kept", []), *a.get("dropped", [])]
    ]
    items: list[Any] = [fig, Table("Occam step", ["method", "verdict", "Δ", "interval", "why"], rows)]
    if a.get("occam"):
        o = a["occam"]
        items.append(
            Note(
                f"The reduced recipe against the winner: Δ {num(o.get('difference'))} "
                f"{interval_text(o.get('ci_low'), o.get('ci_high'), signed=True)} ({o.get('verdict')})."
            )
        )
    if a.get("note"):
        items.append(Note(a["note"]))
    return Section("ablation (Occam step)", items)


def _final(f: Mapping[str, Any]) -> Section:
    runs = f.get("runs") or []
    metric = f.get("metric", "")
    rows = [
        [str(r["seed"]), r["status"], num(r["val"].get(metric)), num(r["test"].get(metric)), r["epochs"]]
        for r in runs
    ]
    items: list[Any] = [
        Table("final runs (each reads test once)", ["seed", "status", "val", "test", "epochs"], rows)
    ]
    if f.get("run_dir"):
        items.append(
            Note(
                f"run/ is the final run of seed {f.get('run_seed')} (best on val): tunelab predict reads it."
            )
        )
    return Section("final", items)


def _compress(c: Mapping[str, Any]) -> Section:
    rows = c.get("rows") or []
    if not rows:
        return Section("compress", [Note("; ".join(c.get("notes", [])) or "not compressed")])
    table = Table(
        "compressed models (val only; latency at batch 1, speedup against dense in the same measurement)",
        ["model", "val", "drop", "within", "bytes", "nonzero", "latency ms", "speedup", "samples/s"],
        [
            [
                r["name"],
                num(r["val"]),
                num(r["val_drop"]),
                r["within"],
                r["bytes"],
                r["nonzero_params"],
                num(r["latency_ms"]),
                num(r["speedup"], 2),
                num(r["throughput"]),
            ]
            for r in rows
        ],
    )
    note = (
        f"Tolerance {c.get('tolerance')} points of val {c.get('metric')}: smallest {c.get('smallest')}, "
        f"fastest {c.get('fastest')} ({c.get('finetune_epochs')} fine-tuning epochs per pruned model)."
    )
    return Section("compress", [table, Note(note), *[Note(n) for n in c.get("notes", [])]])
