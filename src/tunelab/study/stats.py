"""The statistics every study report rests on: summaries and paired differences.

* ``summarize(values)``: mean, sample standard deviation and a confidence interval of the mean.
* ``paired_difference(variant, base)``: the mean difference over paired runs (same seeds, same
  split), its confidence interval and a p-value, from a paired t-test or a Wilcoxon signed-rank
  test (with the Hodges-Lehmann interval that belongs to it).

Several variants against one base (Holm, Bonferroni, verdicts) are ``tunelab.study.comparisons``.
The numbers come from ``scipy.stats`` wherever scipy has them; the few parts written by hand
(the signed-rank null distribution behind the Hodges-Lehmann interval and its p-value) say why.

Each p-value here is the one its interval inverts: a ``1 - g`` interval excludes 0 exactly when
p < g (p <= g for the signed-rank test), so a verdict read off the interval is the test's. For
the Wilcoxon path that holds by construction: the p-value comes from the same Walsh averages
and the same null distribution as the Hodges-Lehmann interval (Tukey's form of the signed-rank
statistic), also with tied or zero differences, where scipy's ``wilcoxon`` switches to rules of
its own (zeros dropped, a tie-corrected normal approximation) that can disagree with the interval.

    >>> s = summarize([0.91, 0.93, 0.92])
    >>> round(s.mean, 3), round(s.ci_low, 3), round(s.ci_high, 3), s.method
    (0.92, 0.895, 0.945, 't')
    >>> d = paired_difference([0.93, 0.95, 0.94, 0.96], [0.91, 0.93, 0.92, 0.93])
    >>> round(d.mean, 4), d.ci_low > 0, round(d.p_value, 4)
    (0.0225, True, 0.0029)

Edge cases are explicit, never a silent NaN: one value has no spread and no interval (the
interval is infinite, ``note`` says "needs ≥ 2 values"); values that are all equal have zero
spread and a zero-width interval (``note`` says so).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from tunelab.errors import TunelabError

IntervalMethod = Literal["auto", "t", "bootstrap", "log-t"]  # not the training Method: an interval
PairedTest = Literal["t", "wilcoxon"]

# The "auto" rule for an interval of the mean. The t-interval is exact for normal data and, by the
# central limit theorem, close for moderately skewed data. A bootstrap interval is built from the
# sample alone: it can never reach past the values observed, so with a handful of values it is too
# narrow (with n = 3 there are only 10 distinct resamples). It only earns its place when the
# sample is large enough to show its own shape AND that shape is strongly skewed, where the
# symmetric t-interval is off. |skewness| > 1 is the usual "highly skewed" line (Bulmer 1979).
BOOTSTRAP_MIN_N = 10
SKEW_THRESHOLD = 1.0
# Resamples for the bootstrap: scipy's default; the interval's Monte Carlo error is then far
# below the sampling error of any study small enough to run on one machine.
N_RESAMPLES = 9999
# A fixed generator: the same values always give the same report.
BOOTSTRAP_SEED = 0
# Up to this many pairs, the Hodges-Lehmann interval uses the exact signed-rank distribution
# (as scipy.stats.wilcoxon does for its exact p-value); above, the normal approximation.
EXACT_WILCOXON_MAX_N = 50


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation (ddof=1) and a ``confidence`` interval of the mean of ``n`` values.

    ``method`` is "t" or "bootstrap". With ``n == 1`` there is no spread: ``std`` is NaN and the
    interval is ``(-inf, inf)``; ``has_interval`` is False and ``note`` says why.

    >>> Summary(3, 1.0, 0.1, 0.75, 1.25, 0.95, "t").has_interval
    True
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str  # "t", "bootstrap" or "log-t" (geometric mean, for positive costs)
    note: str = ""

    @property
    def has_interval(self) -> bool:
        """True when the interval is finite (at least two values)."""
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def se(self) -> float:
        """Standard error of the mean, ``std / sqrt(n)`` (NaN for one value)."""
        return self.std / math.sqrt(self.n) if self.n > 1 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; an undefined std or an infinite bound becomes None."""
        return {
            "n": self.n,
            "mean": self.mean,
            "std": _finite(self.std),
            "ci_low": _finite(self.ci_low),
            "ci_high": _finite(self.ci_high),
            "confidence": self.confidence,
            "method": self.method,
            "note": self.note,
        }


def _values(values: Sequence[float], what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise TunelabError(f"{what}: no values to summarize; at least one run must have finished")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise TunelabError(
            f"{what}: value {x[bad[0]]} at position {bad[0]} is not finite; leave diverged or failed "
            "runs out before summarizing"
        )
    return x


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise TunelabError(f"confidence: got {confidence}; must be between 0 and 1, e.g. 0.95")


def choose_method(values: Sequence[float]) -> Literal["t", "bootstrap"]:
    """The interval the "auto" rule picks: bootstrap only for n >= 10 values with |skewness| > 1.

    >>> choose_method([1, 2, 3]), choose_method([0] * 9 + [10, 0, 0])
    ('t', 'bootstrap')
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) < BOOTSTRAP_MIN_N or np.ptp(x) == 0:
        return "t"
    skew = float(stats.skew(x, bias=False))
    return "bootstrap" if abs(skew) > SKEW_THRESHOLD else "t"


def summarize(values: Sequence[float], confidence: float = 0.95, method: str = "auto") -> Summary:
    """Mean, std (ddof=1) and a confidence interval of the mean.

    ``method``: "t" (Student's t, ``scipy.stats.t``), "log-t" (for positive costs: the geometric
    mean and the t-interval of the logs, exponentiated), "bootstrap" (BCa, ``scipy.stats.bootstrap``,
    percentile when BCa is undefined), or "auto": t unless there are at least
    ``BOOTSTRAP_MIN_N`` = 10 values with |skewness| > 1 (see ``choose_method``). With fewer values a
    bootstrap cannot see the shape it would correct for, and its interval cannot extend past the
    observed values, so it is narrower than the truth; the t-interval is the honest choice there.

    >>> s = summarize([0.8, 0.82, 0.84])
    >>> round(s.std, 3), round(s.ci_high - s.ci_low, 3)
    (0.02, 0.099)
    >>> summarize([0.8]).note
    'needs ≥ 2 values for a spread and an interval'
    """
    _check_confidence(confidence)
    if method not in ("auto", "t", "bootstrap", "log-t"):
        raise TunelabError(f"method: got {method!r}; must be auto, t, bootstrap or log-t")
    x = _values(values, "summarize")
    if method == "log-t":
        return _summarize_log(x, confidence)
    n, mean = len(x), float(np.mean(x))
    chosen = choose_method(x) if method == "auto" else method
    if n == 1:
        return Summary(
            1, mean, math.nan, -math.inf, math.inf, confidence, chosen,
            "needs ≥ 2 values for a spread and an interval",
        )  # fmt: skip
    std = float(np.std(x, ddof=1))
    if std == 0:
        # Every value equal: scipy would divide by a zero scale and return NaN. The spread seen is
        # zero, so is the interval's width; more seeds (or a finer metric) may show variation.
        return Summary(n, mean, 0.0, mean, mean, confidence, chosen, f"all {n} values are equal: zero spread")
    if chosen == "t":
        # mean ± t quantile x std / sqrt(n): ``stats.t.interval(..., scale=stats.sem(x))`` without
        # sem's input checks and a second quantile (a millisecond a call, and studies make many).
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        return Summary(n, mean, std, mean - half, mean + half, confidence, "t")
    low, high, note = _bootstrap_mean(x, confidence)
    if n < BOOTSTRAP_MIN_N:
        note = (note + "; " if note else "") + (
            f"a bootstrap of {n} values cannot reach past them: the interval is likely too narrow"
        )
    return Summary(n, mean, std, low, high, confidence, "bootstrap", note)


def _summarize_log(x: np.ndarray, confidence: float) -> Summary:
    """Geometric mean and exp(t-interval of the logs): for positive costs (latency, bytes).

    Their spread is multiplicative and skewed (one slow run doubles a latency, none halves it), so
    a t-interval on the raw values can reach below zero; on the log scale it cannot.
    """
    if (x <= 0).any():
        raise TunelabError(f"log-t: value {float(x[x <= 0][0])} is not positive; use method t for it")
    inner = summarize(np.log(x), confidence, "t")
    std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
    note = "geometric mean; interval exp(t-interval of the logs)"
    note = f"{inner.note}; {note}" if inner.note else note
    mean, low, high = math.exp(inner.mean), math.exp(inner.ci_low), math.exp(inner.ci_high)
    if np.ptp(x) == 0:  # exp(log(v)) may differ from v in the last bit: equal values stay exact
        mean = float(x[0])
        low, high = (mean, mean) if inner.has_interval else (low, high)
    return Summary(inner.n, mean, std, low, high, confidence, "log-t", note)


def _bootstrap_mean(x: np.ndarray, confidence: float) -> tuple[float, float, str]:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    with np.errstate(all="ignore"):
        res = stats.bootstrap(
            (x,), np.mean, confidence_level=confidence, method="BCa", n_resamples=N_RESAMPLES, rng=rng
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(low) and math.isfinite(high):
        return low, high, ""
    # BCa needs a jackknife with spread and resamples on both sides of the estimate; with very few
    # or very repetitive values it is undefined, and the percentile interval is what is left.
    res = stats.bootstrap(
        (x,), np.mean, confidence_level=confidence, method="percentile", n_resamples=N_RESAMPLES,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )  # fmt: skip
    ci = res.confidence_interval
    return float(ci.low), float(ci.high), "BCa undefined for these values; percentile bootstrap"


# --- paired comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """``variant - base`` over ``n`` pairs: its mean, a ``confidence`` interval and a p-value.

    ``estimate`` is the centre the interval belongs to: the mean difference for the t-test, the
    Hodges-Lehmann estimate (median of the Walsh averages) for Wilcoxon. ``test`` is "t",
    "wilcoxon", "sign" (every difference equal: no spread for a t-test; the exact sign test
    gives the p-value and the interval) or "none" (fewer than two pairs: the interval is
    infinite and the p-value 1.0, no evidence either way).

    >>> d = paired_difference([2.0, 3.0, 5.0], [1.0, 1.5, 3.0])
    >>> d.n, d.mean, d.test
    (3, 1.5, 't')
    """

    n: int
    mean: float
    std: float
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float
    test: str
    note: str = ""
    # The n differences themselves: what ``at_level`` recomputes the interval from.
    differences: tuple[float, ...] = field(default=(), repr=False)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    def at_level(self, confidence: float) -> PairedDifference:
        """The same comparison with its interval at another level (the test and p do not change).

        >>> d = paired_difference([2.0, 3.0, 5.0], [1.0, 1.5, 3.0])
        >>> d.at_level(0.99).ci_high > d.ci_high, d.at_level(0.99).p_value == d.p_value
        (True, True)
        """
        _check_confidence(confidence)
        if self.n < 2:
            return dataclasses.replace(self, confidence=confidence)
        low, high, note = _interval(np.asarray(self.differences), self, confidence)
        return dataclasses.replace(self, ci_low=low, ci_high=high, confidence=confidence, note=note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": _finite(self.std),
            "estimate": self.estimate,
            "ci_low": _finite(self.ci_low),
            "ci_high": _finite(self.ci_high),
            "p_value": self.p_value,
            "confidence": self.confidence,
            "test": self.test,
            "note": self.note,
        }


def paired_difference(
    variant: Sequence[float],
    base: Sequence[float],
    *,
    confidence: float = 0.95,
    test: str = "t",
) -> PairedDifference:
    """Compare paired values (the same seeds and split): ``variant - base``.

    ``test="t"``: the paired t-test (``scipy.stats.ttest_rel``'s p-value and interval).
    ``test="wilcoxon"``: the signed-rank test and its Hodges-Lehmann interval, both from the
    Walsh averages (see ``signed_rank_p`` and ``hodges_lehmann``); 95% needs at least 6 pairs
    (with 5, even the most lopsided outcome has a two-sided p of 1/16). Without ties or zero
    differences the p-value is ``scipy.stats.wilcoxon``'s exact one; with them it stays the one
    the interval inverts, so the two never disagree.

    >>> d = paired_difference([0.90, 0.92, 0.91], [0.90, 0.92, 0.91])
    >>> d.p_value, d.ci_low, d.ci_high, d.note
    (1.0, 0.0, 0.0, 'identical on every pair')
    >>> paired_difference([0.9], [0.8]).note
    'needs ≥ 2 seeds for an interval and a test'
    """
    _check_confidence(confidence)
    if test not in ("t", "wilcoxon"):
        raise TunelabError(f"test: got {test!r}; must be t (paired t-test) or wilcoxon (signed-rank)")
    a, b = _values(variant, "variant"), _values(base, "base")
    if len(a) != len(b):
        raise TunelabError(
            f"paired values: the variant has {len(a)} and the base {len(b)}; a paired comparison needs "
            "one value of each per seed"
        )
    d = a - b
    n, mean = len(d), float(np.mean(d))
    if n == 1:
        return PairedDifference(
            1, mean, math.nan, mean, -math.inf, math.inf, 1.0, confidence, "none",
            "needs ≥ 2 seeds for an interval and a test", (mean,),
        )  # fmt: skip
    std = float(np.std(d, ddof=1))
    # Differences that differ only by the rounding of ``a - b`` (a few ulps of the values) are
    # equal: 0.9 - 0.8 and 0.8 - 0.7 differ in the last bit, and a t statistic of 1e16 is no evidence.
    rounding = 8 * np.finfo(np.float64).eps * float(np.max(np.abs(np.concatenate([a, b]))))
    if np.ptp(d) <= rounding:
        mean = 0.0 if abs(mean) <= rounding else mean
        std, d = 0.0, np.full(n, mean)
    if std == 0 and mean == 0:
        name, estimate, p = test, 0.0, 1.0
    elif std == 0:
        # All n differences equal and non-zero: a t statistic is c / 0 (scipy says p = 0), which
        # claims certainty the data do not have. The exact sign test asks only how likely n
        # differences of one sign are by chance: p = 2 * 0.5**n.
        name, estimate, p = "sign", mean, min(1.0, 2 * 0.5**n)
    elif test == "t":
        # The paired t-test as ``scipy.stats.ttest_rel`` computes it (the tests check), from
        # scipy's t distribution: ttest_rel's input handling costs about 1 ms a call, ten times
        # the test itself, and the simulations that check these statistics make thousands.
        name, estimate = "t", mean
        p = float(2 * stats.t.sf(abs(mean) / (std / math.sqrt(n)), n - 1))
    else:
        name, estimate, p = "wilcoxon", float(np.median(_walsh(d))), signed_rank_p(d)
    first = PairedDifference(n, mean, std, estimate, math.nan, math.nan, p, confidence, name, "", tuple(d))
    return first.at_level(confidence)


def _interval(d: np.ndarray, test: PairedDifference, confidence: float) -> tuple[float, float, str]:
    """The ``confidence`` interval that belongs to ``test``'s p-value (it excludes 0 when p < 1 - conf)."""
    n, mean = len(d), test.mean
    if test.std == 0 and mean == 0:
        return 0.0, 0.0, "identical on every pair"
    if test.test == "sign":
        # The sign test's interval for the median is [c, c] when its p reaches the level, and
        # unbounded when n is too small to reach it.
        reached = test.p_value <= 1 - confidence
        note = f"all {n} differences equal {mean:+.4g}: exact sign test" + (
            "" if reached else f"; {n} pairs are too few for a {level_text(confidence)} interval"
        )
        return (mean, mean, note) if reached else (-math.inf, math.inf, note)
    if test.test == "t":
        # mean ± t quantile x standard error: ``stats.t.interval`` with one ppf call instead of two.
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * test.std / math.sqrt(n)
        return mean - half, mean + half, ""
    _, low, high, note = hodges_lehmann(d, confidence)
    return low, high, note


def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2 under the null of the Wilcoxon signed-rank test (no ties).

    Written by hand because scipy keeps this distribution private; it is the classic count of
    subsets of {1..n} by their sum (each rank is positive or negative with probability 1/2).

    >>> signed_rank_cdf(3).tolist()  # 8 sign patterns; sums 0,1,2,3,3,4,5,6
    [0.125, 0.25, 0.375, 0.625, 0.75, 0.875, 1.0]
    """
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1, dtype=np.float64)
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()  # subsets with rank r added
    return np.cumsum(counts) / 2.0**n


def _signed_rank_null(n: int) -> np.ndarray:
    """P(T+ <= t), t = 0..n(n+1)/2: exact up to ``EXACT_WILCOXON_MAX_N`` pairs, else the normal
    approximation (mean M/2, variance n(n+1)(2n+1)/24, continuity-corrected). The p-value and the
    interval both read this one array, which is what makes them agree."""
    if n <= EXACT_WILCOXON_MAX_N:
        return signed_rank_cdf(n)
    m = n * (n + 1) // 2
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    return stats.norm.cdf((np.arange(m + 1) + 0.5 - m / 2) / sd)


def _walsh(d: Sequence[float]) -> np.ndarray:
    x = np.asarray(d, dtype=np.float64)
    i, j = np.triu_indices(len(x))
    return np.sort((x[i] + x[j]) / 2.0)  # the M = n(n+1)/2 Walsh averages, i <= j


def signed_rank_p(d: Sequence[float]) -> float:
    """Two-sided p-value of the signed-rank test of "the differences ``d`` are centred on 0".

    T+ is counted as Tukey did: the number of Walsh averages above 0 (below 0 for the other
    tail), which equals the sum of the positive ranks when no difference is zero or tied. A Walsh
    average equal to 0 counts for neither tail (the conservative side), and the null is the
    no-ties distribution: so "p <= g" holds exactly when the ``1 - g`` Hodges-Lehmann interval
    excludes 0. scipy's ``wilcoxon`` drops zeros and uses a tie-corrected normal approximation
    instead, which can disagree with the interval; without zeros or ties the two p-values agree.

    >>> signed_rank_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # every Walsh average > 0: 2 * (1/2)**6
    0.03125
    """
    walsh = _walsh(d)
    m = len(walsh)
    cdf = _signed_rank_null(len(d))
    above, below = int(np.sum(walsh > 0)), int(np.sum(walsh < 0))
    # P(T+ >= k) = P(T+ <= M - k) by symmetry; the smaller tail, doubled.
    return float(min(1.0, 2.0 * min(cdf[m - above], cdf[m - below])))


def hodges_lehmann(d: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, str]:
    """Hodges-Lehmann estimate and interval of the centre of paired differences ``d``.

    The estimate is the median of the Walsh averages ``(d_i + d_j) / 2, i <= j``; the interval is
    the set of shifts the two-sided signed-rank test does not reject, i.e. the Walsh averages of
    rank C and M + 1 - C with C from the exact null distribution (normal approximation above 50
    pairs). Returns ``(estimate, low, high, note)``; when n is too small to reach ``confidence``
    the interval is ``(-inf, inf)`` and the note says so. scipy has no such interval.

    >>> est, low, high, _ = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> est, low, high
    (3.5, 1.0, 6.0)
    """
    n = len(d)
    walsh = _walsh(d)
    m = len(walsh)
    estimate = float(np.median(walsh))
    alpha = 1.0 - confidence
    # C = the number of Walsh averages cut from each end: the largest C with P(T+ <= C-1) <= alpha/2.
    c = int(np.searchsorted(_signed_rank_null(n), alpha / 2, side="right"))
    if c < 1:
        need = next(k for k in range(2, 200) if 2 * 0.5**k <= alpha)
        return (
            estimate,
            -math.inf,
            math.inf,
            (f"{n} pairs are too few for a {level_text(confidence)} signed-rank interval; needs ≥ {need}"),
        )
    return estimate, float(walsh[c - 1]), float(walsh[m - c]), ""


def level_text(confidence: float) -> str:
    """A confidence level as a report prints it: 95%, 97.5%, 99.17%.

    >>> level_text(0.95), level_text(1 - 0.05 / 6), level_text(0.999)
    ('95%', '99.17%', '99.9%')
    """
    return f"{100 * confidence:.4g}%"
