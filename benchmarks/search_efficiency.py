"""Search efficiency: TPE + ASHA against random search without pruning, in epochs of compute.

Random search runs ``--random-trials`` full trials on examples/mnist1d_search.yaml (its search
space: lr, weight decay, optimizer with conditional momentum, dropout, batch size, label
smoothing on/off) and finds a best val accuracy: the target. TPE + ASHA (rungs at 1, 3, 9
epochs, the best third promoted) then runs on the same space; the figure is the compute (total
epochs trained, pruned trials' partial epochs included) it spends until a completed trial reaches
the target, divided by the compute of the random search's budget. A single worker runs the trials
in order, so "until a trial reaches the target" is read off the trial log afterwards. Repeated
over ``--seeds`` seeds; in repetition ``s`` both searches train with ``train.seed = s`` and the
samplers get distinct seeds (TPE's first ten trials are random draws: with the random search's
seed they would repeat its first trials and share its luck). The figure is the median.

Also printed: the stricter ratio against the compute random search spent until its own best
trial (which a lucky early find makes small), and the best val accuracy of both.

    .venv/bin/python benchmarks/search_efficiency.py [--seeds 3] [--random-trials 30] [--epochs 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tunelab.study.search.run import prepare_search
from tunelab.study.search.workers import run_worker
from tunelab.study.storage import open_storage

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "mnist1d_search.yaml"


def trial_log(url: str, name: str) -> list[tuple[int, float | None]]:
    """(epochs trained, value if complete) per trial, in the order they ran."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        value = t.value if t.state == TrialState.COMPLETE else None
        out.append((int(t.user_attrs.get("epochs", 0)), value))
    return out


def epochs_to_reach(log: list[tuple[int, float | None]], target: float) -> int | None:
    spent = 0
    for epochs, value in log:
        spent += epochs
        if value is not None and value >= target:
            return spent
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--random-trials", type=int, default=30)
    p.add_argument("--tpe-trials", type=int, default=80, help="cap of the TPE + ASHA trials")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"{RECIPE.name}, {args.epochs} epochs per full trial; random search {args.random_trials} trials "
        f"({args.random_trials * args.epochs} epochs) vs TPE + ASHA (at most {args.tpe_trials} trials); "
        f"{args.seeds} seeds, 1 worker, {args.threads} thread(s)",
        flush=True,
    )
    ratios, strict = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            url = f"sqlite:///{Path(tmp) / f'{seed}.db'}"
            overrides = [f"train.epochs={args.epochs}", f"train.seed={seed}", f"train.threads={args.threads}"]
            prepare_search(
                RECIPE,
                trials=args.random_trials,
                sampler="random",
                study_name="random",
                storage=url,
                overrides=overrides,
            )
            run_worker("random", url, seed=1000 + seed)
            rnd_log = trial_log(url, "random")
            target = max(v for _, v in rnd_log if v is not None)
            budget = sum(e for e, _ in rnd_log)
            to_best = epochs_to_reach(rnd_log, target)
            prepare_search(
                RECIPE,
                trials=args.tpe_trials,
                sampler="tpe",
                pruner="asha",
                study_name="tpe_asha",
                storage=url,
                overrides=overrides,
            )
            run_worker("tpe_asha", url, seed=2000 + seed)
            tpe_log = trial_log(url, "tpe_asha")
            reached = epochs_to_reach(tpe_log, target)
            pruned = sum(e < args.epochs for e, _ in tpe_log)
            tpe_best = max(v for _, v in tpe_log if v is not None)
            line = (
                f"seed {seed}: random best val.accuracy {target:.4f} (budget {budget} epochs, its best after "
                f"{to_best}); TPE+ASHA best {tpe_best:.4f} in {sum(e for e, _ in tpe_log)} epochs over "
                f"{len(tpe_log)} trials ({pruned} pruned); "
            )
            if reached is None:
                # Not reached within the cap: counted as infinitely costly, so the median stays honest.
                ratios.append(math.inf)
                strict.append(math.inf)
                line += f"target not reached within {sum(e for e, _ in tpe_log)} epochs"
            else:
                ratios.append(reached / budget)
                strict.append(reached / to_best)
                line += (
                    f"target reached after {reached} epochs -> {reached / budget:.3f} of the random budget"
                )
            print(line, flush=True)
    reached_in = sum(math.isfinite(r) for r in ratios)
    print(
        f"TPE + ASHA compute to reach random search's best / random search's budget: median "
        f"{statistics.median(ratios):.3f} (per seed {', '.join(f'{r:.3f}' for r in ratios)}; target reached "
        f"in {reached_in} of {len(ratios)}, an unreached one counted as inf); against random's compute "
        f"to its own best: median {statistics.median(strict):.3f}"
    )


if __name__ == "__main__":
    main()
