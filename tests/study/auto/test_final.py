from __future__ import annotations

import pytest

from tunelab.study.auto.final import ablation_seeds, clip_interval, final_seeds, summary
from tunelab.study.stats import summarize


def runs(metric: str, values: list[float]) -> list[dict]:
    return [{"seed": 1000 + i, "val": {metric: v}, "test": {metric: v}} for i, v in enumerate(values)]


def test_an_accuracy_interval_near_100_percent_is_clipped_to_1():
    values = [1.0, 1.0, 0.9722, 1.0, 0.9722]  # wine's final seeds: the raw t-interval ends above 1
    raw = summarize(values)
    assert raw.ci_high > 1.0  # what auto reported before: [97.00, 100.78]%
    s = summary(runs("accuracy", values), "accuracy")["test"]
    assert s["ci_high"] == 1.0 and s["ci_low"] == pytest.approx(raw.ci_low) and s["clipped"]
    assert s["mean"] == pytest.approx(raw.mean)  # the mean and spread are untouched


@pytest.mark.parametrize("metric", ["precision", "recall", "f1"])
def test_every_unit_metric_is_clipped_at_both_ends(metric):
    low = summary(runs(metric, [0.0, 0.0, 0.05]), metric)["test"]
    assert low["ci_low"] == 0.0 and low["clipped"]


def test_an_unbounded_metric_keeps_its_t_interval():
    values = [0.01, 0.02, 0.2]
    s = summary(runs("loss", values), "loss")["test"]
    raw = summarize(values)
    assert (s["ci_low"], s["ci_high"], s["clipped"]) == (
        pytest.approx(raw.ci_low),
        pytest.approx(raw.ci_high),
        False,
    )
    assert s["ci_low"] < 0  # a t-interval of a loss may cross 0: not auto's to clip


def test_an_interval_inside_the_range_is_not_marked():
    assert clip_interval(0.2, 0.8, (0.0, 1.0)) == (0.2, 0.8, False)
    assert clip_interval(None, None, (0.0, 1.0)) == (None, None, False)


def test_final_and_ablation_seeds_are_disjoint():
    assert not set(final_seeds(0, 5)) & set(ablation_seeds(0, 10))
