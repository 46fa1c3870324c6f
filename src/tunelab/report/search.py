"""Terminal rendering of searches with rich: the search result, `tunelab show`, `tunelab studies`.

Renderers only format: the numbers come from the typed objects of ``tunelab.study.search.results``
(``SearchResult``), ``tunelab.study.search.studies`` (``StudyReport``, ``StudyInfo``) and
``optuna.trial.FrozenTrial``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial
from rich.console import Console
from rich.table import Table

from tunelab.report.terminal import fmt
from tunelab.study.search.results import FinalReport, SearchResult, TrialRecord
from tunelab.study.search.studies import StudyInfo, StudyReport

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def num(v: Any) -> str:
    """``fmt`` with whole floats (a parameter count, bytes) shown as integers: ``num(67.0) == "67"``."""
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return fmt(int(v))
    return fmt(v)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_summary(s: Mapping[str, Any] | None) -> str:
    """``0.9123 ± 0.0101 [0.9022, 0.9224]`` from a Summary's dict (n=1: no interval).

    >>> fmt_summary({"n": 3, "mean": 0.9, "ci_low": 0.85, "ci_high": 0.95})
    '0.9000 ± 0.0500 [0.8500, 0.9500]'
    >>> fmt_summary({"n": 3, "mean": 0.2, "ci_low": 0.1, "ci_high": 0.5, "method": "log-t"})
    '0.2000 (geometric) [0.1000, 0.5000]'
    """
    if not s:
        return "-"
    mean, lo, hi = s["mean"], s.get("ci_low"), s.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{num(mean)} (n={s['n']}, no interval)"
    if s.get("method") == "log-t":  # an asymmetric interval around a geometric mean: no "±"
        return f"{num(mean)} (geometric) [{num(lo)}, {num(hi)}]"
    return f"{num(mean)} ± {num((hi - lo) / 2)} [{num(lo)}, {num(hi)}]"


def fmt_params(params: Mapping[str, Any]) -> str:
    return "\n".join(f"{k} = {fmt(v)}" for k, v in params.items()) or "-"


def fmt_counts(counts: Mapping[str, int]) -> str:
    order = [s for s in STATES if counts.get(s)] + sorted(set(counts) - set(STATES))
    return ", ".join(f"{counts[s]} {s.lower()}" for s in order) or "no trials"


def trial_line(t: FrozenTrial, objectives: Sequence[str] = ()) -> str:
    """One line per ended trial, for progress on stderr.

    >>> import optuna
    >>> t = optuna.trial.create_trial(params={"lr": 0.1},
    ...     distributions={"lr": optuna.distributions.FloatDistribution(0.01, 1)}, value=0.9)
    >>> trial_line(t, ["val.accuracy"]).split(" · ")[:2]
    ['trial -1 complete', 'val.accuracy 0.9000']
    """
    head = f"trial {t.number} {t.state.name.lower()}"
    if t.values:
        names = list(objectives) or [f"value {i}" for i in range(len(t.values))]
        head += " · " + ", ".join(f"{n} {num(v)}" for n, v in zip(names, t.values, strict=False))
    if t.duration is not None:
        head += f" · {t.duration.total_seconds():.1f} s"
    reason = t.user_attrs.get("error") or t.user_attrs.get("message")
    if reason and t.state.name != "COMPLETE":
        head += f" · {reason}"
    params = ", ".join(f"{k} = {fmt(v)}" for k, v in t.params.items())
    return f"{head} · {params}" if params else head


def _trials_table(title: str, trials: Sequence[TrialRecord], objectives: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("trial", justify="right")
    for name in objectives:
        table.add_column(name, justify="right")
    table.add_column("parameters")
    for t in trials:
        values = t.values or [None] * len(objectives)
        table.add_row(str(t.number), *[num(v) for v in values], fmt_params(t.params))
    return table


def final_table(final: Mapping[str, Any]) -> Table:
    """Mean ± 95% CI of each objective over the final runs: val beside test."""
    seeds = final.get("seeds", [])
    table = Table(
        title=f"best recipe retrained · seeds {', '.join(map(str, seeds))} · mean ± 95% CI",
        title_justify="left",
    )
    table.add_column("objective")
    table.add_column("val", justify="right", no_wrap=True)
    table.add_column("test (read once per run)", justify="right", no_wrap=True)
    for m in final.get("metrics", []):
        if m.get("value") is not None:
            table.add_row(m["name"], fmt_summary(m["value"]), "-")
        else:
            table.add_row(m["name"], fmt_summary(m.get("val")), fmt_summary(m.get("test")))
    return table


def print_search(result: SearchResult, console: Console | None = None) -> None:
    console = console or Console()
    counts = result.counts()
    console.print(f"study {result.study} · {fmt_counts(counts)} (budget {result.budget}) · {result.storage}")
    names = [o.name for o in result.objectives]
    if result.best is None:
        console.print("no trial completed")
        return
    if result.pareto_front:
        title = f"Pareto front ({_plural(len(result.pareto_front), 'trial')})"
        console.print(_trials_table(title, result.pareto_front, names))
    best = result.best
    console.print(_trials_table(f"best trial {best.number}", [_record(best, result.trials)], names))
    console.print(f"best recipe: {best.recipe_path}")
    if result.final is not None:
        print_final(result.final, console)


def _record(best: Any, trials: Sequence[TrialRecord]) -> TrialRecord:
    return next(t for t in trials if t.number == best.number)


def print_final(final: FinalReport | Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    data = final.to_dict() if isinstance(final, FinalReport) else final
    console.print(final_table(data))
    if data.get("note"):
        console.print(data["note"])
    dirs = [r["run_dir"] for r in data.get("runs", []) if r.get("run_dir")]
    if dirs:
        console.print("final runs: " + ", ".join(dirs), soft_wrap=True)


def print_study(report: StudyReport, console: Console | None = None) -> None:
    console = console or Console()
    budget = f" (budget {report.budget})" if report.budget is not None else ""
    console.print(f"study {report.name} · {fmt_counts(report.counts)}{budget} · {report.storage}")
    console.print(
        "objectives: "
        + ", ".join(f"{n} ({d})" for n, d in zip(report.objectives, report.directions, strict=False))
    )
    if report.best:
        title = (
            f"Pareto front ({_plural(len(report.best), 'trial')})"
            if len(report.directions) > 1
            else f"best {_plural(len(report.best), 'trial')}"
        )
        console.print(_trials_table(title, report.best, report.objectives))
    else:
        console.print("no complete trial yet")
    if report.importances:
        table = Table(title="parameter importance (fANOVA)", title_justify="left")
        table.add_column("parameter")
        for name in report.importances:
            table.add_column(name, justify="right")
        params: list[str] = []
        for imp in report.importances.values():
            params += [p for p in imp if p not in params]
        first = next(iter(report.importances.values()))
        params.sort(key=lambda p: -first.get(p, 0.0))
        for p in params:
            table.add_row(p, *[fmt(imp.get(p)) for imp in report.importances.values()])
        console.print(table)
    if report.importance_note:
        console.print(report.importance_note)
    if report.final:
        print_final(report.final, console)


def print_studies(studies: Sequence[StudyInfo], console: Console | None = None) -> None:
    console = console or Console()
    if not studies:
        console.print("no studies in this storage")
        return
    table = Table(title="studies", title_justify="left")
    for col in ("study", "kind", "directions", "trials", "best", "started"):
        table.add_column(col, justify="right" if col == "best" else "left")
    for s in studies:
        table.add_row(
            s.name, s.kind, ", ".join(s.directions), fmt_counts(s.counts), fmt(s.best_value), s.started or "-"
        )
    console.print(table)
