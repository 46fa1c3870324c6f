"""Terminal rendering of ``tunelab auto`` with rich: one live line per stage, then the answer.

``AutoLive`` is the ``on_event`` of ``run_auto``: each stage gets a line that shows its state, its
latest news, and the budget spent and left; the open stage's line ticks every second. When stderr
is not a terminal (piped, in CI) nothing is drawn: the lines would be noise in a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from tunelab.report.pages.auto import ci_caption
from tunelab.report.pages.common import interval_text, num

_MARK = {"start": "[yellow]…[/]", "update": "[yellow]…[/]", "done": "[green]✓[/]", "skip": "[green]✓[/]"}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class AutoLive:
    """One live line per stage on stderr (nothing when stderr is not a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.lines: dict[str, tuple[str, str]] = {}  # stage -> (state, detail)
        self.budget: Any = None
        self.live: Live | None = None

    def __enter__(self) -> AutoLive:
        if self.enabled:
            self.live = Live(self, console=self.console, refresh_per_second=1, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, stage: str, what: str, budget: Any, detail: str) -> None:
        self.budget = budget
        state = what if what != "update" else "start"
        self.lines[stage] = (state, detail or self.lines.get(stage, ("", ""))[1])

    def __rich__(self) -> Group:
        rows = []
        for stage, (state, detail) in self.lines.items():
            t = self.budget.stages[stage] if self.budget is not None else None
            spent = (self.budget.spent_in(stage) if self.budget is not None else 0.0) if t else 0.0
            plan = f"/{_clock(t.planned_s)}" if t is not None and t.planned_s is not None else ""
            left = _clock(self.budget.left()) if self.budget is not None else "-"
            rows.append(
                Text.from_markup(
                    f"{_MARK.get(state, ' ')} {stage:<9} {_clock(spent):>6}{plan:<8} left {left:>6}  "
                    + escape(detail)[:110]
                )
            )
        return Group(*rows)


def print_auto(result: Mapping[str, Any], console: Console | None = None) -> None:
    """The answer: the final figure with its interval, what the Occam step dropped, the outputs."""
    c = console or Console()
    fin = result.get("final") or {}
    test = fin.get("test") or {}
    c.print(
        f"[bold]test {fin.get('metric')} {num(test.get('mean'))} "
        f"{interval_text(test.get('ci_low'), test.get('ci_high'))}[/] ({ci_caption(fin.get('metric'))}; "
        f"{test.get('n', 0)} new seeds)"
    )
    abl = result.get("ablation") or {}
    for w in abl.get("kept", []):
        c.print(
            f"  kept    {w['name']}: Δ {num(w['delta'])} {interval_text(w['ci_low'], w['ci_high'], True)}"
        )
    for w in abl.get("dropped", []):
        c.print(
            f"  dropped {w['name']}: Δ {num(w['delta'])} {interval_text(w['ci_low'], w['ci_high'], True)}"
        )
    if abl.get("note"):
        c.print(f"  ablation: {escape(abl['note'])}")
    comp = result.get("compress") or {}
    if comp.get("rows"):
        c.print(f"compress: smallest {comp.get('smallest')}, fastest {comp.get('fastest')}")
    b = result.get("budget") or {}
    c.print(f"budget: spent {_clock(b.get('spent_s'))} of {_clock(b.get('total_s'))}")
    c.print(f"best recipe: {result.get('best_yaml')}\nrun: {result.get('run_dir')}")
