"""Size and opening time of a large search report: 1,000 trials, in headless Chromium.

The study is made without training: ``prepare_search`` creates it exactly as ``tunelab search``
does (the recipe, objectives, sampler and pruner in its user attributes), then each trial asks
tunelab's own ``suggest`` for its parameters, records the user attributes a real trial records,
reports a made-up learning curve and ends COMPLETE or PRUNED. The report is then built from the
storage like any other, and Chromium opens it (the time from navigation to the load event, when
every inline SVG is parsed and laid out; the median of ``--opens``).

    .venv/bin/python benchmarks/report_open.py [--trials 1000] [--objectives 1] [--opens 5]

Goal (issue 12): the 1,000-trial report opens in <= 3 s on this machine.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tunelab.recipe import load_recipe
from tunelab.study.search.run import prepare_search
from tunelab.study.search.space import suggest, trial_recipe
from tunelab.study.storage import open_storage

CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's chromium binary (`make chromium` installs it)
RECIPE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [16], "dropout": 0.1},
    "train": {"epochs": 10},
    "search": {
        "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
        "model.hidden": {"type": "categorical", "choices": [[16], [64], [64, 64]]},
        "optimizer.weight_decay": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
    },
}


def fake_search(
    storage: str,
    name: str,
    trials: int,
    objectives: int = 1,
    pruned: float = 0.2,
    out_dir: Path | None = None,
    seed: int = 0,
) -> str:
    """A search study of ``trials`` made-up trials in ``storage``, laid out as ``tunelab search``
    lays one out; with ``out_dir``, ``<out_dir>/<name>/best.yaml`` too. Returns the study name."""
    rng = random.Random(seed)
    objective = "val.accuracy" if objectives == 1 else "val.accuracy,params"
    prepared = prepare_search(
        RECIPE,
        trials=trials,
        pruner="median" if objectives == 1 else "none",
        objectives=objective,
        storage=storage,
        study_name=name,
    )
    study = optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat=False))
    base = load_recipe(RECIPE)
    epochs = base.train.epochs
    best: tuple[float, list[str]] | None = None
    for _ in range(trials):
        trial = study.ask()
        overrides = suggest(trial, base)
        trial.set_user_attr("overrides", overrides)
        lr = trial.params["optimizer.lr"]
        top = 0.97 - 0.25 * abs(math.log10(lr) + 2.3) ** 1.5 / 3 - 0.1 * trial.params["model.dropout"]
        stop = rng.randint(2, epochs // 2) if objectives == 1 and rng.random() < pruned else epochs
        curve = [top * (1 - math.exp(-(e + 1) / 2)) + rng.gauss(0, 0.01) for e in range(stop)]
        if objectives == 1:
            for e, v in enumerate(curve):
                trial.report(v, e + 1)
        trial.set_user_attr("epochs", stop)
        if stop < epochs:
            trial.set_user_attr("message", f"pruned after epoch {stop}")
            study.tell(trial, state=TrialState.PRUNED)
            continue
        size = len(str(trial.params["model.hidden"])) * 900 + rng.randint(0, 400) if objectives > 1 else 0
        values = [curve[-1]] if objectives == 1 else [curve[-1], float(size)]
        study.tell(trial, values[0] if objectives == 1 else values)
        if best is None or values[0] > best[0]:
            best = (values[0], overrides)
    if out_dir is not None and best is not None:
        path = Path(out_dir) / name
        path.mkdir(parents=True, exist_ok=True)
        (path / "best.yaml").write_text(trial_recipe(base, best[1]).to_yaml())
    return prepared.study


def open_seconds(html: Path, opens: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for _ in range(opens):
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(html.resolve().as_uri(), wait_until="load")
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--objectives", type=int, choices=(1, 2), default=1)
    ap.add_argument("--opens", type=int, default=5)
    args = ap.parse_args()
    from tunelab.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/studies.db"
        start = time.perf_counter()
        name = fake_search(storage, "big", args.trials, args.objectives, out_dir=Path(tmp))
        made = time.perf_counter() - start
        start = time.perf_counter()
        html = write_report(Path(tmp) / name, storage=storage)
        built = time.perf_counter() - start
        times = open_seconds(html, args.opens)
        print(
            f"{args.trials} trials, {args.objectives} objective(s): study made in {made:.1f} s, report "
            f"written in {built:.1f} s, {html.stat().st_size / 1e6:.2f} MB; opens in headless Chromium in "
            f"{statistics.median(times):.2f} s (median of {len(times)}; "
            f"min {min(times):.2f}, max {max(times):.2f})"
        )


if __name__ == "__main__":
    main()
