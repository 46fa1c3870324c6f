"""Stage 6 of ``tunelab auto``: the final recipe retrained on seeds no earlier stage used.

``final_seeds(seed, n)`` are ``seed + FINAL_OFFSET`` onwards: the baseline, lr-find and the search
train on ``seed``, the ablation on ``seed + 1`` .. ``seed + ABLATION_MAX_SEEDS``; none of them
reaches the final seeds, so no final figure comes from a model a choice was made on. Each final
run reads the test split once, at its end (the only stage that reads it); the figure is the mean
over seeds with a 95% t-interval (``tunelab.study.stats.summarize``), clipped to the metric's range
for a bounded one (accuracy, precision, recall, F1 lie in [0, 1]: a t-interval of 5 seeds near
100% reached 100.78% on wine, a value no model can read; ``clipped`` says when it was cut). Each
finished seed is stored as it ends, so a rerun retrains only the seeds still missing.

    >>> final_seeds(0, 3)
    [1000, 1001, 1002]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tunelab.io import finite_scalars
from tunelab.metrics.quality import metric_range
from tunelab.recipe import load_recipe
from tunelab.study.stats import summarize

FINAL_OFFSET = 1000
ABLATION_MAX_SEEDS = 10


def final_seeds(seed: int, n: int) -> list[int]:
    return [seed + FINAL_OFFSET + i for i in range(n)]


def ablation_seeds(seed: int, n: int) -> list[int]:
    """``seed + 1`` .. ``seed + n`` (at most ``ABLATION_MAX_SEEDS``).

    >>> ablation_seeds(0, 3)
    [1, 2, 3]
    """
    return [seed + 1 + i for i in range(min(n, ABLATION_MAX_SEEDS))]


def run_final_seed(raw: Mapping[str, Any], seed: int, out: Path) -> dict[str, Any]:
    """One final run: train on ``seed``, write its run directory, read val and test once."""
    from tunelab.train import fit

    recipe = load_recipe(dict(raw), [f"train.seed={seed}", "train.efficiency=false"])
    # A seed an interrupted session left unfinished continues from its last.pt (tunelab.resume).
    r = fit(resume=out) if (out / "recipe.yaml").is_file() else fit(recipe, out=out)
    return {
        "seed": seed,
        "status": r.status,
        "epochs": r.epochs,
        "seconds": r.train_seconds,
        "val": finite_scalars(r.val),
        "test": finite_scalars(r.test),
        "run_dir": r.run_dir,
    }


def run_final(
    raw: Mapping[str, Any],
    seeds: list[int],
    out_dir: Path,
    done: Mapping[int, dict[str, Any]],
    keep: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Every seed's run: the ``done`` ones as stored, the others trained now and handed to ``keep``
    as each ends (so an interrupted stage keeps its finished seeds)."""
    runs = []
    for seed in seeds:
        run = done.get(seed)
        if run is None:
            run = run_final_seed(raw, seed, out_dir / f"seed-{seed}")
            keep(run)
        runs.append(run)
    return runs


def summary(runs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """``final`` of ``--json``: val and test of ``metric`` as mean and 95% CI over the seeds."""
    out: dict[str, Any] = {"metric": metric, "seeds": [r["seed"] for r in runs]}
    for split in ("val", "test"):
        values = [r[split][metric] for r in runs if metric in r.get(split, {})]
        if values:
            s = summarize(values).to_dict()
            low, high, clipped = clip_interval(s["ci_low"], s["ci_high"], metric_range(metric))
            out[split] = {
                "mean": s["mean"],
                "ci_low": low,
                "ci_high": high,
                "clipped": clipped,
                "std": s["std"],
                "n": len(values),
                "values": values,
            }
    return out


def clip_interval(
    low: float | None, high: float | None, bounds: tuple[float, float] | None
) -> tuple[float | None, float | None, bool]:
    """``(low, high)`` cut to ``bounds`` (None: unbounded), and whether either end moved.

    >>> clip_interval(0.97, 1.0078, (0.0, 1.0))
    (0.97, 1.0, True)
    >>> clip_interval(-0.2, 0.5, None)
    (-0.2, 0.5, False)
    """
    if bounds is None or low is None or high is None:
        return low, high, False
    lo, hi = max(low, bounds[0]), min(high, bounds[1])
    return lo, hi, (lo, hi) != (low, high)
