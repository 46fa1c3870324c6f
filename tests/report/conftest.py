"""What the report tests share: the text a terminal renderer prints (``render``), and the sources
every HTML report test reads (``sources``): real runs and studies, small and made once per session.

Runs train for real (a few epochs of tiny models: their numbers are what the reports must show);
ablation and cross-validation use scripted runners (known numbers, no training); the search
studies are built with Optuna through the same storage layout ``tunelab search`` writes
(``benchmarks/report_open.py``'s ``fake_search``), plus one real search with a pruner.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna
import pytest
from rich.console import Console

from tunelab.lr_find import RULE, LRFindResult
from tunelab.recipe import load_recipe
from tunelab.study.ablation import run_ablation
from tunelab.study.cv import run_cv
from tunelab.study.scaffold import RunOutcome

ROOT = Path(__file__).resolve().parents[2]

DIGITS_RUN = {
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
    "optimizer": {"name": "adam", "lr": 0.02},
    "schedule": {"name": "onecycle"},
    "train": {"epochs": 12, "batch_size": 128, "threads": 1, "efficiency": True},
    "methods": [
        {"name": "grad_clip", "max_norm": 1.0},
        # patience 1 at a high lr: stops well before epoch 12, so the stopping epoch is marked
        {"name": "early_stopping", "patience": 1, "restore_best": True},
    ],
}


@pytest.fixture
def render() -> Callable[[Callable[..., None], Any], str]:
    """``render(print_fn, obj) -> text``: what ``print_fn(obj, console)`` prints, 250 columns wide
    (wide enough that no table cell wraps)."""

    def run(print_fn: Callable[..., None], obj: Any) -> str:
        console = Console(record=True, width=250)
        print_fn(obj, console)
        return console.export_text()

    return run


def load_fake_search():
    """``fake_search`` from benchmarks/report_open.py: the same builder the 1,000-trial figure uses."""
    spec = importlib.util.spec_from_file_location("report_open", ROOT / "benchmarks" / "report_open.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fake_search


@pytest.fixture(scope="session")
def sources(tmp_path_factory):
    """Lazily made sources, shared by the model tests and the browser tests."""
    return Sources(tmp_path_factory.mktemp("report-sources"))


class Sources:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, object] = {}

    def _once(self, key, make):
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.root / 'studies.db'}"

    def run(self):
        """(RunResult, run dir): digits, onecycle, grad clipping, early stopping that fires."""
        from tunelab.train import fit

        def make():
            r = fit(DIGITS_RUN, out=self.root / "digits-run")
            return r, Path(r.run_dir)

        return self._once("run", make)

    def regression_run(self):
        """A regression run whose test split was not read (``evaluate_test=False``), step schedule."""
        from tunelab.train import fit

        def make():
            recipe = {
                "data": {"name": "diabetes"},
                "model": {"name": "mlp", "hidden": [16]},
                "schedule": {"name": "step", "step_size": 1, "gamma": 0.5},
                "train": {"epochs": 3, "threads": 1, "efficiency": False},
            }
            r = fit(recipe, out=self.root / "diabetes-run", evaluate_test=False)
            return r, Path(r.run_dir)

        return self._once("regression", make)

    def search(self, objectives: int = 1, trials: int = 40):
        """(study name, output dir) of a made-up search with tunelab's storage layout."""

        def make():
            name = f"fake-{objectives}"
            load_fake_search()(self.storage, name, trials, objectives, out_dir=self.root / "studies")
            return name, self.root / "studies" / name

        return self._once(("search", objectives, trials), make)

    def real_search(self):
        """A real, tiny search with a median pruner and a final retrain on 2 seeds."""
        from tunelab.study.search.run import run_search

        def make():
            recipe = {
                "data": {"name": "iris"},
                "model": {"name": "mlp", "hidden": [8]},
                "train": {"epochs": 4, "threads": 1, "batch_size": 32},
                "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}},
            }
            return run_search(
                recipe,
                trials=6,
                pruner="median",
                storage=self.storage,
                study_name="real",
                final_seeds=2,
                out_dir=self.root / "studies",
            )

        return self._once("real-search", make)

    def ablation(self, correction: str = "holm"):
        return self._once(
            ("ablation", correction),
            lambda: run_ablation(
                load_recipe(
                    {**IRIS, "ablation": {"add": [{"name": "ema"}], "values": {"optimizer.lr": [0.1]}}}
                ),
                seeds=6,
                storage=optuna.storages.InMemoryStorage(),
                runner=ScriptedAblation(),
                correction=correction,
            ),
        )

    def cv(self):
        return self._once(
            "cv",
            lambda: run_cv(
                IRIS,
                folds=4,
                param=("optimizer.lr", [0.1, 0.01, 0.001]),
                storage=optuna.storages.InMemoryStorage(),
                runner=ScriptedCV(),
            ),
        )

    def compress(self):
        """A compress result: the run above, two sparsities and int8, no fine-tuning (fast)."""
        from tunelab.study.compress import compress_run

        def make():
            _, run_dir = self.run()
            return compress_run(
                run_dir, sparsities=[0.5, 0.9], quantize=True, finetune_epochs=0, budget_s=0.2
            )

        return self._once("compress", make)

    def auto(self) -> Path:
        """The output directory of a real ``tunelab auto`` on iris under a 30 s budget."""
        from tunelab.study.auto.run import run_auto

        def make():
            out = self.root / "auto-iris"
            run_auto(
                {"data": {"name": "iris"}, "train": {"threads": 1}}, budget="30s", out=out, final_seeds=2
            )
            return out

        return self._once("auto", make)

    def lr_find(self) -> LRFindResult:
        lrs = list(np.geomspace(1e-5, 1.0, 60))
        losses = [2.3 - 1.5 / (1 + np.exp(-(np.log10(lr) + 3) * 2)) for lr in lrs[:50]] + [
            2.0,
            3,
            5,
            9,
            20,
            50,
            90,
            200,
            400,
            900,
        ]
        trend = losses[:50]
        return LRFindResult(
            lrs=[float(v) for v in lrs],
            losses=[float(v) for v in losses],
            smoothed=[float(v) for v in losses],
            trend=[float(v) for v in trend],
            suggested_lr=float(lrs[45]) / 10,
            rule=RULE,
            stopped_early=True,
            diverged_lr=float(lrs[-1]),
            min_lr=float(lrs[45]),
            min_loss=float(trend[45]),
            steps_per_epoch=20,
        )


IRIS = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8], "dropout": 0.1},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
    "methods": [{"name": "l2", "weight": 1e-3}],
}
RNG = np.random.default_rng(7)
SEED_EFFECT = RNG.normal(0, 0.03, size=16)


class ScriptedAblation:
    """No training: val accuracy = 0.8 + what the seed does + the variant's true effect + noise."""

    EFFECT: ClassVar[dict[str, float]] = {
        "base": 0.0,
        "-l2": -0.03,
        "dropout=0": 0.0,
        "+ema": 0.02,
        "optimizer.lr=0.1": -0.001,
    }

    def __call__(self, recipe, bundle, out):
        if recipe.method("ema"):
            name = "+ema"
        elif recipe.method("l2") is None:
            name = "-l2"
        elif recipe.model.params.get("dropout") == 0:
            name = "dropout=0"
        elif recipe.optimizer.params.get("lr") == 0.1:
            name = "optimizer.lr=0.1"
        else:
            name = "base"
        seed = recipe.train.seed
        value = 0.8 + SEED_EFFECT[seed] + self.EFFECT[name] + RNG.normal(0, 0.003)
        return RunOutcome(
            "completed",
            {"accuracy": value, "loss": 1 - value},
            {"accuracy": value - 0.01},
            seconds=0.5 + 0.1 * len(name),
            size={"params": 100, "nonzero": 100, "size_bytes": 4000},
        )


class ScriptedCV:
    """No training: a fold's score depends on the lr (0.01 best) and the fold."""

    def __call__(self, recipe, bundle, out):
        lr = recipe.optimizer.params.get("lr")
        score = {0.1: 0.90, 0.01: 0.93, 0.001: 0.925}[lr] + float(RNG.normal(0, 0.01))
        return RunOutcome("completed", {"accuracy": score, "loss": 1 - score}, {"accuracy": score - 0.02})
