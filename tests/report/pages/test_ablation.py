"""The ablation report's forest plot is the ablation's own differences and intervals, at the level
the multiplicity correction gives them, coloured by verdicts that read those intervals."""

import pytest

from tunelab.report.pages.ablation import OUTCOME_ROLE, build_ablation_report
from tunelab.study.stats import level_text


@pytest.fixture(scope="module")
def data(sources):
    return sources.ablation().to_dict()


def test_the_forest_plot_is_the_json_differences_intervals_and_verdicts(data):
    report = build_ablation_report(data)
    fig = report.figure("forest")
    means, _ = fig.series
    others = [v for v in data["variants"] if v["kind"] != "base"]
    assert means.x == [v["name"] for v in others]
    assert means.y == [v["difference"] for v in others]
    assert means.low == [v["ci_low"] for v in others] and means.high == [v["ci_high"] for v in others]
    assert means.roles == [OUTCOME_ROLE[v["outcome"]] for v in others]
    assert "helped" in means.roles and "neutral" in means.roles  # -l2 (l2 helped), +ema, ...
    assert [(m.axis, m.value) for m in fig.markers] == [("x", 0.0)]  # the zero line
    assert "6 seeds" in fig.caption and "95%" in fig.caption and "Holm" in fig.caption


def test_per_seed_differences_and_values_are_the_paired_runs(data):
    report = build_ablation_report(data)
    base = next(v for v in data["variants"] if v["kind"] == "base")
    ema = next(v for v in data["variants"] if v["name"] == "+ema")
    dots = report.figure("forest").series[1]
    mine = [y for x, y in zip(dots.x, dots.y, strict=True) if x == "+ema"]
    assert mine == pytest.approx([a - b for a, b in zip(ema["values"], base["values"], strict=True)])
    assert sum(mine) / len(mine) == pytest.approx(ema["difference"])
    paired = report.figure("paired")
    assert [s.name for s in paired.series] == [f"seed {s}" for s in data["seeds"]]
    assert paired.series[0].y[0] == base["values"][0]


def test_the_cost_beside_the_effects(data):
    report = build_ablation_report(data)
    cost = report.figure("cost")
    by_name = {v["name"]: v["seconds"] for v in data["variants"]}
    assert dict(zip(cost.series[0].x, cost.series[0].y, strict=True)) == by_name
    table = next(t for t in report.tables() if t.title == "variants")
    assert "s/run" in table.columns and "params" in table.columns


def test_captions_say_what_the_intervals_are_and_colours_follow_them(data):
    report = build_ablation_report(data)
    fig = report.figure("forest")
    assert data["intervals"] in fig.caption  # "95% Holm step-down (each at its step's level, ...)"
    assert "not simultaneous" in fig.caption
    means = fig.series[0]
    for low, high, role in zip(means.low, means.high, means.roles, strict=True):
        assert (role in ("helped", "hurt")) == (low > 0 or high < 0)  # a verdict reads its interval
    # Holm after a finding: the rows' levels differ, so the table has a column of them.
    table = next(t for t in report.tables() if t.title == "variants")
    assert "CI level" in table.columns and "Δ vs base [CI]" in table.columns and "p (Holm)" in table.columns
    column = table.columns.index("CI level")
    others = [v for v in data["variants"] if v["kind"] != "base"]
    assert [row[column] for row in table.rows[1:]] == [level_text(v["ci_level"]) for v in others]
    assert len({v["ci_level"] for v in others}) > 1


def test_bonferroni_intervals_share_one_level_in_the_header(sources):
    d = sources.ablation("bonferroni").to_dict()
    report = build_ablation_report(d)
    table = next(t for t in report.tables() if t.title == "variants")
    assert d["correction"] == "bonferroni" and "CI level" not in table.columns
    assert "Δ vs base [98.75% CI]" in table.columns and "p (Bonferroni)" in table.columns  # 1 - 0.05/4
    caption = report.figure("forest").caption
    assert "95% simultaneous (Bonferroni: each at 98.75%)" in caption and "Bonferroni's correction" in caption
