"""The ablation report's forest plot is the ablation's own differences and intervals."""

import pytest

from tunelab.report.pages.ablation import OUTCOME_ROLE, build_ablation_report


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
