"""The report of a cross-validation, from ``CVResult.to_dict()`` (what ``tunelab cv --json``
prints, and what the command keeps as ``result.json`` in its output directory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunelab.redact import mask_url
from tunelab.report.model import Figure, Item, Marker, Note, Report, Section, Series, Table
from tunelab.report.pages.common import interval_text, num, plural


def build_cv_report(d: Mapping[str, Any], out_dir: str | None = None) -> Report:
    c, f = d["chosen"], d["final"]
    metric = d["metric"]
    report = Report(
        kind="cv",
        title=f"cross-validation {d['study']}",
        summary=(
            f"{d['k']} {'stratified ' if d.get('stratified') else ''}folds · "
            f"{d.get('param') or 'the recipe'} · "
            f"val.{metric} ({'higher' if d['mode'] == 'max' else 'lower'} is better) · retrained with "
            f"{c['label']} (rule {c['rule']}): test {metric} {num(f.get('test', {}).get(metric))}"
        ),
        source={
            "kind": "cv",
            "study": d["study"],
            "storage": mask_url(d.get("storage") or ""),
            "dir": out_dir,
        },
    )
    report.sections.append(Section("score per value", [score_figure(d), value_table(d)]))
    final = Table(
        "retrain with the chosen value, and its one test evaluation",
        ["value", "rule", "status", f"val {metric}", f"test {metric}", "run directory"],
        [
            [
                f["label"],
                c["rule"],
                f["status"],
                f.get("val", {}).get(metric),
                f.get("test", {}).get(metric),
                f.get("run_dir") or "(not saved)",
            ]
        ],
        "Trained on the recipe's own train/val split; the test split is read here, once.",
    )
    notes = [Note(n) for n in d.get("notes", [])]
    notes.append(
        Note(
            "Fold scores share most of their training samples, so they are not independent: the interval "
            "over folds is a guide and tends to be too narrow."
        )
    )
    notes.append(Note(f"runs: {d.get('runs_computed', 0)} computed, {d.get('runs_reused', 0)} reused"))
    report.sections.append(Section("final retrain", [final, *notes]))
    return report


def score_figure(d: Mapping[str, Any]) -> Item:
    values = [v for v in d["values"] if v.get("mean") is not None]
    if not values:
        return Note("no value finished a fold: nothing to plot")
    c = d["chosen"]
    best_label = next((v["label"] for v in values if v["value"] == c["best"]), None)
    one_se_label = next((v["label"] for v in values if v["value"] == c["one_se"]), None)
    roles = []
    for v in values:
        if v["label"] == one_se_label:
            roles.append("chosen")
        elif v["label"] == best_label:
            roles.append("best")
        else:
            roles.append("neutral")
    folds_x, folds_y = [], []
    for f in d.get("folds", []):
        if f.get("score") is not None and any(v["label"] == f["label"] for v in values):
            folds_x.append(f["label"])
            folds_y.append(f["score"])
    same = best_label == one_se_label
    markers = []
    if c.get("one_se_threshold") is not None:
        sign = "−" if d["mode"] == "max" else "+"
        markers.append(
            Marker("y", c["one_se_threshold"], f"one-SE bar (best mean {sign} 1 SE)", role="neutral")
        )
    return Figure(
        "cv-scores",
        "intervals",
        f"val.{d['metric']} per value of {d.get('param') or 'the recipe'}",
        f"Mean of val.{d['metric']} over the {plural(d['k'], 'fold')} of train+val (diamond) with its 95% "
        "t-interval across folds (bar); dots: each fold's score. "
        + (
            f"{best_label} has the best mean and is also the one-SE rule's choice. "
            if same
            else f"Green: best mean ({best_label}); purple: the one-SE rule's choice ({one_se_label}), the "
            "first value listed whose mean is within one standard error of the best (dotted line). "
        )
        + "Folds share training samples, so the intervals tend to be too narrow.",
        x_label=d.get("param") or "value",
        y_label=f"val.{d['metric']}",
        series=[
            Series(
                "mean",
                [v["label"] for v in values],
                [v["mean"] for v in values],
                low=[v.get("ci_low") for v in values],
                high=[v.get("ci_high") for v in values],
                roles=roles,
            ),  # type: ignore[arg-type]
            Series("fold score", folds_x, folds_y, kind="scatter", role="neutral"),
        ],
        markers=markers,
        legend={
            "chosen": "one-SE rule" + (" and best mean" if same else ""),
            "best": "best mean",
            "neutral": "other values",
        },
    )


def value_table(d: Mapping[str, Any]) -> Table:
    c = d["chosen"]
    rows = []
    for v in d["values"]:
        tags = [
            t
            for t, hit in (("best mean", v["value"] == c["best"]), ("one-SE rule", v["value"] == c["one_se"]))
            if hit
        ]
        if not v.get("eligible", True):
            tags.append("not eligible: failed on a fold")
        scores = ", ".join(num(s) for s in v.get("scores", []))
        rows.append(
            [
                v["label"],
                v.get("n"),
                v.get("mean"),
                v.get("std"),
                interval_text(v.get("ci_low"), v.get("ci_high")),
                scores,
                ", ".join(tags),
            ]
        )
    return Table(
        "values",
        ["value", "folds", "mean", "std", "95% CI", "fold scores", "chosen by"],
        rows,
        "Values are listed as given, simplest first: the one-SE rule takes the first within one "
        "standard error.",
    )
