"""Preprocessing: penguins (sex) against scikit-learn on the same splits; scaling ablations.

**penguins** (default). For each seed s of ``--seeds`` (0..4): the penguins with a known sex
(333 of 344), split 80/20 stratified by sex with ``random_state=s``: the very test split tunelab
cuts with ``data.split_seed=s`` and ``data.test_fraction=0.2`` (checked below, row for row).
Two scikit-learn references are fit on the 80%:

* logistic: numbers imputed (median) and standardized, categories imputed (most frequent) and
  one-hot encoded, then ``LogisticRegression(max_iter=1000)``;
* hgb: ``HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=s)`` on
  the table with its text columns as pandas categories (native categorical splits, NaNs as is).

tunelab runs ``examples/penguins_mlp.yaml`` with ``data.split_seed=s`` and ``train.seed=s``; it
holds 20% of its 80% out as val (early stopping and the best epoch read val) and trains on the
rest. The figures are the test accuracies, per seed and their mean.

**--tune**: the candidate recipes below scored on **val only** (mean val accuracy over the same
splits; the test split is never read): how ``examples/penguins_mlp.yaml`` was chosen.

**--ablation**: ``tunelab ablate``'s study on digits and on breast_cancer of ``preprocess.scaling``
none and minmax against standard (the base), ``--seeds`` seeds each, with the verdicts.

    .venv/bin/python benchmarks/preprocess.py [--seeds 5]
    .venv/bin/python benchmarks/preprocess.py --tune
    .venv/bin/python benchmarks/preprocess.py --ablation

Every run uses one thread (``train.threads=1``): the machine is shared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import tunelab
from tunelab.data import load_data
from tunelab.data.builtin import penguins_csv
from tunelab.study.ablation import run_ablation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "penguins_mlp.yaml"
QUIET = ["train.efficiency=false", "train.tensorboard=false", "train.threads=1"]
TEXT = ["species", "island"]
NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]

# What --tune compares (overrides of the example recipe), scored on val only.
CANDIDATES: dict[str, list[str]] = {
    # First round, around a plain start (lr 3e-3):
    "mlp 64x64, dropout 0.1, lr 3e-3": ["optimizer.lr=0.003"],
    "mlp 32, dropout 0.1": ["optimizer.lr=0.003", "model.hidden=[32]"],
    "mlp 128x128, dropout 0.3": ["optimizer.lr=0.003", "model.hidden=[128,128]", "model.dropout=0.3"],
    "lr 1e-2 (the example)": ["optimizer.lr=0.01"],
    "lr 1e-3, 300 epochs": ["optimizer.lr=0.001", "train.epochs=300"],
    "weight decay 1e-2 (adamw)": [
        "optimizer.lr=0.003",
        "optimizer.name=adamw",
        "optimizer.weight_decay=0.01",
    ],
    "no early stopping": ["optimizer.lr=0.003", "methods.early_stopping=null"],
    "robust scaling": ["optimizer.lr=0.003", "preprocess.scaling=robust"],
    "year as a number": ["optimizer.lr=0.003", "preprocess.numeric=[year]"],
    # Second round, around the best of the first (lr 1e-2):
    "lr 1e-2, mlp 32": ["optimizer.lr=0.01", "model.hidden=[32]"],
    "lr 1e-2, mlp 128x128, dropout 0.3": ["optimizer.lr=0.01", "model.hidden=[128,128]", "model.dropout=0.3"],
    "lr 1e-2, best epoch by val.loss": ["optimizer.lr=0.01", "train.monitor=val.loss"],
    "lr 1e-2, minmax scaling": ["optimizer.lr=0.01", "preprocess.scaling=minmax"],
}


def penguins_frame() -> pd.DataFrame:
    frame = pd.read_csv(penguins_csv())  # "NA" is missing for pandas too
    return frame[frame["sex"].notna()].reset_index(drop=True)


def split(frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The 80/20 stratified split tunelab cuts with data.split_seed=seed (its first cut: test)."""
    train, test = train_test_split(
        np.arange(len(frame)), test_size=0.2, random_state=seed, stratify=frame["sex"]
    )
    return train, test


def logistic_accuracy(frame: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> float:
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMBERS),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), TEXT),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=1000))
    x, y = frame[TEXT + NUMBERS], frame["sex"]
    model.fit(x.iloc[train], y.iloc[train])
    return float(model.score(x.iloc[test], y.iloc[test]))


def hgb_accuracy(frame: pd.DataFrame, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    x = frame[TEXT + NUMBERS].copy()
    for c in TEXT:
        x[c] = x[c].astype("category")
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    y = frame["sex"]
    model.fit(x.iloc[train], y.iloc[train])
    return float(model.score(x.iloc[test], y.iloc[test]))


def tunelab_run(seed: int, overrides: list[str]) -> tunelab.RunResult:
    sets = [f"data.split_seed={seed}", f"train.seed={seed}", *QUIET, *overrides]
    return tunelab.fit(tunelab.load_recipe(EXAMPLE, sets), save=False, evaluate_test=True)


def check_same_split(frame: pd.DataFrame, seed: int, test: np.ndarray) -> None:
    """tunelab's test split holds the same penguins as the reference's (compared as raw rows)."""
    r = tunelab.load_recipe(EXAMPLE, [f"data.split_seed={seed}"])
    pool = load_data(r.data, r.preprocess, keep_raw=True)
    assert pool.raw is not None and pool.raw.x_test is not None
    columns = pool.feature_names or []
    ours = sorted(tuple(str(v) for v in row) for row in pool.raw.x_test)
    theirs = frame.iloc[test][columns].astype(object).where(frame.iloc[test][columns].notna(), None)
    ref = sorted(tuple(str(_text(v)) for v in row) for row in theirs.itertuples(index=False))
    assert ours == ref, f"seed {seed}: tunelab's test split differs from the reference's"


def _text(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v if v is None or isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def penguins(seeds: int) -> None:
    frame = penguins_frame()
    rows = []
    for s in range(seeds):
        train, test = split(frame, s)
        check_same_split(frame, s, test)
        r = tunelab_run(s, [])
        rows.append((s, logistic_accuracy(frame, train, test), hgb_accuracy(frame, train, test, s), r))
        print(
            f"seed {s}: logistic {rows[-1][1]:.4f}  hgb {rows[-1][2]:.4f}  "
            f"tunelab mlp {r.test['accuracy']:.4f} (val {r.val['accuracy']:.4f}, {r.epochs} epochs, "
            f"best {r.best_epoch})",
            flush=True,
        )
    logistic = statistics.mean(r[1] for r in rows)
    hgb = statistics.mean(r[2] for r in rows)
    mlp = [r[3].test["accuracy"] for r in rows]
    goal = max(logistic, hgb)
    print(f"\nmean test accuracy over {seeds} stratified 80/20 splits (seeds 0..{seeds - 1}):")
    print(f"  logistic (one-hot)        {logistic:.4f}")
    print(f"  hgb (native categories)   {hgb:.4f}")
    spread = f" ± {statistics.stdev(mlp):.4f} (std)" if len(mlp) > 1 else ""
    print(f"  tunelab {EXAMPLE.name}  {statistics.mean(mlp):.4f}{spread}")
    verdict = "met" if statistics.mean(mlp) >= goal else "missed"
    print(f"goal: >= the better reference ({goal:.4f}): {verdict}")


def tune(seeds: int) -> None:
    print(f"val accuracy (mean over the splits of seeds 0..{seeds - 1}); test is not read", flush=True)
    for name, overrides in CANDIDATES.items():
        vals = []
        for s in range(seeds):
            sets = [f"data.split_seed={s}", f"train.seed={s}", *QUIET, *overrides]
            r = tunelab.fit(tunelab.load_recipe(EXAMPLE, sets), save=False, evaluate_test=False)
            vals.append(r.val["accuracy"])
        print(f"  {statistics.mean(vals):.4f}  {name}  ({', '.join(f'{v:.3f}' for v in vals)})", flush=True)


ABLATION_RECIPES: dict[str, dict[str, Any]] = {
    "digits": {
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [64], "dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 15, "batch_size": 64},
    },
    "breast_cancer": {
        "data": {"name": "breast_cancer"},
        "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 30, "batch_size": 32},
    },
}


def ablation(seeds: int) -> None:
    for name, base in ABLATION_RECIPES.items():
        recipe = {
            **base,
            "train": {**base["train"], "threads": 1, "efficiency": False, "tensorboard": False},
            "ablation": {"values": {"preprocess.scaling": ["none", "minmax"]}, "remove_regularizers": False},
        }
        with tempfile.TemporaryDirectory() as tmp:
            result = run_ablation(recipe, seeds=seeds, storage=f"sqlite:///{tmp}/s.db")
        print(f"\n{name}: val accuracy over {seeds} seeds (base: preprocess.scaling=standard)")
        for v in result.variants:
            s = v.summary
            mean = f"{s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]" if s is not None else "-"
            diff = ""
            if v.difference is not None:
                d = v.difference
                diff = f"  vs base {d.mean:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}]  {v.verdict}"
            print(f"  {v.variant.name:28s} {mean}{diff}")
        if result.test is not None:
            t = result.test
            best = f", {result.best} {t.best.mean:.4f}" if t.best is not None else ""
            print(f"  test {t.metric} (read once, after the choice): base {t.base.mean:.4f}{best}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tune", action="store_true", help="score the candidate recipes on val only")
    parser.add_argument(
        "--ablation", action="store_true", help="scaling ablations on digits and breast_cancer"
    )
    args = parser.parse_args()
    if args.tune:
        tune(args.seeds)
    elif args.ablation:
        ablation(args.seeds)
    else:
        penguins(args.seeds)


if __name__ == "__main__":
    main()
