"""The report of an ablation, from ``AblationResult.to_dict()`` (what ``tunelab ablate --json``
prints, and what the command keeps as ``result.json`` in its output directory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunelab.redact import mask_url
from tunelab.report.model import Figure, Item, Marker, Note, Report, Section, Series, Table
from tunelab.report.pages.common import interval_text, num, plural
from tunelab.study.stats import level_text

# A variant's outcome -> the role (colour) of its interval in the forest plot.
OUTCOME_ROLE = {
    "helped": "helped",
    "hurt": "hurt",
    "no detectable difference": "neutral",
    "needs ≥ 2 seeds": "failed",
    "failed": "failed",
}
TEST_NAMES = {"t": "paired t", "wilcoxon": "Wilcoxon signed-rank (Hodges-Lehmann)"}
CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni"}


def build_ablation_report(d: Mapping[str, Any], out_dir: str | None = None) -> Report:
    variants = list(d["variants"])
    seeds = list(d["seeds"])
    report = Report(
        kind="ablation",
        title=f"ablation {d['study']}",
        summary=_summary(d),
        source={
            "kind": "ablation",
            "study": d["study"],
            "storage": mask_url(d.get("storage") or ""),
            "dir": out_dir,
        },
    )
    effects = Section("effect of each variant")
    effects.items.append(forest_figure(d))
    effects.items.append(cost_figure(d))
    effects.items.append(effect_table(d))
    report.sections.append(effects)
    report.sections.append(Section("per-seed values", [paired_figure(variants, seeds, d["monitor"])]))
    report.sections.append(test_section(d))
    notes = [Note(f"{v['name']}: {v['note']}") for v in variants if v.get("note")]
    notes += [Note(n) for n in d.get("notes", [])]
    notes.append(
        Note(
            f"runs: {d.get('runs_computed', 0)} computed, {d.get('runs_reused', 0)} reused from study "
            f"{d['study']} in {mask_url(d.get('storage') or '')}"
        )
    )
    report.sections.append(Section("notes", notes))
    return report


def _summary(d: Mapping[str, Any]) -> str:
    groups = d.get("conclusions") or {}
    parts = [f"{k}: {', '.join(v)}" for k, v in groups.items() if v]
    better = "higher" if d["mode"] == "max" else "lower"
    head = f"{plural(len(d['seeds']), 'seed')} · {d['monitor']} ({better} is better)"
    return " · ".join([head, *parts, f"best on val: {d.get('best')}"])


def _correction(d: Mapping[str, Any]) -> str:
    return CORRECTION_NAMES.get(d.get("correction", "holm"), str(d.get("correction")))


def _interval_words(d: Mapping[str, Any]) -> str:
    """What the differences' intervals are, in the result's own words: at the level the multiplicity
    correction gives each ("95% Holm step-down (each at its step's level, 99.17% down to 95%; not
    simultaneous)"), so a verdict always agrees with its interval."""
    test = TEST_NAMES.get(d.get("paired_test", "t"), d.get("paired_test", ""))
    if d.get("intervals"):
        return f"{test} interval, {d['intervals']}"
    # A result written before the intervals carried the correction: each at the family's level.
    return f"{level_text(d.get('confidence', 0.95))} {test} interval (per comparison, not corrected)"


def _levels(d: Mapping[str, Any]) -> list[float]:
    """The distinct levels of the differences' intervals (several after a Holm step-down finding)."""
    found = {
        round(v["ci_level"], 12) for v in d["variants"] if v.get("ci_level") and v.get("ci_low") is not None
    }
    return sorted(found)


def forest_figure(d: Mapping[str, Any]) -> Item:
    """Δ of each variant against the base with its interval, the zero line, coloured by verdict;
    each seed's own paired difference as a light dot."""
    others = [v for v in d["variants"] if v["kind"] != "base"]
    with_diff = [v for v in others if v.get("difference") is not None]
    if not with_diff:
        return Note("no variant has a paired difference to the base (every run failed, or one seed only)")
    base = next(v for v in d["variants"] if v["kind"] == "base")
    base_by_seed = dict(zip(base["seeds"], base["values"], strict=True))
    cats = [v["name"] for v in with_diff]
    dots_x, dots_y = [], []
    for v in with_diff:
        for s, value in zip(v["seeds"], v["values"], strict=True):
            if s in base_by_seed:
                dots_x.append(v["name"])
                dots_y.append(value - base_by_seed[s])
    n_tested = sum(1 for v in others if v.get("p_value") is not None)
    return Figure(
        "forest",
        "intervals",
        f"Δ {d['monitor']} of each variant vs the base",
        f"Δ = variant − base of {d['monitor']}, paired on the same {plural(len(d['seeds']), 'seed')} "
        f"({', '.join(map(str, d['seeds']))}) and split. Diamond: the mean paired difference; bar: its "
        f"{_interval_words(d)}; dots: each seed's own difference. Colour: the verdict at "
        f"α = {d.get('alpha')} after {_correction(d)}'s correction across {plural(n_tested, 'variant')}, "
        "read off the bar: a bar that crosses zero is no detectable difference at this many seeds.",
        x_label=f"Δ {d['monitor']} (variant − base)",
        series=[
            Series(
                "mean Δ",
                cats,
                [v["difference"] for v in with_diff],
                low=[v.get("ci_low") for v in with_diff],
                high=[v.get("ci_high") for v in with_diff],
                roles=[OUTCOME_ROLE.get(v["outcome"], "failed") for v in with_diff],  # type: ignore[misc]
            ),
            Series("per seed", dots_x, dots_y, kind="scatter", role="neutral"),
        ],
        markers=[Marker("x", 0.0, "no difference", role="neutral")],
        horizontal=True,
        half=True,
    )


def cost_figure(d: Mapping[str, Any]) -> Item:
    """What each variant costs: training seconds per run, in the forest plot's order."""
    rows = [v for v in d["variants"] if v.get("seconds") is not None and v.get("n")]
    if not rows:
        return Note("no run finished: no cost to show")
    others = [v for v in rows if v["kind"] != "base" and v.get("difference") is not None]
    ordered = others + [v for v in rows if v["kind"] == "base"]
    return Figure(
        "cost",
        "bars",
        "training seconds per run",
        "Mean training wall time per run of each variant on this machine (the base last, for reference); "
        "parameters and saved size are in the table below. Timings of a shared machine are noisy; "
        "no intervals.",
        x_label="seconds per run",
        series=[
            Series("s/run", [v["name"] for v in ordered], [v["seconds"] for v in ordered], role="neutral")
        ],
        horizontal=True,
        half=True,
    )


def effect_table(d: Mapping[str, Any]) -> Table:
    """One row per variant; the intervals' level in the Δ header when every row shares it, else a
    "CI level" column (Holm's steps after a finding), as ``tunelab ablate`` prints it."""
    levels = _levels(d)
    per_row = len(levels) > 1
    rows = []
    for v in d["variants"]:
        diff = "reference" if v["kind"] == "base" else _diff_text(v)
        level = ""
        if v["kind"] != "base":
            level = level_text(v["ci_level"]) if v.get("ci_level") and v.get("ci_low") is not None else "-"
        rows.append(
            [
                v["name"],
                f"{v['n']}/{len(d['seeds'])}",
                _mean_std(v),
                diff,
                *([level] if per_row else []),
                v.get("p_value"),
                v["effect"],
                v.get("seconds"),
                v.get("params"),
                v.get("nonzero"),
                v.get("size_bytes"),
            ]
        )
    return Table(
        "variants",
        [
            "variant",
            "runs",
            f"{d['monitor']} mean ± std",
            f"Δ vs base [{level_text(levels[0]) + ' ' if len(levels) == 1 else ''}CI]",
            *(["CI level"] if per_row else []),
            f"p ({_correction(d)})",
            "verdict",
            "s/run",
            "params",
            "nonzero",
            "size (bytes)",
        ],
        rows,
        f"Δ with its {_interval_words(d)}; p {_correction(d)}-adjusted across variants. A verdict is "
        'better or worse exactly when its interval excludes 0; "no detectable difference" means the '
        "interval is compatible with no effect at this many seeds, not that the effect is zero.",
    )


def _mean_std(v: Mapping[str, Any]) -> str:
    if v.get("mean") is None:
        return "-"
    return num(v["mean"]) if (v.get("n") or 0) < 2 else f"{num(v['mean'])} ± {num(v.get('std'))}"


def _diff_text(v: Mapping[str, Any]) -> str:
    if v.get("difference") is None:
        return "-"
    return f"{v['difference']:+.4f} {interval_text(v.get('ci_low'), v.get('ci_high'), signed=True)}"


def paired_figure(variants: list[Mapping[str, Any]], seeds: list[int], monitor: str) -> Item:
    """Each seed's value in every variant, joined by a line: the pairing the differences use."""
    names = [v["name"] for v in variants]
    series = []
    for s in seeds:
        xs, ys = [], []
        for v in variants:
            by_seed = dict(zip(v["seeds"], v["values"], strict=True))
            xs.append(v["name"])
            ys.append(by_seed.get(s))
        if any(y is not None for y in ys):
            series.append(Series(f"seed {s}", xs, ys, kind="line"))
    if not series:
        return Note("no run finished")
    return Figure(
        "paired",
        "xy",
        f"{monitor} of every run, joined by seed",
        f"One line per seed across the {len(names)} variants: each run's {monitor} (val). Lines that run "
        "parallel mean the seed moves every variant alike, which the paired differences cancel. "
        "No intervals.",
        x_label="variant",
        y_label=monitor,
        series=series,
    )


def test_section(d: Mapping[str, Any]) -> Section:
    section = Section("test split, read once after the choice")
    t = d.get("test_split")
    if not t:
        section.items.append(Note("the test split was not read (no base run finished)"))
        return section
    rows = [
        [
            "base",
            t["base"]["n"],
            t["base"]["mean"],
            interval_text(t["base"].get("ci_low"), t["base"].get("ci_high")),
        ]
    ]
    if t.get("best"):
        b = t["best"]
        rows.append([d["best"], b["n"], b["mean"], interval_text(b.get("ci_low"), b.get("ci_high"))])
    if t.get("difference"):
        diff = t["difference"]
        rows.append(
            [
                f"Δ {d['best']} − base",
                diff.get("n"),
                diff.get("estimate"),
                interval_text(diff.get("ci_low"), diff.get("ci_high"), signed=True),
            ]
        )
    section.items.append(
        Table(
            f"test {t['metric']}",
            ["", "runs", "mean", f"{level_text(d.get('confidence', 0.95))} interval"],
            rows,
            f"The base and the variant best on val ({d['best']}) retrained per seed on the full split; "
            "only these runs read the test split, once each. The Δ is one comparison: no correction.",
        )
    )
    return section
