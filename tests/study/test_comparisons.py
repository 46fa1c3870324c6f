"""tunelab.study.comparisons: Holm and Bonferroni against closed forms, and verdicts that agree with
their intervals."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from tunelab.errors import TunelabError
from tunelab.study.comparisons import (
    bonferroni,
    compare_with_reference,
    describe_intervals,
    holm,
    verdict,
)
from tunelab.study.stats import paired_difference

# --- Holm ----------------------------------------------------------------------------------------


def test_holm_matches_hand_computed_statsmodels_values():
    # statsmodels multipletests(method="holm"): sort, multiply by m, m-1, ..., running max, cap 1.
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02] and holm([]) == []


def _holm_by_closed_testing(p):
    # Holm is the closed testing procedure over Bonferroni tests: the adjusted p of hypothesis i is
    # the largest Bonferroni p over every intersection that contains it.
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for k in range(1, m + 1):
            for subset in itertools.combinations(range(m), k):
                if i in subset:
                    worst = max(worst, min(1.0, k * min(p[j] for j in subset)))
        out.append(worst)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_closed_testing_with_bonferroni(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=5).tolist()
    assert holm(p) == pytest.approx(_holm_by_closed_testing(p))


def test_holm_refuses_values_outside_0_1():
    with pytest.raises(TunelabError):
        holm([0.1, 1.5])


def test_holm_keeps_the_familywise_error_rate_of_its_verdicts_and_finds_the_real_effect():
    # Six variants, one truly better by 0.02, five truly equal; eight paired seeds. (Bonferroni
    # finds a subset of what Holm finds, so its error rate is no larger.)
    rng = np.random.default_rng(1)
    reps, false_alarms, covered, found = 400, 0, 0, 0
    for _ in range(reps):
        got = compare_with_reference(_simulated_family(rng, [0.02, 0, 0, 0, 0, 0]))
        false_alarms += any(verdict(c.difference) != "no detectable difference" for c in got[1:])
        covered += got[0].difference.ci_low <= 0.02 <= got[0].difference.ci_high
        found += verdict(got[0].difference) == "better"
    assert false_alarms / reps <= 0.05 + 0.03  # FWER <= alpha (plus Monte Carlo slack)
    assert covered / reps > 0.95  # found at step 1, its interval is at 99.17%
    assert found / reps > 0.9  # and the real effect is found


def _simulated_family(rng, effects, n=8, base_noise=0.005):
    seed_effect = rng.normal(0, 0.03, size=n)
    base = 0.8 + seed_effect + rng.normal(0, base_noise, size=n)
    return [(0.8 + seed_effect + e + rng.normal(0, 0.005, size=n), base) for e in effects]


def test_bonferroni_is_m_times_p_capped_at_one():
    assert bonferroni([0.01, 0.02, 0.4]) == pytest.approx([0.03, 0.06, 1.0])
    with pytest.raises(TunelabError, match=r"\[0, 1\]"):
        bonferroni([0.1, math.nan])


# --- verdict -------------------------------------------------------------------------------------


def test_verdict_reads_the_interval_and_follows_the_metric_direction():
    d = paired_difference([0.93, 0.95, 0.94, 0.96], [0.91, 0.93, 0.92, 0.93])
    assert d.p_value < 0.01 and d.ci_low > 0
    assert verdict(d, mode="max") == "better"
    assert verdict(d, mode="min") == "worse"  # a higher loss is worse
    # The same data at a level its p-value does not reach: the interval contains 0, and so does
    # the verdict say.
    wide = paired_difference([0.93, 0.95, 0.94, 0.96], [0.91, 0.93, 0.92, 0.93], confidence=1 - d.p_value / 2)
    assert wide.ci_low < 0 < wide.ci_high and verdict(wide) == "no detectable difference"
    lower = paired_difference([0.91, 0.93, 0.92, 0.93], [0.93, 0.95, 0.94, 0.96])
    assert lower.ci_high < 0 and verdict(lower) == "worse" and verdict(lower, mode="min") == "better"


# --- several variants: intervals at the corrected level, against closed forms ---------------------

BASE = np.array([0.80, 0.82, 0.79, 0.81, 0.83])
HUGE = BASE + np.array([0.050, 0.052, 0.049, 0.051, 0.050])  # p ~ 6e-8: found at Holm's first step
NEAR = BASE + np.array([0.010, 0.030, 0.020, 0.002, 0.025])  # p = 0.0266: < 0.05 alone, > 0.05/2 at step 2
NONE = BASE + np.array([0.01, -0.02, 0.0, 0.015, -0.01])  # p = 0.88
FOUND = BASE + np.array([0.010, 0.030, 0.020, 0.008, 0.025])  # p = 0.0110: < 0.05/2, found at step 2


def t_interval(variant, base, level):
    """The closed form: mean difference ± t quantile x sd / sqrt(n), the quantile from scipy.stats.t."""
    d = np.asarray(variant) - np.asarray(base)
    half = stats.t.ppf(1 - (1 - level) / 2, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def test_bonferroni_intervals_are_the_closed_form_t_interval_at_one_minus_alpha_over_m():
    pairs = [(HUGE, BASE), (NEAR, BASE), (NONE, BASE)]
    got = compare_with_reference(pairs, correction="bonferroni")
    for c, (v, b) in zip(got, pairs, strict=True):
        d = c.difference
        assert d.confidence == pytest.approx(1 - 0.05 / 3)
        assert (d.ci_low, d.ci_high) == pytest.approx(t_interval(v, b, 1 - 0.05 / 3), rel=1e-10)
        assert c.p_adjusted == pytest.approx(min(1.0, 3 * stats.ttest_rel(v, b).pvalue))
    assert [verdict(c.difference) for c in got] == ["better", "no detectable difference"] * 1 + [
        "no detectable difference"
    ]


def test_holm_intervals_are_at_the_level_of_the_step_that_decided_them():
    # Step 1 finds HUGE at 1 - 0.05/3; step 2 tests NEAR at 1 - 0.05/2 and stops: NEAR and NONE
    # keep 97.5%. Alone, NEAR's 95% interval excludes 0 (p = 0.027), the disagreement this fixes.
    assert stats.ttest_rel(NEAR, BASE).pvalue < 0.05 and t_interval(NEAR, BASE, 0.95)[0] > 0
    got = compare_with_reference([(NONE, BASE), (NEAR, BASE), (HUGE, BASE)])
    expected = [(NONE, 0.975, None), (NEAR, 0.975, 2), (HUGE, 1 - 0.05 / 3, 1)]
    for c, (v, level, step) in zip(got, expected, strict=True):
        assert c.difference.confidence == pytest.approx(level) and c.step == step
        assert (c.difference.ci_low, c.difference.ci_high) == pytest.approx(
            t_interval(v, BASE, level), rel=1e-10
        )
    p = [stats.ttest_rel(v, BASE).pvalue for v in (NONE, NEAR, HUGE)]
    assert [c.p_adjusted for c in got] == pytest.approx(holm(p))
    assert [verdict(c.difference) for c in got] == ["no detectable difference"] * 2 + ["better"]
    assert got[1].difference.ci_low < 0 < got[1].difference.ci_high

    # FOUND instead of NEAR: found at step 2 (97.5%); Holm then stops at step 3, where NONE is
    # tested alone at 95%.
    got = compare_with_reference([(NONE, BASE), (FOUND, BASE), (HUGE, BASE)])
    assert [c.difference.confidence for c in got] == pytest.approx([0.95, 0.975, 1 - 0.05 / 3])
    assert [c.step for c in got] == [3, 2, 1]
    assert (got[1].difference.ci_low, got[1].difference.ci_high) == pytest.approx(
        t_interval(FOUND, BASE, 0.975)
    )
    assert [verdict(c.difference) for c in got] == ["no detectable difference", "better", "better"]


def test_one_comparison_is_not_corrected_and_one_pair_is_not_tested():
    (alone,) = compare_with_reference([(NEAR, BASE)])
    assert alone.difference.confidence == 0.95 and alone.p_adjusted == pytest.approx(0.0266, abs=1e-4)
    assert verdict(alone.difference) == "better"
    single, near = compare_with_reference([([0.9], [0.8]), (NEAR, BASE)])
    assert single.p_adjusted is None and not single.difference.has_interval
    assert near.difference.confidence == 0.95  # the family is the one comparison with a test


def test_the_wilcoxon_path_steps_down_with_hodges_lehmann_intervals():
    base = np.zeros(9)
    strong = np.array([0.012, 0.004, 0.021, 0.008, 0.015, 0.003, 0.019, 0.001, 0.011])
    weak = np.array([0.012, -0.004, 0.021, 0.008, 0.015, 0.003, 0.019, -0.001, 0.011])  # p = 0.027
    got = compare_with_reference([(strong, base), (weak, base)], test="wilcoxon")
    assert got[0].difference.test == "wilcoxon" and got[0].difference.confidence == 0.975
    assert got[0].difference.ci_low > 0 and verdict(got[0].difference) == "better"
    # Holm's step 2 tests weak alone at 95%: p = 0.027 < 0.05 is found, with its 95% interval.
    assert got[1].difference.confidence == 0.95 and got[1].difference.ci_low > 0
    assert got[1].p_adjusted == pytest.approx(holm([got[0].difference.p_value, 0.02734375])[1])


def test_bad_correction_or_alpha_is_refused():
    with pytest.raises(TunelabError, match="holm or bonferroni"):
        compare_with_reference([(NEAR, BASE)], correction="sidak")
    with pytest.raises(TunelabError, match="alpha"):
        compare_with_reference([(NEAR, BASE)], alpha=1.5)


def test_the_description_names_the_levels():
    assert describe_intervals("bonferroni", 0.05, 4) == "95% simultaneous (Bonferroni: each at 98.75%)"
    assert "Holm step-down" in describe_intervals("holm", 0.05, 4) and "98.75%" in describe_intervals(
        "holm", 0.05, 4
    )
    assert describe_intervals("holm", 0.1, 1) == "90% (one comparison: nothing to correct)"
    assert describe_intervals("holm", 0.05, 0) == "none: needs ≥ 2 seeds"


def test_bonferroni_intervals_cover_together_holm_ones_each_but_not_together():
    # Six real, different effects, all found. What the module docstring says, measured at
    # alpha = 0.2 so that 200 repetitions show it: Bonferroni's intervals (each at 96.7%) cover
    # all six together at least 80% of the time; Holm's (96.7% down to 80%) each cover at least
    # 80%, but together far less often.
    rng = np.random.default_rng(3)
    effects = np.array([0.04, 0.05, 0.06, 0.07, 0.08, 0.09])
    reps, joint, each = 200, {"holm": 0, "bonferroni": 0}, np.zeros(6)
    for _ in range(reps):
        pairs = _simulated_family(rng, effects, base_noise=0.001)
        for correction in joint:
            got = compare_with_reference(pairs, alpha=0.2, correction=correction)
            assert all(verdict(c.difference) == "better" for c in got)  # every effect is found
            hits = np.array(
                [c.difference.ci_low <= e <= c.difference.ci_high for c, e in zip(got, effects, strict=True)]
            )
            joint[correction] += hits.all()
            if correction == "holm":
                each += hits
    # Binomial(200, 0.8) has sd 0.028: the bounds leave 2 sd for Monte Carlo error.
    assert joint["bonferroni"] / reps > 0.74
    assert joint["holm"] / reps < 0.7
    assert (each / reps > 0.74).all()
