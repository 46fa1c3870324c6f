"""Cross-validation: K folds of train+val, per value of one parameter; then one retrain and one test.

``run_cv(recipe, folds=K, param=("methods.l2.weight", [0.1, 0.01, 0.001]))``:

1. The recipe's data is loaded and split as always (``data.split_seed``); the test split is set
   aside untouched, and train + val are pooled.
2. The pool is cut into K folds, stratified for classification (``StratifiedKFold``, ``KFold`` for
   regression), shuffled by ``data.split_seed``: every value is scored on the same folds.
3. Each fold trains on the other K-1 folds and is scored on itself. The preprocessing (the
   recipe's ``preprocess:`` section: imputation, encoding, scaling) is fit on the fold's training
   part only: the pool keeps its samples raw (``load_data(keep_raw=True)``, the same split), and
   each fold refits it, as ``make_bundle`` does for train, so no statistic of a fold's held-out
   samples leaks into its training.
4. Per value: the per-fold scores of the monitored metric, their mean and 95% t-interval. The
   choice by best mean, and by the one-standard-error rule: among the values whose mean is within
   one standard error (std / sqrt(K)) of the best mean, the **first in the order given**; list
   values simplest first (largest penalty, smallest model), as glmnet's ``lambda.1se`` takes the
   largest penalty within one SE. A value that failed (diverged) on any fold is not eligible.
5. One retrain with the chosen value (``choose="best"`` or ``"1se"``) on the recipe's own
   train/val split, and one test evaluation: the only time the test split is read.

The fold scores share most of their training samples, so they are not independent; their
t-interval is a useful guide but tends to be too narrow (Bengio & Grandvalet, 2004: no unbiased
estimator of the variance of K-fold CV exists). Reports say so.

Runs are stored like an ablation's (``tunelab.study.runstore``): interrupted, a CV resumes.

    >>> res = run_cv({"data": {"name": "iris"}, "train": {"epochs": 3}}, folds=3,
    ...              param=("optimizer.lr", [0.01, 0.001]), storage="sqlite:///:memory:")  # doctest: +SKIP
    >>> [(v.label, round(v.summary.mean, 3)) for v in res.values], res.chosen.label  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from optuna.storages import BaseStorage
from sklearn.model_selection import KFold, StratifiedKFold

from tunelab.data import DataBundle, bundle_from_arrays, load_data
from tunelab.data.splits import refit_fold
from tunelab.data.stream import wants_stream
from tunelab.errors import DataError, RecipeError, TunelabError
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.runstore import StoredRun
from tunelab.study.scaffold import (
    ComparedMetric,
    Runner,
    StudyRuns,
    compared_metric,
    override_text,
    study_free_raw,
    study_recipe,
    value_label,
)
from tunelab.study.stats import Summary, summarize
from tunelab.train import load_bundle
from tunelab.yaml_loader import DuplicateKeyError, load_yaml

Choice = Literal["best", "1se"]
_FORBIDDEN = ("data", "preprocess", "ablation", "search")


@dataclass(frozen=True)
class FoldRun:
    """One fold of one value: its score on the fold's held-out part (None if the run failed)."""

    value: Any
    label: str
    fold: int
    score: float | None
    status: str
    n_train: int
    n_val: int
    seconds: float
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "label": self.label,
            "fold": self.fold,
            "score": self.score,
            "status": self.status,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class CVValue:
    """One value of the parameter: its per-fold scores and their summary."""

    value: Any
    label: str
    overrides: tuple[str, ...]
    scores: tuple[float, ...]  # one per finished fold, in fold order
    failed: tuple[tuple[int, str], ...]  # (fold, status)
    summary: Summary | None

    @property
    def eligible(self) -> bool:
        """Finished on every fold: only such a value may be chosen."""
        return not self.failed and self.summary is not None

    def to_dict(self) -> dict[str, Any]:
        s = self.summary.to_dict() if self.summary else {}
        se = self.summary.se if self.summary else math.nan
        return {
            "value": self.value,
            "label": self.label,
            "n": s.get("n", 0),
            "mean": s.get("mean"),
            "std": s.get("std"),
            "se": se if math.isfinite(se) else None,
            "ci": [s.get("ci_low"), s.get("ci_high")],
            "ci_low": s.get("ci_low"),
            "ci_high": s.get("ci_high"),
            "scores": list(self.scores),
            "failed": [{"fold": f, "status": st} for f, st in self.failed],
            "eligible": self.eligible,
        }


@dataclass(frozen=True)
class CVChoice:
    """The two choices and the one retrained: ``best`` (best mean), ``one_se`` (one-SE rule)."""

    rule: Choice
    best: CVValue
    one_se: CVValue
    threshold: float  # the one-SE bar: best mean -/+ its standard error

    @property
    def chosen(self) -> CVValue:
        return self.best if self.rule == "best" else self.one_se


@dataclass(frozen=True)
class CVRetrain:
    """The retrain with the chosen value on the recipe's train/val split, and its test evaluation."""

    label: str
    value: Any
    status: str
    val: dict[str, float]
    test: dict[str, float]
    run_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "label": self.label,
            "status": self.status,
            "val": self.val,
            "test": self.test,
            "run_dir": self.run_dir,
        }


@dataclass(frozen=True)
class CVResult:
    """Everything ``tunelab cv`` reports; ``to_dict()`` is its ``--json``."""

    study_name: str
    storage: str
    param: str | None  # the dotted path varied, None for the recipe alone
    k: int
    monitor: str
    metric: str  # the val metric scored on each fold
    mode: Literal["max", "min"]
    stratified: bool  # StratifiedKFold (classification) or KFold (regression)
    values: tuple[CVValue, ...]
    folds: tuple[FoldRun, ...]
    choice: CVChoice
    final: CVRetrain
    runs_computed: int
    runs_reused: int
    notes: tuple[str, ...] = ()

    @property
    def chosen(self) -> CVValue:
        return self.choice.chosen

    def to_dict(self) -> dict[str, Any]:
        c = self.choice
        return {
            "study": self.study_name,
            "storage": self.storage,
            "param": self.param,
            "k": self.k,
            "monitor": self.monitor,
            "metric": self.metric,
            "mode": self.mode,
            "stratified": self.stratified,
            "folds": [f.to_dict() for f in self.folds],
            "values": [v.to_dict() for v in self.values],
            "chosen": {
                "rule": c.rule,
                "value": c.chosen.value,
                "label": c.chosen.label,
                "best": c.best.value,
                "one_se": c.one_se.value,
                "one_se_threshold": c.threshold,
            },
            "final": self.final.to_dict(),
            "runs_computed": self.runs_computed,
            "runs_reused": self.runs_reused,
            "notes": list(self.notes),
        }


# --- the parameter -----------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``"methods.l2.weight=0.1,0.01"`` -> ``("methods.l2.weight", [0.1, 0.01])``.

    Each value is read as YAML. Values that contain commas (lists) are given as one YAML list:
    ``model.hidden=[[16],[64,64]]``.

    >>> parse_param("optimizer.lr=0.1,0.01"), parse_param("model.hidden=[[16],[32,32]]")
    (('optimizer.lr', [0.1, 0.01]), ('model.hidden', [[16], [32, 32]]))
    """
    path, sep, rhs = text.partition("=")
    path, rhs = path.strip(), rhs.strip()
    usage = "must look like path=v1,v2,..., e.g. methods.l2.weight=0.1,0.01,0.001"
    if not sep or not path or not rhs or any(not p for p in path.split(".")):
        raise RecipeError("--param", text, usage)
    try:
        if rhs.startswith("["):
            values = load_yaml(rhs)
            if not isinstance(values, list):
                raise RecipeError("--param", text, usage)
        else:
            values = [load_yaml(v) if v.strip() else None for v in rhs.split(",")]
    except DuplicateKeyError as e:
        raise RecipeError("--param", text, e.inline(path)) from None
    except yaml.YAMLError:
        raise RecipeError("--param", text, usage) from None
    return path, values


def _values(base: Recipe, param: tuple[str, Sequence[Any]] | None) -> list[tuple[Any, str, tuple[str, ...]]]:
    """(value, label, overrides) per value, each checked to make a valid recipe."""
    if param is None:
        return [(None, "recipe", ())]
    path, values = param
    if not values:
        raise RecipeError(f"--param {path}", values, "give at least one value, e.g. 0.1,0.01")
    if any(path == p or path.startswith(p + ".") for p in _FORBIDDEN):
        raise RecipeError(
            f"--param {path}", values, "the folds are cut from the data: cross-validate a model or training "
            "setting, not a data or preprocess setting (compare those with tunelab ablate)",
        )  # fmt: skip
    out, seen = [], set()
    raw = study_free_raw(base)
    for v in values:
        label = value_label(v)
        if label in seen:
            raise RecipeError(f"--param {path}", v, "is listed twice")
        seen.add(label)
        ov = (override_text(path, v),)
        try:
            load_recipe(raw, ov)
        except RecipeError as e:
            raise RecipeError(f"--param {path}", v, f"does not make a valid recipe: {e}") from None
        out.append((v, label, ov))
    return out


# --- the folds ---------------------------------------------------------------------------------


def fold_indices(y: np.ndarray, k: int, seed: int, stratify: bool, class_names: Sequence[str] = ()) -> list:
    """``[(train_idx, val_idx), ...]`` for K folds; stratified folds need K samples of each class.

    >>> y = np.array([0, 1] * 6)
    >>> [len(v) for _, v in fold_indices(y, 3, seed=0, stratify=True)]
    [4, 4, 4]
    """
    if k < 2:
        raise TunelabError(f"--folds {k}: cross-validation needs at least 2 folds (5 or 10 are usual)")
    if k > len(y):
        raise DataError(f"--folds {k}: train+val holds only {len(y)} samples; use at most {len(y)} folds")
    if stratify:
        classes, counts = np.unique(y, return_counts=True)
        rare = [(int(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < k]
        if rare:
            c, n = min(rare, key=lambda t: t[1])
            name = class_names[c] if c < len(class_names) else str(c)
            fewest = int(counts.min())
            hint = f"use --folds {fewest} or fewer" if fewest >= 2 else "merge or drop that class"
            raise DataError(
                f"--folds {k}: class {name!r} has only {n} samples in train+val, fewer than the {k} folds; "
                f"stratified K-fold puts at least one of each class in every fold: {hint}"
            )
        splitter: Any = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y))))


def fold_bundle(pool: DataBundle, train: np.ndarray, held: np.ndarray) -> DataBundle:
    """A bundle whose train is the pooled samples ``train`` and whose val (and test slot) is
    ``held``, with the recipe's preprocessing fit on ``train`` only (``tunelab.data.refit_fold``)."""
    return refit_fold(pool, train, held)


def _raw_pool(base: Recipe, data: tuple[Any, ...] | None) -> DataBundle:
    # The same split as the recipe's (split_seed), its samples kept raw: each fold fits its own.
    if data is None:
        if wants_stream(base.data):  # else the whole set would be loaded, unasked, into memory
            raise RecipeError(
                "data.stream", True,
                "cross-validation refits the preprocessing on each fold's raw samples, held in memory: "
                "set data.stream: false (and data.memory_limit: null if the set is large), or validate "
                "on the recipe's val split with tunelab train / search",
            )  # fmt: skip
        return load_data(base.data, base.preprocess, keep_raw=True)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        x, y, *test = data
        return bundle_from_arrays(x, y, base.data, *test, preprocess=base.preprocess, keep_raw=True)
    raise RecipeError(
        "data", type(data).__name__,
        "cross-validation re-splits raw data: pass arrays (x, y) or (x, y, x_test, y_test), not a DataBundle",
    )  # fmt: skip


# --- the choice --------------------------------------------------------------------------------


def select_value(values: Sequence[CVValue], mode: Literal["max", "min"], rule: Choice = "best") -> CVChoice:
    """The best mean, and the one-SE choice: the first value (in the order given) whose mean is
    within one standard error of the best mean. Only values that finished every fold compete.

    >>> from tunelab.study.stats import summarize
    >>> vals = [CVValue(w, str(w), (), tuple(s), (), summarize(s))
    ...         for w, s in [(0.1, [0.90, 0.92, 0.94]), (0.01, [0.93, 0.95, 0.94])]]
    >>> c = select_value(vals, "max")  # best mean 0.94, SE 0.0058: values >= 0.9342 qualify
    >>> c.best.value, c.one_se.value, round(c.threshold, 4)
    (0.01, 0.01, 0.9342)
    """
    eligible = [v for v in values if v.eligible]
    if not eligible:
        raise TunelabError(
            "no value finished every fold (see the failed runs); lower optimizer.lr or check the values"
        )
    sign = 1.0 if mode == "max" else -1.0
    # max() keeps the first of equal means: ties go to the value listed first (the simpler one).
    best = max(eligible, key=lambda v: sign * v.summary.mean)  # type: ignore[union-attr]
    se = best.summary.se  # type: ignore[union-attr]
    se = se if math.isfinite(se) else 0.0
    threshold = best.summary.mean - sign * se  # type: ignore[union-attr]
    one_se = next(v for v in eligible if sign * v.summary.mean >= sign * threshold)  # type: ignore[union-attr]
    return CVChoice(rule, best, one_se, threshold)


# --- running -----------------------------------------------------------------------------------


def run_cv(
    recipe: Recipe | str | Path | Mapping[str, Any],
    *,
    folds: int = 5,
    param: tuple[str, Sequence[Any]] | None = None,
    choose: Choice = "best",
    overrides: Sequence[str] = (),
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    out: str | Path | None = None,
    confidence: float = 0.95,
    data: tuple[Any, ...] | None = None,
    runner: Runner | None = None,
    on_run: Callable[[FoldRun], None] | None = None,
) -> CVResult:
    """Cross-validate the recipe (over the values of ``param``), retrain the choice, test it once.

    Args:
        recipe: a Recipe, a YAML path or a mapping; ``overrides`` apply on top.
        folds: K, the number of folds of train+val.
        param: ``(dotted path, [values])``, values listed simplest first (see the one-SE rule);
            None cross-validates the recipe as it is.
        choose: which choice is retrained and tested: "best" (best mean) or "1se".
        storage: Optuna storage URL or object (default ``sqlite:///runs/studies.db``); finished
            runs are read back from it, never recomputed.
        study_name: default ``cv-<dataset>-<model>``.
        out: run directory of the final retrain (not saved if None).
        data: arrays ``(x, y)`` / ``(x, y, x_test, y_test)`` instead of the recipe's data (the
            study is keyed on the recipe: give such a study a ``study_name`` of its own).
        runner: ``runner(recipe, bundle, out) -> RunOutcome`` instead of ``tunelab.fit``.
        on_run: called with a FoldRun after each fold run computed now.

    >>> res = run_cv("examples/cv_l2.yaml", folds=5,
    ...              param=("methods.l2.weight", [0.1, 0.01, 0.001]))  # doctest: +SKIP
    >>> res.choice.best.value, res.choice.one_se.value, res.final.test["accuracy"]  # doctest: +SKIP
    """
    base = study_recipe(recipe, overrides)
    if choose not in ("best", "1se"):
        raise TunelabError(f"--choose {choose}: must be best or 1se")
    candidates = _values(base, param)
    pool = _raw_pool(base, data)
    metric, notes = _fold_metric(base, pool.task)
    assert pool.raw is not None  # loaded with keep_raw
    y = pool.raw.y
    splits = fold_indices(
        y, folds, base.data.split_seed, pool.task == "classification", pool.class_names or ()
    )
    study = StudyRuns(
        base,
        kind="cv",
        storage=storage,
        study_name=study_name,
        metric=metric,
        runner=runner,
        study={"monitor": metric.monitor, "metric": metric.metric},
    )

    # Fold by fold, every value: an interrupted CV already holds comparable scores.
    fold_runs: list[FoldRun] = []
    by_value: dict[str, dict[int, StoredRun]] = {label: {} for _, label, _ in candidates}
    for i, (tr, va) in enumerate(splits):
        bundle = fold_bundle(pool, tr, va)
        for value, label, ov in candidates:
            run = study.run({"phase": "fold", "overrides": list(ov), "k": folds, "fold": i}, ov, bundle)
            by_value[label][i] = run
            seconds = float(run.attrs.get("seconds", 0.0))
            fr = FoldRun(value, label, i, run.value, run.status, len(tr), len(va), seconds, run.cached)
            fold_runs.append(fr)
            if on_run is not None and not run.cached:
                on_run(fr)
    results = [_cv_value(value, label, ov, by_value[label], confidence) for value, label, ov in candidates]
    choice = select_value(results, metric.mode, choose)

    # The one retrain with the chosen value on the recipe's own split, and the one test read.
    chosen = choice.chosen
    key = {"phase": "final", "overrides": list(chosen.overrides)}
    final = study.run(key, chosen.overrides, load_bundle(base, data), out, keep_test=True)
    return CVResult(
        study_name=study.store.study_name,
        storage=study.where,
        param=param[0] if param else None,
        k=folds,
        monitor=metric.monitor,
        metric=metric.metric,
        mode=metric.mode,
        stratified=pool.task == "classification",
        values=tuple(results),
        folds=tuple(fold_runs),
        choice=choice,
        final=CVRetrain(
            chosen.label,
            chosen.value,
            final.status,
            dict(final.attrs.get("val") or {}),
            dict(final.attrs.get("test") or {}),
            final.attrs.get("run_dir"),
        ),
        runs_computed=study.computed,
        runs_reused=study.reused,
        notes=tuple(notes),
    )


def _fold_metric(base: Recipe, task: str) -> tuple[ComparedMetric, list[str]]:
    """The metric each fold is scored on, and a note when it is not the recipe's own."""
    metric = compared_metric(base, task)
    if task == "regression" and metric.metric == "loss":
        # The loss of a regression is computed on targets standardized with each fold's own
        # statistics; the MSE in the data's units is comparable across folds.
        note = (
            "regression: folds are scored on val.mse in the data's units (the loss is on targets "
            "standardized per fold)"
        )
        return dataclasses.replace(metric, metric="mse", mode="min"), [note]
    return metric, []


def _cv_value(
    value: Any, label: str, overrides: tuple[str, ...], runs: Mapping[int, StoredRun], confidence: float
) -> CVValue:
    """One value's fold scores (the folds that finished) and their summary."""
    scores = tuple(float(r.value) for r in runs.values() if r.ok)  # type: ignore[arg-type]
    failed = tuple((i, r.status) for i, r in runs.items() if not r.ok)
    return CVValue(value, label, overrides, scores, failed, summarize(scores, confidence) if scores else None)


__all__ = [
    "CVChoice",
    "CVResult",
    "CVRetrain",
    "CVValue",
    "FoldRun",
    "fold_bundle",
    "fold_indices",
    "parse_param",
    "run_cv",
    "select_value",
]
