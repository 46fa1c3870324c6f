"""The ablation's analysis, pure (runs in, report data out): every verdict agrees with its interval
over many simulated ablations, and the intervals are the closed form at the corrected level."""

import math

import numpy as np
import pytest

from tunelab.study.ablation_analysis import Variant, analyze
from tunelab.study.comparisons import holm
from tunelab.study.runstore import StoredRun


def _stored(values):
    """{(variant, seed): StoredRun} from {variant: [value or None per seed]} (None: diverged)."""
    return {
        (name, seed): StoredRun({}, "completed" if v is not None else "diverged", v, {}, False)
        for name, vals in values.items()
        for seed, v in enumerate(vals)
    }


def _arms(names, kinds=None):
    kinds = kinds or ["add"] * len(names)
    return [Variant("base", (), "base", "base")] + [
        Variant(n, (), k, n) for n, k in zip(names, kinds, strict=True)
    ]


def _simulated_ablation(rng):
    """A random ablation: 1-7 variants, 2-9 seeds, effects none / small / large, values on a grid
    (ties, zero differences) or not, identical and constant-shift variants (zero variance), and
    runs that diverged (fewer pairs, down to one)."""
    m, n = int(rng.integers(1, 8)), int(rng.integers(2, 10))
    seed_effect = rng.normal(0, 0.03, size=n)
    base = 0.8 + seed_effect + rng.normal(0, 0.004, size=n)
    values = {"base": base}
    for i in range(m):
        kind = rng.choice(["none", "small", "large", "identical", "shift"])
        sign = rng.choice([-1.0, 1.0])
        effect = {"none": 0.0, "small": rng.uniform(0.002, 0.02), "large": rng.uniform(0.05, 0.2)}.get(
            kind, 0.0
        )
        noise = rng.choice([0.001, 0.005, 0.02]) * rng.normal(size=n)
        values[f"v{i}"] = {
            "identical": base.copy(),
            "shift": base + sign * rng.choice([0.01, 0.1]),
        }.get(kind, 0.8 + seed_effect + sign * effect + noise)
    if rng.uniform() < 0.4:  # accuracies of one val set of 50 samples: a grid of 1/50
        values = {k: np.round(v * 50) / 50 for k, v in values.items()}
    values = {k: [float(x) for x in v] for k, v in values.items()}
    for k in list(values)[1:]:
        if rng.uniform() < 0.15:  # some runs of a variant diverged
            for s in rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False):
                values[k][s] = None
    kinds = [str(rng.choice(["add", "remove", "value"])) for _ in range(m)]
    return _arms(list(values)[1:], kinds), _stored(values), list(range(n))


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_every_verdict_agrees_with_its_interval_over_many_simulated_ablations(test, correction):
    rng = np.random.default_rng(7)
    kwargs = {} if correction == "holm" else {"correction": correction}  # holm is the default
    seen = set()
    for _ in range(200):
        arms, runs, seeds = _simulated_ablation(rng)
        mode = str(rng.choice(["max", "min"]))
        results = analyze(arms, runs, seeds, mode=mode, test=test, **kwargs)
        for r in results[1:]:
            d, v = r.difference, r.verdict
            if d is None:
                assert v == "failed"
                continue
            low, high = d.ci_low, d.ci_high
            up = "better" if mode == "max" else "worse"
            if v == "no detectable difference":
                assert low <= 0 <= high, (v, low, high)
            elif v == up:
                assert low > 0, (v, low, high)
            elif v in ("better", "worse"):
                assert high < 0, (v, low, high)
            else:
                assert v == "needs ≥ 2 seeds" and d.n < 2
            if d.n >= 2:  # the verdict is the correction's: found exactly when p_adjusted <= alpha
                assert (v in ("better", "worse")) == (r.p_adjusted <= 0.05), (v, r.p_adjusted)
            kind = r.variant.kind
            flipped = {"better": "worse", "worse": "better"}.get(v, v) if kind == "remove" else v
            assert r.outcome == {"better": "helped", "worse": "hurt"}.get(flipped, v)
            seen.add(v)
            seen.add(d.test)
    # The simulation reached every case: found either way, not found, too few pairs, zero variance.
    assert {"better", "worse", "no detectable difference", "needs ≥ 2 seeds", "sign"} <= seen


BASE = [0.80, 0.82, 0.79, 0.81, 0.83]
HUGE = [b + e for b, e in zip(BASE, [0.050, 0.052, 0.049, 0.051, 0.050], strict=True)]  # p ~ 6e-8
NEAR = [b + e for b, e in zip(BASE, [0.010, 0.030, 0.020, 0.002, 0.025], strict=True)]  # p = 0.027
NONE = [b + e for b, e in zip(BASE, [0.01, -0.02, 0.0, 0.015, -0.01], strict=True)]  # p = 0.88


def _t_interval(variant, base, level):
    """The closed form: mean ± t quantile (scipy.stats.t.ppf) x sd / sqrt(n)."""
    from scipy import stats

    d = np.subtract(variant, base)
    half = stats.t.ppf(1 - (1 - level) / 2, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def test_the_intervals_of_an_ablation_are_the_closed_form_at_the_corrected_level():
    from scipy import stats

    arms = _arms(["+huge", "+near", "+none"])
    runs = _stored({"base": BASE, "+huge": HUGE, "+near": NEAR, "+none": NONE})
    p = [stats.ttest_rel(v, BASE).pvalue for v in (HUGE, NEAR, NONE)]
    # Holm: +huge found at step 1 (1 - 0.05/3); +near tested at step 2 (97.5%) and not found, so
    # +none keeps 97.5% too. Per comparison, +near's 95% interval would exclude 0 (p = 0.027).
    results = analyze(arms, runs, range(5), mode="max")[1:]
    for r, v, level in zip(results, (HUGE, NEAR, NONE), (1 - 0.05 / 3, 0.975, 0.975), strict=True):
        assert r.difference.confidence == pytest.approx(level)
        assert (r.difference.ci_low, r.difference.ci_high) == pytest.approx(_t_interval(v, BASE, level))
    assert [r.p_adjusted for r in results] == pytest.approx(holm(p))
    assert [r.verdict for r in results] == ["better", "no detectable difference", "no detectable difference"]
    assert _t_interval(NEAR, BASE, 0.95)[0] > 0 and results[1].difference.ci_low < 0
    # Bonferroni: every interval at 1 - 0.05/3, p times 3.
    results = analyze(arms, runs, range(5), mode="max", correction="bonferroni")[1:]
    for r, v in zip(results, (HUGE, NEAR, NONE), strict=True):
        level = 1 - 0.05 / 3
        assert (r.difference.ci_low, r.difference.ci_high) == pytest.approx(_t_interval(v, BASE, level))
    assert [r.p_adjusted for r in results] == pytest.approx([min(1.0, 3 * x) for x in p])
