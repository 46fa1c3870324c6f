"""Runs side by side in one run's report (``tunelab report RUN_DIR --compare OTHER ...``).

What it is for: the same recipe run twice in different ways (1 process and 2 DDP processes, in
memory and streamed, before and after a resume) should give overlaying curves. The section
overlays every run's train and val loss per epoch, lists each run's final val figures, and says
which recipe fields differ, so a gap between the curves can be read against its cause.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tunelab.errors import TunelabError
from tunelab.loggers import flat_params
from tunelab.report.model import Figure, Note, Section, Series, Table
from tunelab.report.pages.run import RunFiles

# Final val figures a comparison lists, in this order, when the runs have them.
COMPARED = ("loss", "accuracy", "f1", "rmse", "r2")


def compare_section(runs: list[RunFiles]) -> Section:
    """The overlay of ``runs``' loss curves (the report's own run first), their final val figures
    and the recipe fields that differ between them."""
    if len(runs) < 2:
        raise TunelabError("--compare: give at least one other run directory to compare with")
    names = _names(runs)
    section = Section("compared runs")
    section.items.append(_loss_overlay(runs, names))
    section.items.append(_final_table(runs, names))
    section.items.append(Note(_recipe_differences(runs, names)))
    return section


def _names(runs: list[RunFiles]) -> list[str]:
    """Each run's directory name, or its whole path when two names are the same."""
    short = [Path(r.run_dir or "?").name for r in runs]
    return short if len(set(short)) == len(short) else [str(r.run_dir) for r in runs]


def _loss_overlay(runs: list[RunFiles], names: list[str]) -> Figure:
    series = []
    for run, name in zip(runs, names, strict=True):
        history = run.result.get("history") or []
        epochs = [h["epoch"] for h in history]
        series.append(Series(f"{name} train", epochs, [h["train"].get("loss") for h in history]))
        series.append(Series(f"{name} val", epochs, [h["val"].get("loss") for h in history]))
    return Figure(
        "compare-loss",
        "xy",
        "loss per epoch, run by run",
        f"Train and val loss per epoch of {len(runs)} runs ({', '.join(names)}), one seed each as "
        "their recipes say; curves that lie on each other mean the runs trained alike.",
        x_label="epoch",
        y_label="loss",
        series=series,
    )


def _final_table(runs: list[RunFiles], names: list[str]) -> Table:
    vals = [r.result.get("val") or {} for r in runs]
    metrics = [m for m in COMPARED if any(isinstance(v.get(m), (int, float)) for v in vals)]
    rows = []
    for run, name, val in zip(runs, names, vals, strict=True):
        info = run.result.get("info") or {}
        processes = (info.get("distributed") or {}).get("processes", 1)
        seconds = (run.result.get("efficiency") or {}).get("train_seconds")
        row = [name, run.result.get("status"), run.result.get("epochs"), processes]
        rows.append([*row, *(val.get(m) for m in metrics), seconds])
    return Table(
        "final val figures of each run",
        ["run", "status", "epochs", "processes", *(f"val {m}" for m in metrics), "train s"],
        rows,
    )


def _recipe_differences(runs: list[RunFiles], names: list[str]) -> str:
    flat = [flat_params(yaml.safe_load(r.recipe_yaml) or {}) for r in runs]  # methods by name
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    if not differing:
        return "The recipes are the same, field for field."
    parts = [
        f"{k}: " + " / ".join(f"{n} {f.get(k)!r}" for n, f in zip(names, flat, strict=True))
        for k in differing
    ]
    return "Recipe fields that differ: " + "; ".join(parts) + "."
