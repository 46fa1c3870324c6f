"""Stage 5 of ``tunelab auto``: ablate the search's winner on seeds, then the Occam step.

The variants are those of ``tunelab ablate`` (``tunelab.study.ablation.variants``): the winner
without each of its methods, with dropout 0, with batch norm off; early stopping is always on,
so it is not a variant. Every variant trains on the ablation seeds (which no other stage uses),
seed by seed, reading val only: the runs get a bundle whose test slot holds val, and ``fit``
is told not to evaluate it. Each removal's difference to the winner has a Holm-consistent
interval (``tunelab.study.ablation_analysis.analyze``).

The Occam step keeps a method (or regularizer) only when removing it is detectably worse (its
outcome is "helped"); every other one is dropped, and the report says why with its Δ and
interval. The reduced recipe is then checked once against the winner on the same seeds; if it is
detectably worse (the removals that were harmless one by one hurt together), the winner is kept
whole. A seed round starts only when the stage's deadline leaves time for it; with fewer than
two seeds done there is no interval, nothing is dropped, and the record says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tunelab.data import DataBundle
from tunelab.io import finite_scalars
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.ablation import selection_bundle, variants
from tunelab.study.ablation_analysis import Variant, VariantResult, analyze
from tunelab.study.runstore import StoredRun
from tunelab.study.scaffold import RunOutcome, StudyRuns, compared_metric, study_free_raw

STUDY = "auto-ablation"
# Seeds an Occam step needs: with 2 pairs the 95% t-interval is +-12.7 standard errors wide and
# detects nothing, so every method would be dropped (digits, 2 seeds: batch norm and dropout were,
# and the final recipe lost 5 points of test accuracy).
MIN_SEEDS = 3
ALWAYS_ON = ("early_stopping",)


def candidates(recipe: Recipe) -> list[Variant]:
    """The base and its removal variants (early stopping stays: it is always on).

    >>> r = load_recipe({"model": {"name": "mlp", "dropout": 0.1},
    ...                  "methods": [{"name": "early_stopping"}, {"name": "ema"}]})
    >>> [v.name for v in candidates(r)]
    ['base', '-ema', 'dropout=0']
    """
    return [v for v in variants(load_recipe(study_free_raw(recipe))) if v.subject not in ALWAYS_ON]


def select_runner(recipe: Recipe, bundle: DataBundle, out: str | Path | None = None) -> RunOutcome:
    """One selection run: val only (``fit`` leaves the test slot unread)."""
    from tunelab.train import fit

    r = fit(recipe, data=bundle, save=False, evaluate_test=False)
    return RunOutcome(r.status, finite_scalars(r.val), {}, r.train_seconds, r.epochs, r.message)


def run_ablation_stage(
    winner_raw: Mapping[str, Any],
    *,
    seeds: Sequence[int],
    storage: str,
    deadline: float,
    round_seconds: float,
    on_run: Callable[[str, int, StoredRun], None] | None = None,
) -> dict[str, Any]:
    """Ablate the winner on ``seeds`` (rounds that fit before ``deadline``), then the Occam step."""
    from tunelab.train import load_bundle

    base = load_recipe(dict(winner_raw), [f"train.seed={seeds[0]}"])
    arms = candidates(base)
    bundle = selection_bundle(load_bundle(base))  # the real test tensors never reach these runs
    metric = compared_metric(base, bundle.task)
    runs = StudyRuns(
        base,
        kind="ablation",
        storage=storage,
        study_name=STUDY,
        metric=metric,
        runner=select_runner,
        study={"monitor": metric.monitor},
        seed_in_keys=True,
    )

    def one(v: Variant, seed: int) -> StoredRun:
        key = {"phase": "select", "overrides": list(v.overrides), "seed": seed}
        got = runs.run(key, [*v.overrides, f"train.seed={seed}"], bundle, attrs={"variant": v.name})
        if on_run is not None:
            on_run(v.name, seed, got)
        return got

    done: list[int] = []
    table: dict[tuple[str, int], StoredRun] = {}
    for seed in seeds:
        cached = all(runs.store.get(_key(v, seed)) is not None for v in arms)
        if not cached and done and time.time() + round_seconds > deadline:
            break  # this round cannot finish in the stage's time
        table.update({(v.name, seed): one(v, seed) for v in arms})
        done.append(seed)
    record: dict[str, Any] = {
        "study": STUDY,
        "seeds": done,
        "planned_seeds": list(seeds),
        "metric": metric.monitor,
    }
    if len(arms) == 1 or len(done) < MIN_SEEDS:
        why = (
            "the winner has no method to remove"
            if len(arms) == 1
            else f"fewer than {MIN_SEEDS} seeds fitted the budget"
        )
        return {**record, "variants": [], "dropped": [], "kept": [], "recipe": dict(winner_raw), "note": why}
    results = analyze(arms, table, done, mode=metric.mode)
    dropped = [r for r in results if not r.variant.is_base and r.outcome not in ("helped", "failed")]
    kept = [r for r in results if not r.variant.is_base and r.outcome in ("helped", "failed")]
    record.update(variants=[r.to_dict() for r in results], kept=[_why(r) for r in kept])
    record.update(dropped=[_why(r) for r in dropped], recipe=dict(winner_raw), note="")
    if not dropped:
        return record
    reduced = Variant("occam", tuple(o for r in dropped for o in r.variant.overrides), "value", "occam")
    check = analyze(
        [arms[0], reduced], {**table, **{("occam", s): one(reduced, s) for s in done}}, done, mode=metric.mode
    )[1]
    record["occam"] = check.to_dict()
    if check.verdict == "worse":
        record["note"] = (
            "the methods dropped one by one are detectably worse dropped together: the winner stays whole"
        )
        record["dropped"] = []
        return record
    record["recipe"] = study_free_raw(load_recipe(dict(winner_raw), list(reduced.overrides)))
    return record


def _key(v: Variant, seed: int) -> dict[str, Any]:
    return {"phase": "select", "overrides": list(v.overrides), "seed": seed}


def _why(r: VariantResult) -> dict[str, Any]:
    d = r.to_dict()
    return {
        "name": r.variant.subject,
        "variant": r.name,
        "outcome": r.outcome,
        "delta": d["difference"],
        "ci_low": d["ci_low"],
        "ci_high": d["ci_high"],
        "ci_level": d["ci_level"],
        "p_value": d["p_value"],
        "effect": r.effect(),
    }
