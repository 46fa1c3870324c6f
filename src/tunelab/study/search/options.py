"""Names and defaults of the search options, importable without torch or scipy.

`tunelab --help` builds every command's parser; reading the defaults from here keeps that fast
(``tunelab.study.search.run`` imports torch and the training loop). The sampler and pruner names
are the keys of their registries (``tunelab.study.search.samplers``), which import Optuna only
when an entry is built.

    >>> from tunelab.study.search.options import COSTS
    >>> COSTS["throughput"]
    'maximize'
"""

from __future__ import annotations

from typing import Literal

Direction = Literal["minimize", "maximize"]

# Costs a search can minimize (or maximize) beside val metrics; keys of RunResult.efficiency.
COSTS: dict[str, Direction] = {
    "latency_ms": "minimize",
    "params": "minimize",
    "size_bytes": "minimize",
    "flops": "minimize",
    "train_seconds": "minimize",
    "throughput": "maximize",
}
DEFAULT_TRIALS = 20
# Three seeds: the fewest that give a t-interval with a finite, if wide, half-width.
DEFAULT_FINAL_SEEDS = 3
DEFAULT_OUT = "runs/studies"
