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
it (``tunelab.study.ablation_analysis``, pure: runs in, report data out). A variant is
"better"/"worse" only when that interval excludes 0, which is when the adjusted p is below alpha;
otherwise the data cannot detect a difference at this many seeds, and the interval contains 0.

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
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from optuna.storages import BaseStorage

from tunelab.data import DataBundle
from tunelab.errors import RecipeError, TunelabError, did_you_mean
from tunelab.methods import METHODS
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.ablation_analysis import (
    AblationResult,
    RunRecord,
    Variant,
    analyze,
    choose_best,
    test_split_evaluation,
)
from tunelab.study.comparisons import CORRECTIONS
from tunelab.study.runstore import StoredRun
from tunelab.study.scaffold import (
    Runner,
    StudyRuns,
    compared_metric,
    override_text,
    study_fingerprint,
    study_free_raw,
    study_recipe,
    value_label,
)
from tunelab.train import load_bundle

# Paths an ablation value may not vary: the data (and its split) must be the same for every
# variant, or the runs are no longer paired; the seeds are the pairing itself.
_FORBIDDEN_PREFIXES = ("data", "train.seed", "ablation", "search")


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


def _preprocess_key(r: Recipe) -> str:
    return json.dumps(dataclasses.asdict(r.preprocess), sort_keys=True)


# --- running -----------------------------------------------------------------------------------


def selection_bundle(bundle: DataBundle) -> DataBundle:
    """``bundle`` with its test slot holding the val split: what selection runs see.

    ``fit`` always evaluates a "test" split at the end; handing it val there keeps the real test
    split out of every run that takes part in a choice.
    """
    return dataclasses.replace(bundle, x_test=bundle.x_val, y_test=bundle.y_val)


class _VariantData:
    """The bundle each variant trains on: the base's, or the same split preprocessed its own way.

    A variant of the preprocessing (``preprocess.scaling: [none, minmax]``) needs the raw data
    preprocessed again; every other variant shares the base's bundle. Selection runs see val in
    the test slot (``selection_bundle``); the final test runs see the real test split.
    """

    def __init__(self, base: Recipe, bundle: DataBundle, data: DataBundle | tuple[Any, ...] | None) -> None:
        self.base, self.data = base, data
        self.bundles = {_preprocess_key(base): bundle}

    def __call__(self, variant: Variant, phase: str) -> DataBundle:
        r = variant_recipe(self.base, variant)
        key = _preprocess_key(r)
        if key not in self.bundles:
            if isinstance(self.data, DataBundle):
                raise RecipeError(
                    "ablation.values", variant.name, "varies the preprocessing, which needs raw data: "
                    "pass arrays (x, y) or the recipe's data, not a preprocessed DataBundle",
                )  # fmt: skip
            self.bundles[key] = load_bundle(r, self.data)
        return self.bundles[key] if phase == "test" else selection_bundle(self.bundles[key])


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
        study_name=study_name,
        metric=metric,
        runner=runner,
        study={"monitor": metric.monitor},
        seed_in_keys=True,
    )
    data_for = _VariantData(base, bundle, data)
    seed_list = tuple(base.train.seed + i for i in range(seeds))

    def one(variant: Variant, seed: int, phase: Literal["select", "test"]) -> StoredRun:
        return _one_run(study, variant, seed, phase, data_for(variant, phase), out_dir, on_run)

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
        test=test_split_evaluation(metric.metric, best.name, test_runs, finished, confidence, test),
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


__all__ = ["check_ablation", "run_ablation", "selection_bundle", "variant_recipe", "variants"]
