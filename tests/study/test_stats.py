"""tunelab.study.stats against scipy reference values, closed forms and brute-force definitions."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from tunelab.errors import TunelabError
from tunelab.study.comparisons import verdict
from tunelab.study.stats import (
    BOOTSTRAP_MIN_N,
    BOOTSTRAP_SEED,
    N_RESAMPLES,
    choose_method,
    hodges_lehmann,
    level_text,
    paired_difference,
    signed_rank_cdf,
    signed_rank_p,
    summarize,
)

# --- summarize ---------------------------------------------------------------------------------


def test_t_interval_matches_the_textbook_formula_and_scipy():
    x = [0.91, 0.93, 0.96]
    s = summarize(x)
    mean, sd = np.mean(x), np.std(x, ddof=1)
    # With 2 degrees of freedom the t quantile has a closed form: q * sqrt(2 / (1 - q^2)), q = 0.95.
    t_975 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # 4.3027, the table value
    half = t_975 * sd / math.sqrt(3)
    assert (s.n, s.method, s.confidence) == (3, "t", 0.95)
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == pytest.approx((mean - half, mean + half), rel=1e-12)
    ref = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)  # another scipy code path
    assert (s.ci_low, s.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert s.se == pytest.approx(sd / math.sqrt(3))


def test_confidence_level_is_honoured():
    x = [1.0, 2.0, 4.0, 3.5]
    narrow, wide = summarize(x, confidence=0.8), summarize(x, confidence=0.99)
    assert wide.ci_high - wide.ci_low > narrow.ci_high - narrow.ci_low
    ref = stats.t.interval(0.8, 3, loc=np.mean(x), scale=stats.sem(x))
    assert (narrow.ci_low, narrow.ci_high) == pytest.approx(ref)


def test_one_value_has_no_interval_and_says_so():
    s = summarize([0.9])
    assert s.n == 1 and s.mean == 0.9
    assert not s.has_interval and s.ci_low == -math.inf and s.ci_high == math.inf
    assert "needs ≥ 2" in s.note
    d = s.to_dict()
    assert d["std"] is None and d["ci_low"] is None and d["ci_high"] is None  # valid JSON, no NaN


def test_equal_values_give_zero_width_not_nan():
    s = summarize([0.5, 0.5, 0.5])
    assert (s.std, s.ci_low, s.ci_high) == (0.0, 0.5, 0.5)
    assert "zero spread" in s.note


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [math.inf, 1.0]])
def test_empty_or_non_finite_values_are_refused(bad):
    with pytest.raises(TunelabError):
        summarize(bad)


def test_bad_arguments_are_refused():
    with pytest.raises(TunelabError, match="confidence"):
        summarize([1, 2], confidence=95)
    with pytest.raises(TunelabError, match="auto, t, bootstrap or log-t"):
        summarize([1, 2], method="jackknife")


def test_log_t_is_a_positive_interval_around_the_geometric_mean():
    # Latencies with one slow outlier: the t-interval of the raw values reaches below zero.
    x = [0.10, 0.11, 0.12, 0.45]
    assert summarize(x, method="t").ci_low < 0
    s = summarize(x, method="log-t")
    logs = np.log(x)
    low, high = stats.t.interval(0.95, 3, loc=logs.mean(), scale=stats.sem(logs))
    assert s.mean == pytest.approx(math.exp(logs.mean()))  # the geometric mean
    assert (s.ci_low, s.ci_high) == pytest.approx((math.exp(low), math.exp(high)))
    assert 0 < s.ci_low < s.mean < s.ci_high and s.method == "log-t" and "geometric" in s.note
    assert summarize([2.0, 2.0], method="log-t").ci_low == pytest.approx(2.0)
    assert not summarize([0.3], method="log-t").has_interval
    with pytest.raises(TunelabError, match="not positive"):
        summarize([0.0, 1.0], method="log-t")


def test_bootstrap_is_scipys_bca_with_a_fixed_generator():
    x = np.random.default_rng(3).exponential(size=25)
    s = summarize(x, method="bootstrap")
    ref = stats.bootstrap(
        (x,), np.mean, method="BCa", n_resamples=N_RESAMPLES, rng=np.random.default_rng(BOOTSTRAP_SEED)
    ).confidence_interval
    assert s.method == "bootstrap" and s.note == ""
    assert (s.ci_low, s.ci_high) == pytest.approx((ref.low, ref.high))
    assert summarize(x, method="bootstrap") == s  # the same values always give the same report


def test_auto_picks_bootstrap_only_for_enough_skewed_values():
    symmetric = np.linspace(0, 1, 30)
    skewed = np.r_[np.zeros(BOOTSTRAP_MIN_N + 2), 10.0]
    assert stats.skew(skewed, bias=False) > 1
    assert choose_method(symmetric) == "t"
    assert choose_method(skewed) == "bootstrap"
    assert summarize(skewed).method == "bootstrap"
    # Just as skewed but fewer values than BOOTSTRAP_MIN_N: a bootstrap could not see past them.
    few = np.r_[np.zeros(BOOTSTRAP_MIN_N - 3), 10.0]
    assert summarize(few).method == "t"


def test_a_bootstrap_of_few_values_warns_that_it_is_too_narrow():
    s = summarize([0.8, 0.85, 0.9], method="bootstrap")
    assert s.method == "bootstrap" and "too narrow" in s.note
    t = summarize([0.8, 0.85, 0.9], method="t")
    assert s.ci_high - s.ci_low < t.ci_high - t.ci_low  # what the note warns about


def test_t_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    reps, n = 2000, 4
    hits = 0
    for _ in range(reps):
        s = summarize(rng.normal(0.7, 0.05, size=n))
        hits += s.ci_low <= 0.7 <= s.ci_high
    # Binomial(2000, 0.95) has sd 0.0049: 0.935..0.965 is a 3-sigma band.
    assert 0.935 < hits / reps < 0.965


# --- paired difference ---------------------------------------------------------------------------


def test_paired_t_matches_scipy_ttest_rel():
    a = [0.93, 0.95, 0.94, 0.96, 0.92]
    b = [0.91, 0.93, 0.92, 0.93, 0.915]
    d = paired_difference(a, b)
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert d.test == "t" and d.n == 5
    assert d.mean == pytest.approx(np.mean(np.subtract(a, b))) and d.estimate == d.mean
    assert d.p_value == pytest.approx(ref.pvalue)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high))
    # The same as a one-sample t-test of the differences: the pairing is what matters.
    one = stats.ttest_1samp(np.subtract(a, b), 0.0)
    assert d.p_value == pytest.approx(one.pvalue)


def test_pairing_removes_the_seed_effect_an_unpaired_test_would_drown_in():
    seed_effect = np.array([0.0, 0.05, -0.04, 0.08, -0.06, 0.02])
    base = 0.80 + seed_effect
    variant = base + 0.01 + np.array([0.001, -0.001, 0.002, 0.0, -0.002, 0.001])
    paired = paired_difference(variant, base)
    unpaired = stats.ttest_ind(variant, base)
    assert paired.p_value < 1e-4 < 0.5 < unpaired.pvalue
    assert paired.ci_low < 0.01 < paired.ci_high


def test_wilcoxon_matches_scipy_and_its_interval_inverts_the_test():
    d = np.array([0.012, -0.004, 0.021, 0.008, 0.015, 0.003, 0.019, -0.001, 0.011])
    res = paired_difference(d, np.zeros_like(d), test="wilcoxon")
    assert res.test == "wilcoxon"
    assert res.p_value == pytest.approx(stats.wilcoxon(d).pvalue)
    i, j = np.triu_indices(len(d))
    walsh = np.sort((d[i] + d[j]) / 2)
    assert res.estimate == pytest.approx(np.median(walsh))
    # The Hodges-Lehmann interval is the set of shifts the exact two-sided test does not reject:
    # check with scipy itself at the midpoints between consecutive Walsh averages.
    mids = (walsh[:-1] + walsh[1:]) / 2
    kept = [m for m in mids if stats.wilcoxon(d - m, method="exact").pvalue > 0.05]
    assert res.ci_low == pytest.approx(walsh[walsh < min(kept)].max())
    assert res.ci_high == pytest.approx(walsh[walsh > max(kept)].min())


def test_signed_rank_p_is_scipys_exact_p_without_ties_or_zeros():
    rng = np.random.default_rng(0)
    for n in (2, 3, 6, 9, 15, 25):
        d = rng.normal(0.01, 0.02, size=n)
        assert signed_rank_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-12)


def test_signed_rank_p_and_its_interval_agree_with_ties_and_zeros_where_scipy_does_not():
    # Accuracy differences on one val set are multiples of 1/n_val: ties and zeros are the rule.
    d = np.array([0.03, 0.03, 0.03, 0.01, 0.02, 0.02, 0.03, -0.02])
    _, low, high, _ = hodges_lehmann(d, 0.95)
    assert (low, high) == (0.0, 0.03)  # the 95% interval reaches 0 ...
    assert stats.wilcoxon(d).pvalue < 0.05  # ... scipy's tie rules say p < 0.05 ...
    assert signed_rank_p(d) > 0.05  # ... the p-value the interval inverts does not
    res = paired_difference(d, np.zeros_like(d), test="wilcoxon")
    assert res.p_value == signed_rank_p(d) and verdict(res) == "no detectable difference"

    rng = np.random.default_rng(1)
    levels = (0.2, 0.05, 0.025, 0.05 / 3, 0.0125, 0.01)
    for _ in range(300):
        n = int(rng.integers(2, 16))
        d = rng.integers(-2, 5, size=n) / 100  # a coarse grid: many ties, zeros, equal Walsh averages
        p = signed_rank_p(d)
        for g in levels:
            _, low, high, _ = hodges_lehmann(d, 1 - g)
            assert (p <= g) == (low > 0 or high < 0), (d.tolist(), g)
    big = rng.integers(-3, 5, size=60) / 100  # above 50 pairs: the normal approximation, same rule
    for g in levels:
        _, low, high, _ = hodges_lehmann(big, 1 - g)
        assert (signed_rank_p(big) <= g) == (low > 0 or high < 0)


def test_at_level_recomputes_the_interval_and_keeps_the_test():
    a, b = [0.93, 0.95, 0.94, 0.96, 0.92], [0.91, 0.93, 0.92, 0.93, 0.915]
    d = paired_difference(a, b)
    wide = d.at_level(0.99)
    ci = stats.ttest_rel(a, b).confidence_interval(0.99)
    assert (wide.ci_low, wide.ci_high) == pytest.approx((ci.low, ci.high)) and wide.confidence == 0.99
    assert (wide.p_value, wide.estimate, wide.test) == (d.p_value, d.estimate, d.test)
    w = paired_difference(np.arange(8.0) + 1, np.zeros(8), test="wilcoxon")
    assert w.at_level(0.99).ci_low == hodges_lehmann(np.arange(8.0) + 1, 0.99)[1]
    sign = paired_difference(np.arange(6) + 0.5, np.arange(6.0))  # p = 1/32: 95% reached, 99% not
    assert sign.has_interval and not sign.at_level(0.99).has_interval
    assert "too few for a 99% interval" in sign.at_level(0.99).note
    assert level_text(0.99) == "99%"


def test_signed_rank_distribution_matches_brute_force():
    n = 7
    sums = [sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)
            for signs in itertools.product([0, 1], repeat=n)]  # fmt: skip
    brute = np.cumsum(np.bincount(sums)) / 2**n
    assert signed_rank_cdf(n) == pytest.approx(brute)


def test_hodges_lehmann_needs_six_pairs_for_95_percent():
    _, low, high, note = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (low, high) == (-math.inf, math.inf) and "needs ≥ 6" in note
    _, low, high, note = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (low, high) == (1.0, 6.0) and note == ""  # exact: P(T+ = 0) = 1/64 <= 0.025


def test_two_pairs_one_pair_and_identical_pairs():
    one = paired_difference([0.9], [0.8])
    assert one.test == "none" and not one.has_interval and one.p_value == 1.0
    assert verdict(one) == "needs ≥ 2 seeds"
    same = paired_difference([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert (same.mean, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert verdict(same) == "no detectable difference"


def test_a_constant_nonzero_difference_uses_the_exact_sign_test_not_p_zero():
    # t = c / 0: scipy's paired t-test says p = 0, certainty that three seeds cannot give.
    three = paired_difference([0.91, 0.81, 0.71], [0.90, 0.80, 0.70])
    assert three.test == "sign" and three.p_value == pytest.approx(0.25)  # 2 * 0.5**3
    assert not three.has_interval and "too few" in three.note
    assert verdict(three) == "no detectable difference"
    six = paired_difference(np.arange(6) + 0.5, np.arange(6.0))
    assert six.p_value == pytest.approx(2 * 0.5**6) and (six.ci_low, six.ci_high) == (0.5, 0.5)
    assert verdict(six) == "better"


def test_differences_equal_but_for_float_rounding_are_a_constant_not_a_t_of_1e16():
    a, b = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert np.ptp(np.subtract(a, b)) > 0  # 0.9 - 0.8 and 0.8 - 0.7 differ in the last bit
    d = paired_difference(a, b)
    assert d.test == "sign" and d.p_value == pytest.approx(2 * 0.5**6) and d.std == 0.0
    same = paired_difference([0.3, 0.6], [0.1 + 0.2, 0.6])  # 0.1 + 0.2 != 0.3 in floats
    assert same.note == "identical on every pair" and same.mean == 0.0


def test_mismatched_lengths_and_bad_test_are_refused():
    with pytest.raises(TunelabError, match="one value of each per seed"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(TunelabError, match="wilcoxon"):
        paired_difference([1, 2], [1, 3], test="welch")
