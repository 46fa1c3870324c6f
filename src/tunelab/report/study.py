"""Terminal rendering of study results (ablation, cross-validation) with rich.

Renderers only format: every number comes from the typed results of ``tunelab.study.ablation_analysis``
and ``tunelab.study.cv``. A difference is never printed without its interval (or, with too few
seeds for one, without saying so). Text that holds data goes through ``rich.markup.escape``:
an interval such as ``[needs ≥ 2 seeds]`` would otherwise be read as a markup tag and vanish.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunelab.report.terminal import fmt, fmt_bytes
from tunelab.study.ablation_analysis import AblationResult, RunRecord, VariantResult
from tunelab.study.cv import CVResult, FoldRun
from tunelab.study.stats import PairedDifference, Summary, level_text

_STYLE = {"helped": "green", "hurt": "red", "failed": "red"}
# Study tables are wide (an interval per row); piped output gets this width instead of rich's 80.
PIPED_WIDTH = 150


def study_console() -> Console:
    """A console for study reports: the terminal's width, or ``PIPED_WIDTH`` when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def fmt_signed(v: float) -> str:
    """+0.0123 / -0.0123: a difference always shows its sign.

    >>> fmt_signed(0.01), fmt_signed(-0.5)
    ('+0.0100', '-0.5000')
    """
    return f"{v:+.4f}" if abs(v) < 1e3 else f"{v:+,.0f}"


def fmt_interval(low: float, high: float, signed: bool = False, missing: str = "no interval") -> str:
    """``[low, high]``, or ``missing`` when the interval is unbounded (too few values).

    >>> fmt_interval(0.1, 0.2), fmt_interval(-math.inf, math.inf)
    ('[0.1000, 0.2000]', 'no interval')
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return missing
    f = fmt_signed if signed else fmt
    return f"[{f(low)}, {f(high)}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_spread(s: Summary | None) -> str:
    """mean ± std (the mean alone when one value has no spread)."""
    if s is None:
        return "-"
    return fmt(s.mean) if s.n < 2 else f"{fmt(s.mean)} ± {fmt(s.std)}"


def fmt_difference(d: PairedDifference) -> str:
    """``+0.0123 [+0.0040, +0.0206]``: the estimate with its interval, never alone.

    >>> from tunelab.study.stats import paired_difference
    >>> fmt_difference(paired_difference([0.9], [0.8]))
    '+0.1000 [needs ≥ 2 seeds]'
    """
    missing = "[needs ≥ 2 seeds]" if d.n < 2 else "[no interval: too few pairs]"
    return f"{fmt_signed(d.estimate)} {fmt_interval(d.ci_low, d.ci_high, signed=True, missing=missing)}"


def _direction(mode: str) -> str:
    return "higher is better" if mode == "max" else "lower is better"


def _runs_line(computed: int, reused: int, study: str, storage: str) -> str:
    return escape(f"runs: {computed} computed, {reused} reused · study {study} in {storage}")


# --- ablation ----------------------------------------------------------------------------------


def run_line(rec: RunRecord) -> str:
    """One progress line per computed run, for stderr (plain text)."""
    value = "-" if rec.value is None else f"{rec.value:.4f}"
    test = "" if rec.test_value is None else f" · test {rec.test_value:.4f}"
    return (
        f"{rec.phase:6} {rec.variant} · seed {rec.seed} · {rec.status} · val {value}{test} · "
        f"{rec.seconds:.1f}s"
    )


def _verdict_cell(v: VariantResult) -> str:
    text = escape(v.effect())
    style = _STYLE.get(v.outcome)
    return f"[{style}]{text}[/{style}]" if style else text


def _correction_name(result: AblationResult) -> str:
    return "Holm" if result.correction == "holm" else "Bonferroni"


def ablation_table(result: AblationResult) -> Table:
    """One row per variant: mean ± std of the metric, Δ to the base with its CI at the level the
    correction gives it (in the header when every row shares it, else a "CI level" column), the
    adjusted p, and the verdict, which reads that interval."""
    levels = {
        round(v.difference.confidence, 12)
        for v in result.variants
        if v.difference is not None and v.difference.has_interval
    }
    per_row = len(levels) > 1  # Holm after a finding: the rows' levels differ
    table = Table(title_justify="left")
    table.add_column("variant", style="bold", no_wrap=True)
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("mean ± std", justify="right", no_wrap=True)  # of result.monitor (the headline)
    one = "" if per_row or not levels else f"{level_text(levels.pop())} "
    table.add_column(f"Δ vs base [{one}CI]", justify="right", no_wrap=True)
    if per_row:
        table.add_column("CI level", justify="right", no_wrap=True)
    table.add_column(f"p ({_correction_name(result)})", justify="right", no_wrap=True)
    table.add_column("verdict", min_width=16)
    table.add_column("s/run", justify="right", no_wrap=True)
    # Size columns when the runs recorded them (a custom runner may not), each only if it varies.
    shown = [
        k
        for k in ("nonzero", "size_bytes")
        if all(k in v.size for v in result.variants) and len({v.size[k] for v in result.variants}) > 1
    ]
    for k in shown:
        table.add_column({"nonzero": "nonzero", "size_bytes": "size"}[k], justify="right", no_wrap=True)
    for v in result.variants:
        if v.variant.is_base:
            delta, level, p = "reference", "", ""
        elif v.difference is None:
            delta, level, p = "-", "-", "-"
        else:
            d = v.difference
            delta, p = fmt_difference(d), fmt_p(v.p_adjusted)
            level = level_text(d.confidence) if d.has_interval else "-"
        table.add_row(
            escape(v.name),
            f"{len(v.values)}/{len(result.seeds)}",
            fmt_spread(v.summary),
            escape(delta),
            *([level] if per_row else []),
            p,
            _verdict_cell(v),
            f"{v.seconds:.2f}",
            *[f"{v.size[k]:,.0f}" if k == "nonzero" else fmt_bytes(v.size[k]) for k in shown],
        )
    return table


def print_ablation(result: AblationResult, console: Console | None = None) -> None:
    """The ablation report: a headline, the table, the plain conclusions, the test split, notes."""
    console = console or study_console()
    n_tests = sum(1 for v in result.variants if v.p_adjusted is not None)
    test_name = "paired t-test" if result.test_name == "t" else "Wilcoxon signed-rank (Hodges-Lehmann CI)"
    holm = f"{_correction_name(result)} across {n_tests} variants" if n_tests else "no test: needs ≥ 2 seeds"
    n = len(result.seeds)
    seeds = ", ".join(str(s) for s in result.seeds)
    console.print(
        "[bold]ablation[/bold] "
        + escape(
            f"· study {result.study_name} · {n} seed{'s' if n != 1 else ''} ({seeds}) · {result.monitor} "
            f"({_direction(result.mode)}) · {test_name}, {holm}"
        )
    )
    console.print(ablation_table(result))
    groups = result.conclusions()
    for outcome in ("helped", "hurt", "no detectable difference", "needs ≥ 2 seeds", "failed"):
        if groups.get(outcome):
            label = f"{outcome} (at {n} seeds)" if outcome == "no detectable difference" else outcome
            style = _STYLE.get(outcome, "bold")
            console.print(f"[{style}]{escape(label)}[/{style}]: " + escape(", ".join(groups[outcome])))
    for v in result.variants:
        note = (v.difference.note if v.difference else "") or (v.summary.note if v.summary else "")
        if note:
            console.print(escape(f"  {v.name}: {note}"))
        if v.failed:
            runs = ", ".join(f"seed {s} {st}" for s, st in v.failed)
            console.print(escape(f"  {v.name}: {len(v.failed)} run(s) did not finish: {runs}"))
    best = result.variant(result.best)
    caveat = ""
    if not best.variant.is_base and best.verdict != "better":
        caveat = " · by mean only: not detectably better than the base"
    mean = fmt(best.summary.mean if best.summary else None)
    console.print(f"best on val: [bold]{escape(best.name)}[/bold] " + escape(f"(mean {mean}){caveat}"))
    t = result.test
    if t is not None:
        line = f"test {t.metric}, read once after the choice: base {fmt_spread(t.base)}"
        if t.best is not None:
            line += f" · {best.name} {fmt_spread(t.best)}"
        if t.difference is not None:
            line += (
                f" · Δ {fmt_difference(t.difference)} ({level_text(t.difference.confidence)}, one comparison)"
            )
        console.print(escape(line))
    console.print(
        "[dim]"
        + escape(
            f"Δ = variant − base, paired on the same seeds and split; intervals: {result.intervals}; "
            f"p {_correction_name(result)}-adjusted, α = {result.alpha}. A verdict is better/worse exactly "
            'when its interval excludes 0; "no detectable difference" means the interval contains 0 at '
            "this many seeds, not that the effect is zero; more seeds narrow it."
        )
        + "[/dim]"
    )
    for note in result.notes:
        console.print(escape(f"note: {note}"))
    console.print(_runs_line(result.runs_computed, result.runs_reused, result.study_name, result.storage))


# --- cross-validation --------------------------------------------------------------------------


def cv_run_line(run: FoldRun) -> str:
    """One progress line per computed fold run, for stderr (plain text)."""
    score = "-" if run.score is None else f"{run.score:.4f}"
    return f"fold {run.fold + 1} · {run.label} · {run.status} · score {score} · {run.seconds:.1f}s"


def cv_table(result: CVResult) -> Table:
    """One row per value: per-fold scores, mean ± std, the interval, and which rule chose it."""
    table = Table(title_justify="left")
    table.add_column(escape(result.param or "value"), style="bold")
    show_folds = result.k <= 10  # more folds than that would not fit a terminal
    if show_folds:
        for i in range(result.k):
            table.add_column(f"fold {i + 1}", justify="right", no_wrap=True)
    table.add_column("mean ± std", justify="right", no_wrap=True)
    conf = next((v.summary.confidence for v in result.values if v.summary), 0.95)
    table.add_column(f"{conf:.0%} CI", justify="right", no_wrap=True)
    table.add_column("chosen by")
    by_fold = {(f.label, f.fold): f for f in result.folds}
    c = result.choice
    for v in result.values:
        row = [escape(v.label)]
        if show_folds:
            for i in range(result.k):
                f = by_fold.get((v.label, i))
                row.append("-" if f is None else (fmt(f.score) if f.score is not None else f.status))
        s = v.summary
        row.append(fmt_spread(s))
        row.append(escape(fmt_interval(s.ci_low, s.ci_high)) if s else "-")
        tags = [t for t, hit in (("best mean", v is c.best), ("one-SE rule", v is c.one_se)) if hit]
        if not v.eligible:
            tags.append("[red]not eligible: failed on a fold[/red]")
        row.append(", ".join(tags))
        table.add_row(*row)
    return table


def print_cv(result: CVResult, console: Console | None = None) -> None:
    """The cross-validation report: the table, both choices, the retrain and its one test read."""
    console = console or study_console()
    kind = "stratified " if result.stratified else ""
    console.print(
        "[bold]cross-validation[/bold] "
        + escape(
            f"· {result.k} {kind}folds of train+val · {result.param or 'the recipe'} · val.{result.metric} "
            f"({_direction(result.mode)}) · study {result.study_name}"
        )
    )
    console.print(cv_table(result))
    c = result.choice
    best_s = c.best.summary
    se = best_s.se if best_s and math.isfinite(best_s.se) else 0.0
    rel, sign = ("≥", "−") if result.mode == "max" else ("≤", "+")
    console.print(f"best mean: [bold]{escape(c.best.label)}[/bold] ({fmt(best_s.mean if best_s else None)})")
    console.print(
        f"one-SE rule: [bold]{escape(c.one_se.label)}[/bold], "
        + escape(
            f"the first value listed with mean {rel} {fmt(c.threshold)} (best mean {sign} one standard "
            f"error {fmt(se)}); values are taken as listed simplest first"
        )
    )
    f, metric = result.final, result.metric
    console.print(
        escape(
            f"retrained with {f.label} (--choose {c.rule}) on the recipe's train/val split: {f.status} · "
            f"val {metric} {fmt(f.val.get(metric))} · test {metric} {fmt(f.test.get(metric))} "
            "(the test split, read once)"
        )
    )
    console.print(
        "[dim]Fold scores share most of their training samples, so they are not independent: the "
        "interval over folds is a guide and tends to be too narrow.[/dim]"
    )
    for note in result.notes:
        console.print(escape(f"note: {note}"))
    console.print(_runs_line(result.runs_computed, result.runs_reused, result.study_name, result.storage))
