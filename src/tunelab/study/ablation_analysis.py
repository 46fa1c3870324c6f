"""The analysis of an ablation, pure: stored runs in, typed report data out.

Per variant (``analyze``): the mean and std of the compared val metric over its seeds, and the
difference to the base paired on the seeds where both finished, with a paired-test p-value
Holm-adjusted across variants (or Bonferroni) and an interval at the level that correction gives
it (``tunelab.study.comparisons``). A variant is "better"/"worse" only when that interval excludes
0, which is when the adjusted p is below alpha. ``choose_best`` picks the best mean on val;
``test_split_evaluation`` summarizes the test split, read once after that choice. Renderers
(``tunelab.report.study``) only format these types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tunelab.errors import TunelabError
from tunelab.study.comparisons import compare_with_reference, describe_intervals, verdict
from tunelab.study.runstore import StoredRun
from tunelab.study.stats import PairedDifference, Summary, paired_difference, summarize

VariantKind = Literal["base", "remove", "regularizer", "add", "value"]
Outcome = Literal["helped", "hurt", "no detectable difference", "needs ≥ 2 seeds", "reference", "failed"]
# What a run's model costs in size, kept per run and averaged per variant (``RunOutcome.size``).
SIZE_KEYS = ("params", "nonzero", "size_bytes")


@dataclass(frozen=True)
class Variant:
    """One arm of an ablation: a name, the overrides that make it from the base, and what it changes.

    ``subject`` is what the verdict speaks about: the method removed or added, the regularizer
    switched off, or the ``path=value`` set.

    >>> Variant("-l2", ("methods.l2=null",), "remove", "l2").is_base
    False
    """

    name: str
    overrides: tuple[str, ...]
    kind: VariantKind
    subject: str

    @property
    def is_base(self) -> bool:
        return self.kind == "base"


@dataclass(frozen=True)
class RunRecord:
    """One (variant, seed) run as the report sees it; passed to ``on_run`` as runs finish."""

    variant: str
    seed: int
    phase: Literal["select", "test"]
    status: str
    value: float | None  # the monitored val metric (None if the run did not finish)
    test_value: float | None
    seconds: float
    cached: bool


@dataclass(frozen=True)
class VariantResult:
    """One variant's runs, its summary, and its paired comparison with the base.

    ``difference`` is ``variant - base`` over the seeds where both finished (None for the base),
    its interval at the level the multiplicity correction gives it (``difference.confidence``);
    ``p_adjusted`` its Holm- (or Bonferroni-) adjusted p-value; ``verdict`` says whether the
    variant is better or worse than the base, read off that interval; ``outcome`` says the same
    about ``subject`` (removing a method that makes the metric worse means the method *helped*).
    """

    variant: Variant
    seeds: tuple[int, ...]  # seeds whose run finished
    values: tuple[float, ...]  # the monitored val metric, one per finished seed
    failed: tuple[tuple[int, str], ...]  # (seed, status) of runs that did not finish
    summary: Summary | None  # None when no run finished
    difference: PairedDifference | None
    p_adjusted: float | None
    verdict: str
    outcome: Outcome
    seconds: float  # mean training seconds per run
    size: dict[str, float] = field(default_factory=dict)  # mean params, nonzero, size_bytes per run

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def who(self) -> str:
        """What the outcome is about: "l2", "dropout", "adding ema", "optimizer.lr=0.01"."""
        v = self.variant
        return {"add": f"adding {v.subject}", "base": "base"}.get(v.kind, v.subject)

    def effect(self) -> str:
        """A plain sentence: "l2 helped", "adding ema: no detectable difference", ..."""
        v, who = self.variant, self.who
        if self.outcome in ("helped", "hurt"):
            return f"{who} {self.outcome}"
        if self.outcome == "reference":
            return "the reference"
        if self.outcome == "failed":
            return f"{v.name}: every run failed ({', '.join(sorted({s for _, s in self.failed}))})"
        return f"{who}: {self.outcome}"

    def to_dict(self) -> dict[str, Any]:
        s, d = self.summary, self.difference
        return {
            "name": self.name,
            "kind": self.variant.kind,
            "subject": self.variant.subject,
            "overrides": list(self.variant.overrides),
            "n": s.n if s else 0,
            "mean": s.mean if s else None,
            "std": s.to_dict()["std"] if s else None,
            "metric_ci_low": s.to_dict()["ci_low"] if s else None,
            "metric_ci_high": s.to_dict()["ci_high"] if s else None,
            # The difference to the base (variant - base) and its interval and p-value:
            "difference": d.estimate if d else None,
            "ci_low": d.to_dict()["ci_low"] if d else None,
            "ci_high": d.to_dict()["ci_high"] if d else None,
            "ci_level": d.confidence if d else None,  # this interval's own level (see "intervals")
            "p_value": self.p_adjusted,
            "p_unadjusted": d.p_value if d else None,
            "test": d.test if d else None,
            "pairs": d.n if d else 0,
            "note": (d.note if d else "") or (s.note if s else ""),
            "verdict": self.verdict,
            "outcome": self.outcome,
            "effect": self.effect(),
            "seeds": list(self.seeds),
            "values": list(self.values),
            "failed": [{"seed": seed, "status": st} for seed, st in self.failed],
            "seconds": self.seconds,
            **{k: self.size.get(k) for k in SIZE_KEYS},
        }


@dataclass(frozen=True)
class TestEvaluation:
    """The test split, read after the choice: the base's and the best variant's runs per seed."""

    metric: str
    base: Summary
    best: Summary | None  # None when the base is the best
    difference: PairedDifference | None  # best - base on test, paired over seeds
    base_values: tuple[float, ...]
    best_values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "base": {**self.base.to_dict(), "values": list(self.base_values)},
            "best": {**self.best.to_dict(), "values": list(self.best_values)} if self.best else None,
            "difference": self.difference.to_dict() if self.difference else None,
        }


@dataclass(frozen=True)
class AblationResult:
    """Everything ``tunelab ablate`` reports; ``to_dict()`` is its ``--json``."""

    study_name: str
    storage: str
    monitor: str  # e.g. "val.accuracy"
    mode: Literal["max", "min"]
    seeds: tuple[int, ...]
    test_name: str  # "t" or "wilcoxon"
    alpha: float
    confidence: float  # of each variant's metric interval and of the test split's
    variants: tuple[VariantResult, ...]
    best: str  # name of the variant with the best mean on val
    test: TestEvaluation | None
    runs_computed: int
    runs_reused: int
    notes: tuple[str, ...] = ()
    correction: str = "holm"  # how the differences' p-values and intervals are corrected

    @property
    def intervals(self) -> str:
        """What the differences' intervals are: "95% Holm step-down (...)", "95% simultaneous ..."."""
        m = sum(1 for v in self.variants if v.p_adjusted is not None)
        return describe_intervals(self.correction, self.alpha, m)

    def variant(self, name: str) -> VariantResult:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def conclusions(self) -> dict[str, list[str]]:
        """What each variant is about, grouped by outcome: {"helped": [...], "hurt": [...], ...}."""
        out: dict[str, list[str]] = {}
        for v in self.variants:
            if v.outcome != "reference":
                out.setdefault(v.outcome, []).append(v.who)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "storage": self.storage,
            "monitor": self.monitor,
            "mode": self.mode,
            "seeds": list(self.seeds),
            "paired_test": self.test_name,
            "alpha": self.alpha,
            "correction": self.correction,
            "intervals": self.intervals,  # what ci_low / ci_high of the variants are
            "confidence": self.confidence,
            "variants": [v.to_dict() for v in self.variants],
            "best": self.best,
            "conclusions": self.conclusions(),
            "test_split": self.test.to_dict() if self.test else None,
            "runs_computed": self.runs_computed,
            "runs_reused": self.runs_reused,
            "notes": list(self.notes),
        }


# --- analysis (pure: runs in, report data out) ---------------------------------------------------


def _outcome(kind: VariantKind, verdict_: str) -> Outcome:
    if verdict_ in ("no detectable difference", "needs ≥ 2 seeds"):
        return verdict_  # type: ignore[return-value]
    better = verdict_ == "better"
    # Removing a method (or switching a regularizer off) and getting worse means it helped.
    if kind in ("remove", "regularizer"):
        return "hurt" if better else "helped"
    return "helped" if better else "hurt"


def analyze(
    arms: Sequence[Variant],
    runs: Mapping[tuple[str, int], StoredRun],
    seeds: Sequence[int],
    *,
    mode: Literal["max", "min"],
    test: str = "t",
    alpha: float = 0.05,
    correction: str = "holm",
    confidence: float = 0.95,
) -> list[VariantResult]:
    """Per variant: summary over seeds, paired difference to the base, the correction, verdict.

    Pairs are the seeds where both the variant and the base finished. The correction runs over
    the variants that have a test (at least two pairs); the others say "needs ≥ 2 seeds". Each
    difference's interval is at the level the correction gives it, and the verdict reads it.
    ``confidence`` is the level of each variant's metric interval (its summary).
    """
    base_vals = {s: float(runs[("base", s)].value) for s in seeds if runs[("base", s)].ok}  # type: ignore[arg-type]
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    for v in arms:
        ok = {s: float(runs[(v.name, s)].value) for s in seeds if runs[(v.name, s)].ok}  # type: ignore[arg-type]
        paired = [s for s in seeds if s in ok and s in base_vals]
        if not v.is_base and paired:
            pairs[v.name] = ([ok[s] for s in paired], [base_vals[s] for s in paired])
    compared = compare_with_reference(list(pairs.values()), alpha=alpha, test=test, correction=correction)
    diffs = {name: c.difference for name, c in zip(pairs, compared, strict=True)}
    adjusted = {
        name: c.p_adjusted for name, c in zip(pairs, compared, strict=True) if c.p_adjusted is not None
    }
    out = []
    for v in arms:
        mine = {s: runs[(v.name, s)] for s in seeds}
        ok_seeds = tuple(s for s, r in mine.items() if r.ok)
        vals = tuple(float(mine[s].value) for s in ok_seeds)  # type: ignore[arg-type]
        failed = tuple((s, r.status) for s, r in mine.items() if not r.ok)
        summary = summarize(vals, confidence) if vals else None
        diff = diffs.get(v.name)
        if v.is_base:
            verdict_, outcome = "base", "reference"
        elif diff is None:
            verdict_, outcome = "failed", "failed"
        else:
            verdict_ = verdict(diff, mode=mode)
            outcome = _outcome(v.kind, verdict_)
        secs = [float(mine[s].attrs.get("seconds", 0.0)) for s in ok_seeds]
        size = {}
        for key in SIZE_KEYS:
            got = [float(mine[s].attrs[key]) for s in ok_seeds if key in mine[s].attrs]
            if got and len(got) == len(ok_seeds):
                size[key] = sum(got) / len(got)
        out.append(
            VariantResult(
                v, ok_seeds, vals, failed, summary, diff, adjusted.get(v.name), verdict_, outcome,
                sum(secs) / max(1, len(secs)), size,
            )
        )  # fmt: skip
    return out


def choose_best(results: Sequence[VariantResult], mode: Literal["max", "min"]) -> VariantResult:
    """The variant with the best mean on val (the base wins ties: no change without a reason)."""
    sign = 1.0 if mode == "max" else -1.0
    candidates = [r for r in results if r.summary is not None]
    if not candidates:
        raise TunelabError("every run of the ablation failed; see the runs' messages (lower the lr?)")
    return max(candidates, key=lambda r: (sign * r.summary.mean, r.variant.is_base))  # type: ignore[union-attr]


def test_split_evaluation(
    metric: str,
    best: str,
    test_runs: Mapping[tuple[str, int], StoredRun],
    seeds: Sequence[int],
    confidence: float,
    test: str,
) -> TestEvaluation | None:
    def values(name: str) -> dict[int, float]:
        out = {}
        for (v, s), r in test_runs.items():
            t = (r.attrs.get("test") or {}).get(metric)
            if v == name and r.ok and t is not None:
                out[s] = float(t)
        return out

    base = values("base")
    if not base:
        return None
    other = values(best) if best != "base" else {}
    paired = [s for s in seeds if s in base and s in other]
    diff = None
    if paired:
        a, b = [other[s] for s in paired], [base[s] for s in paired]
        diff = paired_difference(a, b, confidence=confidence, test=test)
    return TestEvaluation(
        metric=metric,
        base=summarize(list(base.values()), confidence),
        best=summarize(list(other.values()), confidence) if other else None,
        difference=diff,
        base_values=tuple(base.values()),
        best_values=tuple(other.values()),
    )


__all__ = [
    "SIZE_KEYS",
    "AblationResult",
    "Outcome",
    "RunRecord",
    "TestEvaluation",
    "Variant",
    "VariantKind",
    "VariantResult",
    "analyze",
    "choose_best",
    "test_split_evaluation",
]
