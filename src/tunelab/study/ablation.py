"""Ablation: which parts of a recipe earn their place, measured on paired seeds.

The variants (``variants(recipe)``):

* ``base``: the recipe as it is;
* ``-<method>``: the recipe without one of its methods (``ablation.remove_methods``);
* ``dropout=0`` / ``batch_norm=false``: a model regularizer the recipe has on, switched off
  (``ablation.remove_regularizers``);
* ``+<method>``: a method of ``ablation.add`` added;
* ``<path>=<value>``: one value of ``ablation.values`` set.

Every variant trains on the same seeds (``train.seed``, +1, ...) and the same data split
(``data.split_seed``, loaded once), so each variant's run on seed s is paired with the base's run
on seed s; the paired difference cancels what the seed does to both. Per variant: the mean and
std of the monitored val metric, and the difference to the base with a paired-test p-value,
Holm-adjusted across variants (or Bonferroni), and an interval at the level that correction gives
it (``tunelab.study.comparisons``). A variant is "better"/"worse" only when that interval excludes
0, which is when the adjusted p is below alpha; otherwise the data cannot detect a difference at
this many seeds, and the interval contains 0.

The test split is never part of a choice. Every selection run gets a bundle whose test slot
holds the val split (the real test tensors are not even passed in). After the best variant is
chosen on val, the base and the best are trained once more per seed on the full bundle, and
only those runs read test. Training is deterministic on the CPU (same recipe, seed and split,
same weights), so these are the very models that were compared on val; the report notes it
when a retrain does not reproduce its val score (nondeterministic GPU kernels).

Runs are Optuna trials (``tunelab.study.runstore``): interrupted, the study resumes where it
stopped; widened (more seeds, another value), it reuses the runs it has.

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"data": {"name": "iris"}, "model": {"name": "mlp", "dropout": 0.1},
    ...                  "methods": [{"name": "l2", "weight": 1e-3}],
    ...                  "ablation": {"add": [{"name": "ema"}], "values": {"optimizer.lr": [0.01]}}})
    >>> [v.name for v in variants(r)]
    ['base', '-l2', 'dropout=0', '+ema', 'optimizer.lr=0.01']
    >>> result = run_ablation(r, seeds=3, storage="sqlite:///:memory:")  # doctest: +SKIP
    >>> [(v.name, v.outcome) for v in result.variants]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from optuna.storages import BaseStorage

from tunelab.data import DataBundle
from tunelab.errors import RecipeError, TunelabError, did_you_mean
from tunelab.methods import METHODS
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.comparisons import CORRECTIONS, compare_with_reference, describe_intervals, verdict
from tunelab.study.runstore import StoredRun
from tunelab.study.scaffold import (
    Runner,
    StudyRuns,
    compared_metric,
    override_text,
    study_fingerprint,
    study_free_raw,
    study_recipe,
    train_run,
    value_label,
)
from tunelab.study.stats import PairedDifference, Summary, paired_difference, summarize
from tunelab.train import load_bundle

VariantKind = Literal["base", "remove", "regularizer", "add", "value"]
Outcome = Literal["helped", "hurt", "no detectable difference", "needs ≥ 2 seeds", "reference", "failed"]

# Paths an ablation value may not vary: the data (and its split) must be the same for every
# variant, or the runs are no longer paired; the seeds are the pairing itself.
_FORBIDDEN_PREFIXES = ("data", "train.seed", "ablation", "search")


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


# --- variants ----------------------------------------------------------------------------------


def variants(recipe: Recipe) -> list[Variant]:
    """The base and every variant the recipe's methods, model and ``ablation:`` section call for.

    >>> from tunelab.recipe import load_recipe
    >>> r = load_recipe({"model": {"name": "cnn1d", "dropout": 0.2, "batch_norm": True},
    ...                  "ablation": {"remove_regularizers": True}})
    >>> [(v.name, v.overrides) for v in variants(r)][1:]
    [('dropout=0', ('model.dropout=0',)), ('batch_norm=false', ('model.batch_norm=false',))]
    """
    spec = recipe.ablation
    out = [Variant("base", (), "base", "base")]
    if spec.remove_methods:
        out += [Variant(f"-{m.name}", (f"methods.{m.name}=null",), "remove", m.name) for m in recipe.methods]
    if spec.remove_regularizers:
        model = recipe.to_dict()["model"]
        if isinstance(model.get("dropout"), (int, float)) and model["dropout"] > 0:
            out.append(Variant("dropout=0", ("model.dropout=0",), "regularizer", "dropout"))
        if model.get("batch_norm") is True:
            out.append(Variant("batch_norm=false", ("model.batch_norm=false",), "regularizer", "batch norm"))
    names = [item.get("name") for item in spec.add]
    for item in spec.add:
        name = str(item.get("name"))
        params = {k: v for k, v in item.items() if k != "name"}
        # The same method added twice with other settings: the settings tell the variants apart.
        label = f"+{name}" if names.count(name) == 1 else f"+{name}{value_label(params)}"
        out.append(Variant(label, (override_text(f"methods.{name}", params),), "add", name))
    for path, values in spec.values.items():
        for v in values:
            name = f"{path}={value_label(v)}"
            out.append(Variant(name, (override_text(path, v),), "value", name))
    return out


def variant_recipe(base: Recipe, variant: Variant, extra: Sequence[str] = ()) -> Recipe:
    """The recipe of ``variant``: the base with its overrides (and ``extra`` ones) applied."""
    return load_recipe(study_free_raw(base), [*variant.overrides, *extra])


def check_ablation(recipe: Recipe) -> None:
    """Validate the ``ablation:`` section against the recipe; RecipeError at ``ablation.<...>``.

    Methods to add must exist and not be in the recipe already; every value must make a valid
    recipe that differs from the base; values may not change the data (the runs would no longer
    be paired) or the seed (the pairing itself).

    >>> from tunelab.recipe import load_recipe
    >>> check_ablation(load_recipe({"ablation": {"add": [{"name": "ema"}]}}))
    >>> check_ablation(load_recipe({"ablation": {"add": [{"name": "emma"}]}}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tunelab.errors.RecipeError: ablation.add[0].name: got 'emma'; unknown method; ... (did you mean "ema"?)
    """
    spec = recipe.ablation
    base_raw = study_free_raw(recipe)
    base_key = study_fingerprint(base_raw)
    seen: set[str] = set()
    for i, item in enumerate(spec.add):
        path = f"ablation.add[{i}]"
        name = item.get("name")
        if not isinstance(name, str):
            raise RecipeError(f"{path}.name", name, "each entry needs a method name, e.g. {name: ema}")
        if name not in METHODS:
            raise RecipeError(
                f"{path}.name", name, f"unknown method; known: {', '.join(METHODS.names())}",
                did_you_mean(name, METHODS.names()),
            )  # fmt: skip
        if recipe.method(name) is not None:
            raise RecipeError(
                f"{path}.name", name,
                "is already one of the recipe's methods; its removal is already a variant "
                f"(-{name}); to try other settings, list them under ablation.values, e.g. "
                f"methods.{name}.<param>: [...]",
            )  # fmt: skip
        params = {k: v for k, v in item.items() if k != "name"}
        _check_variant(base_raw, base_key, [override_text(f"methods.{name}", params)], path, item)
    for key, values in spec.values.items():
        path = f"ablation.values.{key}"
        if key == "train.seed" or any(key == p or key.startswith(p + ".") for p in _FORBIDDEN_PREFIXES):
            raise RecipeError(
                path, values,
                "an ablation compares variants on the same data split and seeds; the data and the "
                "seed cannot vary (compare data choices in separate studies)",
            )  # fmt: skip
        if not isinstance(values, list) or not values:
            raise RecipeError(path, values, "must be a non-empty list of values to try, e.g. [0.01, 0.001]")
        for v in values:
            label = f"{key}={value_label(v)}"
            if label in seen:
                raise RecipeError(path, v, "is listed twice")
            seen.add(label)
            _check_variant(base_raw, base_key, [override_text(key, v)], path, v)


def _check_variant(
    base_raw: dict[str, Any], base_key: str, overrides: list[str], path: str, given: Any
) -> None:
    try:
        r = load_recipe(base_raw, overrides)
    except RecipeError as e:
        raise RecipeError(path, given, f"does not make a valid recipe: {e}") from None
    if study_fingerprint(r.to_dict()) == base_key:
        raise RecipeError(path, given, "is the base recipe's own setting; the base is already a variant")


# --- running -----------------------------------------------------------------------------------


SIZE_KEYS = ("params", "nonzero", "size_bytes")


def selection_bundle(bundle: DataBundle) -> DataBundle:
    """``bundle`` with its test slot holding the val split: what selection runs see.

    ``fit`` always evaluates a "test" split at the end; handing it val there keeps the real test
    split out of every run that takes part in a choice.
    """
    return dataclasses.replace(bundle, x_test=bundle.x_val, y_test=bundle.y_val)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "variant"


def run_ablation(
    recipe: Recipe | str | Path | Mapping[str, Any],
    *,
    seeds: int = 5,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    out_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    test: str = "t",
    alpha: float = 0.05,
    correction: str = "holm",
    confidence: float = 0.95,
    data: DataBundle | tuple[Any, ...] | None = None,
    runner: Runner | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
) -> AblationResult:
    """Run (or resume) an ablation study and compute its report data.

    Args:
        recipe: the base recipe (a Recipe, a YAML path or a mapping); ``overrides`` apply on top.
        seeds: runs per variant, on ``train.seed``, ``train.seed + 1``, ...
        storage: Optuna storage URL or object (default ``sqlite:///runs/studies.db``). Finished
            runs are read back from it, never recomputed.
        study_name: default ``ablate-<dataset>-<model>``.
        out_dir: where the final base/best test runs write their run directories (none if None).
        test: the paired test, "t" or "wilcoxon"; ``alpha``: the family's significance level.
        correction: "holm" (step-down) or "bonferroni" (simultaneous intervals); each difference's
            interval is at the level this gives it (``tunelab.study.comparisons``).
        confidence: of each variant's metric interval and of the test split's difference.
        data: a DataBundle or arrays instead of the recipe's data (one split for every run).
        runner: ``runner(recipe, bundle, out) -> RunOutcome`` instead of training with
            ``tunelab.fit`` (a scripted objective in tests, or your own training).
        on_run: called with a RunRecord after each run computed now.

    The study is keyed on the recipe: with your own ``data``, give it a ``study_name`` of its own.

    >>> res = run_ablation("examples/digits_ablation.yaml", seeds=5)  # doctest: +SKIP
    >>> d = res.variant("-l2").difference  # doctest: +SKIP
    >>> d.estimate, d.ci_low, d.ci_high, res.variant("-l2").outcome, res.best  # doctest: +SKIP
    """
    base = study_recipe(recipe, overrides)
    _check_options(seeds, test, alpha, correction)
    check_ablation(base)
    arms = variants(base)
    if len(arms) == 1:
        raise TunelabError(
            "nothing to ablate: the recipe has no methods, no dropout or batch norm switched on, and no "
            "`ablation:` section; add candidates, e.g. ablation: {add: [{name: ema}], values: "
            "{optimizer.lr: [0.01, 0.001]}}"
        )
    bundle = load_bundle(base, data)
    metric = compared_metric(base, bundle.task)
    study = StudyRuns(
        base,
        kind="ablation",
        storage=storage,
        study_name=study_name or f"ablate-{base.data.name}-{base.model.name}",
        metric=metric,
        runner=runner or train_run,
        study={"monitor": metric.monitor},
        seed_in_keys=True,
    )
    select_data = selection_bundle(bundle)
    seed_list = tuple(base.train.seed + i for i in range(seeds))

    def one(variant: Variant, seed: int, phase: Literal["select", "test"]) -> StoredRun:
        data_ = bundle if phase == "test" else select_data
        return _one_run(study, variant, seed, phase, data_, out_dir, on_run)

    # Seed by seed, every variant: an interrupted study already holds complete pairs.
    runs = {(v.name, seed): one(v, seed, "select") for seed in seed_list for v in arms}
    results = analyze(
        arms, runs, seed_list, mode=metric.mode, test=test, alpha=alpha, correction=correction,
        confidence=confidence,
    )  # fmt: skip
    best = choose_best(results, metric.mode)

    # The test split, read once the choice is made: the base and the best variant, every seed.
    chosen = [arms[0]] + ([best.variant] if best.name != "base" else [])
    test_runs = {(v.name, s): one(v, s, "test") for v in chosen for s in seed_list if runs[(v.name, s)].ok}
    finished = [s for s in seed_list if runs[("base", s)].ok]
    return AblationResult(
        study_name=study.store.study_name,
        storage=study.where,
        monitor=metric.monitor,
        mode=metric.mode,
        seeds=seed_list,
        test_name=test,
        alpha=alpha,
        confidence=confidence,
        variants=tuple(results),
        best=best.name,
        test=_test_evaluation(metric.metric, best.name, test_runs, finished, confidence, test),
        runs_computed=study.computed,
        runs_reused=study.reused,
        notes=tuple(_reproducibility_notes(runs, test_runs)),
        correction=correction,
    )


def _check_options(seeds: int, test: str, alpha: float, correction: str) -> None:
    if seeds < 1:
        raise TunelabError(f"--seeds {seeds}: must be at least 1 (5 or more to detect small effects)")
    if test not in ("t", "wilcoxon"):
        raise TunelabError(f"--test {test}: must be t or wilcoxon")
    if not 0 < alpha < 1:
        raise TunelabError(f"--alpha {alpha}: must be between 0 and 1, e.g. 0.05")
    if correction not in CORRECTIONS:
        raise TunelabError(f"--correction {correction}: must be {' or '.join(CORRECTIONS)}")


def _one_run(
    study: StudyRuns,
    variant: Variant,
    seed: int,
    phase: Literal["select", "test"],
    bundle: DataBundle,
    out_dir: str | Path | None,
    on_run: Callable[[RunRecord], None] | None,
) -> StoredRun:
    """One (variant, seed) run of ``phase``: read back, or trained now and reported to ``on_run``."""
    key = {"phase": phase, "overrides": list(variant.overrides), "seed": seed}
    out = None
    if phase == "test" and out_dir is not None:
        out = Path(out_dir) / _slug(variant.name) / f"seed-{seed}"
    attrs = {"variant": variant.name, "seed": seed, "phase": phase}
    overrides = [*variant.overrides, f"train.seed={seed}"]
    run = study.run(key, overrides, bundle, out, keep_test=phase == "test", attrs=attrs)
    if on_run is not None and not run.cached:
        test_value = (run.attrs.get("test") or {}).get(study.metric.metric) if phase == "test" else None
        seconds = float(run.attrs.get("seconds", 0.0))
        on_run(RunRecord(variant.name, seed, phase, run.status, run.value, test_value, seconds, run.cached))
    return run


def _reproducibility_notes(
    runs: Mapping[tuple[str, int], StoredRun], test_runs: Mapping[tuple[str, int], StoredRun]
) -> list[str]:
    """A note for each retrain for the test split whose val score differs from its selection run's."""
    notes = []
    for (vname, s), tr in test_runs.items():
        sel = runs[(vname, s)]
        if tr.ok and sel.value is not None and not math.isclose(tr.value or 0.0, sel.value, rel_tol=1e-6):
            notes.append(
                f"{vname} seed {s}: the retrain for the test split scored val {tr.value:.6g}, not "
                f"{sel.value:.6g}; training is not bit-reproducible on this device"
            )
    return notes


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


def _test_evaluation(
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
    "AblationResult",
    "RunRecord",
    "TestEvaluation",
    "Variant",
    "VariantResult",
    "analyze",
    "check_ablation",
    "choose_best",
    "run_ablation",
    "variant_recipe",
    "variants",
]
