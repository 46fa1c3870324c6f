"""The report of a learning-rate range test (``tunelab lr-find --out DIR``): the loss against the
learning rate, the suggestion and where the ramp diverged, from ``LRFindResult.to_dict()``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tunelab.report.model import Figure, Marker, Note, Report, Section, Series, Table
from tunelab.report.pages.common import num


def lr_find_figure(d: Mapping[str, Any]) -> Figure:
    """The plot ``tunelab lr-find --plot`` draws, as report data."""
    lrs = list(d["lrs"])
    n = len(d["trend"])
    markers = [Marker("x", d["suggested_lr"], f"suggested {d['suggested_lr']:.2g}", role="best")]
    if d.get("diverged_lr") is not None:
        markers.append(Marker("x", d["diverged_lr"], f"diverged at {d['diverged_lr']:.2g}", role="stop"))
    finite = [v for v in list(d["trend"]) + list(d["losses"][:n]) if v is not None and math.isfinite(v)]
    # The divergence spike would squash the curve: show up to twice the first trend value.
    top = max(d["trend"][0] * 2, d["min_loss"] * 1.5) if d["trend"] else None
    low = min(finite) if finite else None
    y_range = [low - 0.05 * (top - low), top] if top is not None and low is not None and top > low else None
    return Figure(
        "lr-find",
        "xy",
        "learning-rate range test",
        f"Training loss of each step while the learning rate grows exponentially ({len(lrs)} steps, "
        f"{d.get('steps_per_epoch')} per epoch), one run on a copy of the initial weights. The trend "
        "is the zero-phase smoothed loss the suggestion reads; suggested = the lr at its minimum / 10. "
        "No intervals: one ramp.",
        x_label="learning rate (output block)",
        y_label="training loss",
        x_log=True,
        series=[
            Series("loss per step", lrs, list(d["losses"]), role="neutral"),
            Series("smoothed (stopping rule)", lrs, list(d["smoothed"]), role="val"),
            Series("trend (suggestion)", lrs[:n], list(d["trend"]), role="train"),
            Series("minimum of the trend", [d["min_lr"]], [d["min_loss"]], kind="scatter", role="best"),
        ],
        markers=markers,
        y_range=y_range,
    )


def build_lr_find_report(d: Mapping[str, Any], out_dir: str | None = None) -> Report:
    items: list[Any] = [lr_find_figure(d)]
    rows = [
        ["suggested lr", d["suggested_lr"]],
        ["rule", d.get("rule")],
        ["minimum of the trend", f"{num(d['min_loss'])} at lr {d['min_lr']:.3g}"],
        ["diverged at", "did not diverge" if d.get("diverged_lr") is None else f"lr {d['diverged_lr']:.3g}"],
        ["steps", len(d["lrs"])],
    ]
    items.append(Table("result", ["", "value"], rows))
    if d.get("note"):
        items.append(Note(d["note"]))
    return Report(
        kind="lr_find",
        title="learning-rate range test",
        summary=f"suggested lr {d['suggested_lr']:.3g} ({d.get('rule')})",
        source={"kind": "lr_find", "dir": out_dir},
        sections=[Section("loss against learning rate", items)],
    )
