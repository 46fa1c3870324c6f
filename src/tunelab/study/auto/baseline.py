"""Stages 2 and 3 of ``tunelab auto``: the baseline, trained once, and the learning-rate range.

The baseline is the starting recipe (or ``space.baseline_recipe`` for the modality) trained once
on the selection seed, stopped at its share of the budget (``Deadline``). It reads val only (the
test split stays unread) and prices what follows: its measured seconds per epoch.

The lr range of the search comes from the range test (``tunelab.lr_find``) on the baseline:
``suggested / 10`` to ``suggested * 10`` (the suggestion is a tenth of the lr at the loss's
minimum, so the top of the range is that minimum, the edge of stability; a decade below the
suggestion still trains, slowly). The ramp's steps are cut to what its time share allows.

    >>> lr_range(0.01)
    (0.001, 0.1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tunelab.io import finite_scalars
from tunelab.recipe import load_recipe
from tunelab.study.search.trial_methods import Deadline

# The range test's default ramp (tunelab.lr_find) and its floor: fewer steps than this cannot
# show a minimum (the finder refuses below 20).
LR_FIND_STEPS, LR_FIND_MIN_STEPS = 200, 40


def run_baseline(raw: Mapping[str, Any], deadline: float) -> dict[str, Any]:
    """Train ``raw`` once (val only), stopped at ``deadline`` (a ``time.time()`` instant)."""
    from tunelab.train import fit

    recipe = load_recipe(dict(raw), ["train.efficiency=false", "train.tensorboard=false"])
    stop = Deadline(deadline)
    result = fit(recipe, save=False, methods=[stop], evaluate_test=False)
    monitor = result.monitor.split(".", 1)[1]
    return {
        "recipe": dict(raw),
        "status": result.status,
        "message": result.message,
        "epochs": result.epochs,
        "seconds": result.train_seconds,
        "seconds_per_epoch": result.train_seconds / max(1, result.epochs),
        "stopped_by_budget": stop.stopped_at is not None,
        "val": finite_scalars(result.val),
        "monitor": result.monitor,
        "curve": [(h.get("val") or {}).get(monitor) for h in result.history],  # the report's figure
    }


def lr_range(suggested: float) -> tuple[float, float]:
    """The search's lr range around the range test's suggestion: a decade each side."""
    return float(f"{suggested / 10:.3g}"), float(f"{suggested * 10:.3g}")


def run_lr_find(raw: Mapping[str, Any], seconds: float, seconds_per_step: float) -> dict[str, Any]:
    """The range test on the baseline, with as many steps as ``seconds`` allow (at most 200)."""
    from tunelab.lr_find import lr_find

    steps = int(min(LR_FIND_STEPS, max(LR_FIND_MIN_STEPS, seconds / max(seconds_per_step, 1e-6))))
    started = time.perf_counter()
    result = lr_find(load_recipe(dict(raw)), steps=steps)
    low, high = lr_range(result.suggested_lr)
    return {
        "steps": steps,
        "seconds": time.perf_counter() - started,
        "suggested_lr": result.suggested_lr,
        "min_lr": result.min_lr,
        "diverged_lr": result.diverged_lr,
        "rule": result.rule,
        "note": result.note,
        "range": [low, high],
        "lrs": result.lrs,
        "smoothed": [v if v == v and abs(v) != float("inf") else None for v in result.smoothed],
    }
