"""The typed report model: what a report shows, as plain data, before any rendering.

A report is a list of sections; a section holds figures, tables, notes and code blocks. A figure
carries its numbers (series of points, intervals, a matrix), its axes, the reference lines it
marks (the best epoch, zero) and a caption that says what it shows, from how many seeds or trials,
and what the intervals are. Builders (``tunelab.report.pages``) make a ``Report`` from a run or a
study; renderers (``tunelab.report.html``) only format it. ``Report.to_dict()`` is ``report.json``,
and ``Report.from_dict`` reads it back, so a report can be rendered again without its source.

Where data is missing (a test split that was not read, a search without a pruner), a builder puts
a ``Note`` in place of the figure: never an empty axis.

    >>> fig = Figure("curve", "xy", "loss", "train loss per epoch (seed 0)", x_label="epoch",
    ...              series=[Series("train", [1, 2], [0.9, 0.5])], markers=[Marker("x", 2, "best")])
    >>> r = Report("run", "a run", sections=[Section("curves", [fig, Note("no test split")])])
    >>> Report.from_dict(r.to_dict()) == r
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FigureKind = Literal["xy", "heatmap", "bars", "intervals", "slices"]
SeriesKind = Literal["line", "scatter", "step"]
# What a point or interval means; the renderer maps each role to one colour and marker, so the
# same meaning looks the same in every figure (and the legend says it).
Role = Literal[
    "",
    "train",
    "val",
    "test",
    "best",
    "stop",
    "pruned",
    "pareto",
    "helped",
    "hurt",
    "neutral",
    "failed",
    "chosen",
]

Value = float | int | str | None


@dataclass
class Series:
    """Points of one curve or point cloud. ``x`` may hold strings (categories); ``None`` in ``y``
    breaks a line (many trials' curves in one series). ``low``/``high`` are an interval per point."""

    name: str
    x: list[Value]
    y: list[float | None]
    kind: SeriesKind = "line"
    role: Role = ""
    low: list[float | None] | None = None
    high: list[float | None] | None = None
    labels: list[str] | None = None  # one per point, e.g. "trial 17" (a tooltip in the SVG)
    roles: list[Role] | None = None  # one per point when points differ in meaning (a verdict)
    log_x: bool = False  # this series' x on a log scale (a panel of a ``slices`` figure)


@dataclass
class Marker:
    """A reference line across the plot: ``axis`` "x" is a vertical line at ``value``."""

    axis: Literal["x", "y"]
    value: float
    label: str
    role: Role = "best"


@dataclass
class Heatmap:
    """A matrix with labelled rows and columns (a confusion matrix: rows true, columns predicted)."""

    values: list[list[float]]
    rows: list[str]
    columns: list[str]


@dataclass
class Figure:
    """One figure. ``kind`` says how to draw it:

    * ``xy``: series on numeric (or categorical) axes, with markers;
    * ``heatmap``: ``heatmap``, each cell annotated with its value;
    * ``bars``: one bar per point of each series, grouped by ``x`` (categories);
    * ``intervals``: one point with its interval per category, ``horizontal`` puts the categories
      on the y axis (a forest plot);
    * ``slices``: one small panel per series (a parameter), objective on y.
    """

    id: str
    kind: FigureKind
    title: str
    caption: str
    x_label: str = ""
    y_label: str = ""
    x_log: bool = False
    y_log: bool = False
    series: list[Series] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    heatmap: Heatmap | None = None
    horizontal: bool = False
    y_range: list[float] | None = None  # [low, high] when a spike would squash the rest
    half: bool = False  # half the page's width: two such figures in a row sit side by side
    legend: dict[str, str] = field(default_factory=dict)  # role -> legend text of per-point roles


@dataclass
class Table:
    """A table of plain values; numbers are formatted by the renderer."""

    title: str
    columns: list[str]
    rows: list[list[Value]]
    caption: str = ""
    collapsed: bool = False  # long tables (every trial) start folded


@dataclass
class Note:
    """A sentence in place of something missing, or a fact worth a line of its own."""

    text: str


@dataclass
class Code:
    """A block of text shown as it is: the recipe, the command."""

    title: str
    text: str
    language: str = ""


Item = Figure | Table | Note | Code


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)


@dataclass
class Report:
    """A whole report: its ``kind`` (run, search, ablation, cv, compress, lr_find), a title, a
    one-line summary, where it came from, and its sections."""

    kind: str
    title: str
    summary: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # e.g. {"run_dir": ...} or {"study": ...}
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        return [i for s in self.sections for i in s.items if isinstance(i, Figure)]

    def figure(self, id_: str) -> Figure:
        for f in self.figures():
            if f.id == id_:
                return f
        raise KeyError(f"no figure {id_!r}; figures: {', '.join(f.id for f in self.figures())}")

    def notes(self) -> list[str]:
        return [i.text for s in self.sections for i in s.items if isinstance(i, Note)]

    def tables(self) -> list[Table]:
        return [i for s in self.sections for i in s.items if isinstance(i, Table)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every item tagged with its ``type``; NaN and infinities become None."""
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        sections = [Section(s["title"], [_item(i) for i in s["items"]]) for s in d.get("sections", [])]
        return cls(d["kind"], d["title"], d.get("summary", ""), dict(d.get("source") or {}), sections)


_ITEMS: dict[str, type] = {"figure": Figure, "table": Table, "note": Note, "code": Code}


def _plain(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (Figure, Table, Note, Code)):
        return {
            "type": type(obj).__name__.lower(),
            **{f.name: _plain(getattr(obj, f.name)) for f in fields(obj)},
        }
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _item(d: dict[str, Any]) -> Item:
    d = dict(d)
    kind = d.pop("type")
    if kind not in _ITEMS:
        raise ValueError(f"report.json: unknown item type {kind!r}; known: {', '.join(_ITEMS)}")
    if kind == "figure":
        d["series"] = [Series(**s) for s in d.get("series", [])]
        d["markers"] = [Marker(**m) for m in d.get("markers", [])]
        d["heatmap"] = Heatmap(**d["heatmap"]) if d.get("heatmap") else None
    return _ITEMS[kind](**d)
