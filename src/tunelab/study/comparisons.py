"""Several variants against one base: Holm or Bonferroni, intervals at the corrected level, verdicts.

With m variants, a per-comparison 95% interval can exclude 0 while Holm's adjusted p says "no
detectable difference" (a README once printed Δ -0.0301 [-0.0480, -0.0121] beside that verdict).
Here every verdict is read off the interval printed beside it (``verdict``), and the interval's
level comes from the correction (``compare_with_reference``):

* ``"holm"`` (the default): Holm's step-down procedure, written with intervals. Sort the variants
  by p; at step j (1-based) the interval is at level 1 - alpha/(m - j + 1); if it excludes 0 the
  variant is better or worse and the next step follows, otherwise the procedure stops, and this
  variant and every later one keep that step's level, 1 - alpha/(m - r) after r findings (the
  level Strassburger & Bretz 2008 give the hypotheses Holm does not reject). As an interval
  at 1 - g excludes 0 exactly when p < g (``tunelab.study.stats``), the verdicts are Holm's.
  Each interval is at least a 1 - alpha interval (at least 1 - alpha/m when nothing is found),
  but together they are *not* simultaneous: when several effects are real, the later steps'
  narrower intervals can miss together more often than alpha. No informative interval can do
  better: the simultaneous intervals compatible with Holm (Strassburger & Bretz 2008, Guilbaud
  2008) give a variant Holm finds nothing but its sign, [0, inf), unless every variant is found,
  and a report that says "by how much" needs more than a sign.
* ``"bonferroni"``: every interval at level 1 - alpha/m, so all m cover their differences
  together with probability >= 1 - alpha (simultaneous); the verdicts are Bonferroni's (adjusted
  p = m * p), which find a little less than Holm's when several effects are real.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tunelab.errors import TunelabError
from tunelab.study.stats import PairedDifference, level_text, paired_difference

Verdict = Literal["better", "worse", "no detectable difference", "needs ≥ 2 seeds"]
Correction = Literal["holm", "bonferroni"]
CORRECTIONS = ("holm", "bonferroni")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (the family-wise error rate stays below alpha).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a variant is
    significant when its adjusted p is <= alpha. Written by hand (eight lines) because scipy has
    only Benjamini-Hochberg (``false_discovery_control``); it matches statsmodels'
    ``multipletests(method="holm")``.

    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return []
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise TunelabError(f"holm: p-values must lie in [0, 1]; got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    # Rounded to 15 digits: (m - j) * p carries float noise (3 * 0.01 = 0.030000000000000002).
    return [round(float(v), 15) for v in adjusted]


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values, ``min(1, m * p)``.

    >>> bonferroni([0.01, 0.04, 0.3])
    [0.03, 0.12, 0.9]
    """
    p = [float(v) for v in p_values]
    if any(not 0 <= v <= 1 for v in p):  # also catches NaN
        raise TunelabError(f"bonferroni: p-values must lie in [0, 1]; got {p}")
    return [round(min(1.0, len(p) * v), 15) for v in p]  # 15 digits: as holm, no float noise


def excludes_zero(difference: PairedDifference) -> bool:
    """True when the interval lies wholly on one side of 0 (an unbounded one never does)."""
    return difference.ci_low > 0 or difference.ci_high < 0


@dataclass(frozen=True)
class Comparison:
    """One variant against the reference, after the multiplicity correction.

    ``difference`` holds the interval at the level the correction gives this comparison
    (``difference.confidence``); ``p_adjusted`` is its Holm- or Bonferroni-adjusted p-value (None
    with fewer than two pairs: no test); ``step`` the Holm step that decided it (None otherwise).
    """

    difference: PairedDifference
    p_adjusted: float | None
    step: int | None = None


def compare_with_reference(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    alpha: float = 0.05,
    test: str = "t",
    correction: str = "holm",
) -> list[Comparison]:
    """``(variant, base)`` value pairs, each compared with ``paired_difference``, corrected together.

    The family is the comparisons with at least two pairs (m of them); the others keep their
    unbounded interval and get no p. With ``correction="holm"`` the intervals are Holm's step-down
    levels, with ``"bonferroni"`` all at ``1 - alpha/m`` (see the module docstring for why and what
    each guarantees). ``verdict(c.difference)`` then agrees with ``c.p_adjusted <= alpha``, but
    for a p-value exactly at its threshold, where the closed interval touches 0 and the verdict
    says "no detectable difference".

    >>> big, none = ([0.9, 0.91, 0.92, 0.93], [0.8, 0.8, 0.83, 0.82]), ([1, 2, 3, 4], [2, 1, 4, 3])
    >>> [(c.p_adjusted <= 0.05, round(c.difference.confidence, 4)) for c in
    ...  compare_with_reference([big, none])]
    [(True, 0.975), (False, 0.95)]
    """
    if correction not in CORRECTIONS:
        raise TunelabError(f"correction: got {correction!r}; must be holm or bonferroni")
    if not 0 < alpha < 1:
        raise TunelabError(f"alpha: got {alpha}; must be between 0 and 1, e.g. 0.05")
    first = [paired_difference(v, b, confidence=1 - alpha, test=test) for v, b in pairs]
    family = [i for i, d in enumerate(first) if d.n >= 2]
    m = len(family)
    p = [first[i].p_value for i in family]
    adjusted = dict(zip(family, holm(p) if correction == "holm" else bonferroni(p), strict=True))
    steps: dict[int, int] = {}
    if correction == "bonferroni":
        final = {i: first[i].at_level(1 - alpha / m) for i in family}
    else:
        final: dict[int, PairedDifference] = {}
        # Holm's step-down, with the interval as the test of each step (the 1 - g interval
        # excludes 0 exactly when p < g): the stopping step's level is kept by every variant not
        # yet found, so none of them can exclude 0.
        order = sorted(family, key=lambda i: first[i].p_value)  # stable: ties keep their order
        for j, i in enumerate(order):
            final[i], steps[i] = first[i].at_level(1 - alpha / (m - j)), j + 1
            if not excludes_zero(final[i]):
                for k in order[j + 1 :]:
                    final[k] = first[k].at_level(1 - alpha / (m - j))
                break
    return [Comparison(final.get(i, d), adjusted.get(i), steps.get(i)) for i, d in enumerate(first)]


def describe_intervals(correction: str, alpha: float, m: int) -> str:
    """What the intervals of ``m`` corrected comparisons are, in words a report prints.

    >>> describe_intervals("holm", 0.05, 6)
    "95% Holm step-down (each at its step's level, 99.17% down to 95%; not simultaneous)"
    >>> describe_intervals("bonferroni", 0.05, 6)
    '95% simultaneous (Bonferroni: each at 99.17%)'
    """
    family = level_text(1 - alpha)
    if m <= 1:
        return f"{family} (one comparison: nothing to correct)" if m else "none: needs ≥ 2 seeds"
    each = level_text(1 - alpha / m)
    if correction == "bonferroni":
        return f"{family} simultaneous (Bonferroni: each at {each})"
    return f"{family} Holm step-down (each at its step's level, {each} down to {family}; not simultaneous)"


def verdict(difference: PairedDifference, *, mode: Literal["max", "min"] = "max") -> Verdict:
    """Is the variant better or worse than the base, or can the data not tell?

    Read off the interval, so the two always agree: "better" or "worse" when it lies wholly on
    one side of 0, "no detectable difference" when it contains 0 (which means the data cannot
    separate the two at this many seeds, not that the effect is zero). For several variants, pass
    the differences ``compare_with_reference`` returns: their intervals carry the correction.
    ``mode`` is the metric's direction ("max" for accuracy, "min" for a loss).

    >>> d = paired_difference([0.93, 0.95, 0.94, 0.96], [0.91, 0.93, 0.92, 0.93])
    >>> verdict(d), verdict(d, mode="min")
    ('better', 'worse')
    >>> wide = paired_difference([0.93, 0.95, 0.94, 0.96], [0.91, 0.93, 0.92, 0.93], confidence=0.999)
    >>> verdict(wide)
    'no detectable difference'
    """
    if difference.n < 2:
        return "needs ≥ 2 seeds"
    if not excludes_zero(difference):
        return "no detectable difference"
    up = difference.ci_low > 0
    return "better" if up == (mode == "max") else "worse"


__all__ = [
    "CORRECTIONS",
    "Comparison",
    "Correction",
    "Verdict",
    "bonferroni",
    "compare_with_reference",
    "describe_intervals",
    "excludes_zero",
    "holm",
    "verdict",
]
