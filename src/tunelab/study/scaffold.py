"""What the studies share: the recipe they start from, the metric they compare, how one run is made
and kept, and what makes two studies the same.

* ``study_recipe``: the base recipe from a path, a mapping or a Recipe, with ``--set`` overrides.
* ``compared_metric``: the val metric every study compares (and compress reports): the recipe's
  ``train.monitor``, ``auto`` resolved for the data's task (``tunelab.spec.resolve_auto_monitor``,
  as the loop does), read on the val split (a ``train.loss`` monitor compares ``val.loss``).
* ``QUIET_OVERRIDES``: what every study run leaves out (timing, TensorBoard files).
* ``RunOutcome`` / ``train_run``: what one run gives a study, and the default runner (``fit``).
* ``StudyRuns``: the runs of an ablation or a cross-validation, each made once and kept in a
  ``RunStore`` keyed on ``study_identity``; counts what it computed and reused.
* ``override_text`` / ``value_label``: a value as ``--set`` reads it and as a study names it.

A search keeps its own trials (``tunelab.study.search``) but reads its default objective from
``compared_metric`` too; every study quiets Optuna's log with ``tunelab.study.storage.optuna_quiet``.

    >>> from tunelab.recipe import load_recipe
    >>> compared_metric(load_recipe({"train": {"monitor": "auto"}}), "regression")
    ComparedMetric(monitor='val.loss', metric='loss', mode='min')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from optuna.storages import BaseStorage

from tunelab.data import DataBundle
from tunelab.io import finite_scalars
from tunelab.recipe import Recipe, load_recipe
from tunelab.spec import monitor_mode, resolve_auto_monitor
from tunelab.study.runstore import RunStore, StoredRun, canonical

# Latency measurement and TensorBoard files cost seconds per run and change no metric compared.
QUIET_OVERRIDES = ("train.efficiency=false", "train.tensorboard=false")
# Fields that do not change what is learned or measured: two recipes differing only here share
# their runs (a logger such as MLflow only copies what the run directory holds). The thread count
# is not one of them: it changes the order of float sums, and that was seen to flip a val
# prediction of a digits MLP.
_NO_EFFECT = {("train", "tensorboard"), ("train", "efficiency"), ("train", "loggers")}
# The default study name starts with the command that makes it: ablate-iris-mlp, cv-iris-mlp.
_NAME_PREFIX = {"ablation": "ablate"}


def study_recipe(recipe: Recipe | str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Recipe:
    """The base recipe of a study: ``recipe`` loaded (a path or a mapping) with ``overrides`` applied."""
    if isinstance(recipe, Recipe) and not overrides:
        return recipe
    return load_recipe(recipe, overrides)


@dataclass(frozen=True)
class ComparedMetric:
    """The metric a study compares runs on: always a val metric (``val.<metric>``)."""

    monitor: str  # the recipe's monitor, auto resolved: "val.accuracy", "val.loss", "train.loss"
    metric: str  # the key of RunOutcome.val compared: "accuracy", "loss"
    mode: Literal["max", "min"]

    @property
    def objective(self) -> str:
        """``val.<metric>``: what a search optimizes by default."""
        return f"val.{self.metric}"

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.mode == "max" else "minimize"


def compared_metric(recipe: Recipe, task: str | None) -> ComparedMetric:
    """The val metric ``recipe`` is compared on, and its direction.

    ``task`` (the data's: "classification" or "regression") is needed only when ``train.monitor``
    is ``auto``: a caller that would load the data just to learn it may pass None otherwise.

    >>> from tunelab.recipe import load_recipe
    >>> compared_metric(load_recipe({"train": {"monitor": "train.loss"}}), None).objective
    'val.loss'
    """
    if recipe.train.monitor == "auto" and task is None:
        raise ValueError("train.monitor is auto: the data's task is needed to resolve it")
    monitor = resolve_auto_monitor(recipe.train.monitor, task or "")
    return ComparedMetric(monitor, monitor.split(".", 1)[1], monitor_mode(monitor))


# --- one run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """What one training run gives an ablation or a cross-validation (what a ``runner`` returns).

    ``val`` / ``test``: the scalar metrics of the evaluated weights (``test`` is ignored for
    selection runs, whose bundle holds no test split).
    """

    status: str
    val: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0
    message: str = ""
    run_dir: str | None = None
    # What the evaluated model costs in size: a method's price beside its effect (pruning,
    # quantization, width). No timing: latency would cost seconds per run and add noise.
    size: dict[str, int] = field(default_factory=dict)  # params, nonzero, size_bytes


# runner(recipe, bundle, out) -> RunOutcome; the default trains with tunelab.fit.
Runner = Callable[[Recipe, DataBundle, "str | Path | None"], RunOutcome]


def train_run(recipe: Recipe, bundle: DataBundle, out: str | Path | None = None) -> RunOutcome:
    """The default runner: ``tunelab.fit`` on ``bundle`` (a run directory only when ``out`` is given).

    >>> from tunelab.recipe import load_recipe  # doctest: +SKIP
    >>> r = load_recipe({"data": {"name": "iris"}, "train": {"epochs": 2}})  # doctest: +SKIP
    >>> train_run(r, load_data(r.data)).status  # doctest: +SKIP
    'completed'
    """
    from tunelab.metrics.efficiency import count_parameters, model_size_bytes
    from tunelab.train import fit

    # overwrite: a study's run directory is its own; a run a killed session left is made again.
    result = fit(recipe, data=bundle, save=out is not None, out=out, overwrite=out is not None)
    size = {}
    if result.model is not None:
        counts = count_parameters(result.model)
        size = {"params": counts["params"], "nonzero": counts["nonzero"]}
        size["size_bytes"] = model_size_bytes(result.model)
    return RunOutcome(
        status=result.status,
        # Only the scalar metrics: the per-class report and the confusion matrix stay in run directories.
        val=finite_scalars(result.val),
        test=finite_scalars(result.test),
        seconds=result.train_seconds,
        epochs=result.epochs,
        message=result.message,
        run_dir=result.run_dir,
        size=size,
    )


# --- what makes two studies the same ----------------------------------------------------------------


def study_free_raw(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as plain data, without its ``ablation:`` and ``search:`` sections."""
    # A study's runs are plain recipes: without the ablation (and search) sections, a variant that
    # adds a method of ablation.add is not rejected for naming it twice.
    raw = recipe.to_dict()
    raw.pop("ablation", None)
    raw.pop("search", None)
    return raw


def study_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a resolved recipe dict that change a run's result (what a stored study keys on)."""
    out = {k: v for k, v in raw.items() if k not in ("ablation", "search")}
    out["train"] = {k: v for k, v in raw.get("train", {}).items() if ("train", k) not in _NO_EFFECT}
    return out


def study_fingerprint(raw: Mapping[str, Any]) -> str:
    """``study_identity`` as one text: two recipes with the same fingerprint give the same runs."""
    return canonical(study_identity(raw))


def override_text(path: str, value: Any) -> str:
    """``path=value`` as ``--set`` reads it.

    >>> override_text("model.hidden", [8]), override_text("optimizer.name", "sgd")
    ('model.hidden=[8]', 'optimizer.name="sgd"')
    """
    # JSON is valid YAML: the override reads back as exactly this value (a string stays a string).
    return f"{path}={json.dumps(value)}"


def value_label(value: Any) -> str:
    """How a value appears in a variant name: 0.01, false, adamw, [64, 64], {decay: 0.99}."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_label(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


# --- the runs of a study ------------------------------------------------------------------------


class StudyRuns:
    """The runs of one ablation or cross-validation, each made once and kept in the storage.

    A run is the base recipe (without its study sections) with the run's overrides and
    ``QUIET_OVERRIDES``, trained by ``runner(recipe, bundle, out)``; its value is the compared val
    metric. The stored study is keyed on the base recipe's ``study_identity`` and ``study``
    (what else the study's numbers depend on, such as the metric): another recipe is refused.
    With ``seed_in_keys``, each run's key holds its own seed, so the base seed only says which
    runs to take: a study started at ``train.seed=0`` serves ``train.seed=2`` with the seeds they
    share. ``computed`` and ``reused`` count what ``run`` did. The default study name is
    ``<kind>-<dataset>-<model>`` (``ablate-iris-mlp``); the default runner ``train_run``.
    """

    def __init__(
        self,
        base: Recipe,
        *,
        kind: str,
        storage: str | BaseStorage | None,
        study_name: str | None,
        metric: ComparedMetric,
        runner: Runner | None,
        study: Mapping[str, Any],
        seed_in_keys: bool = False,
    ) -> None:
        self.base_raw = study_free_raw(base)
        self.metric, self.runner = metric, runner or train_run
        study_name = study_name or f"{_NAME_PREFIX.get(kind, kind)}-{base.data.name}-{base.model.name}"
        identity = study_identity(self.base_raw)
        if seed_in_keys:
            identity["train"] = {k: v for k, v in identity["train"].items() if k != "seed"}
        identity["study"] = dict(study)
        self.store = RunStore(storage, study_name, kind=kind, recipe=identity, direction=metric.direction)
        self.where = self.store.where
        self.computed = self.reused = 0

    def run(
        self,
        key: Mapping[str, Any],
        overrides: Sequence[str],
        bundle: DataBundle,
        out: str | Path | None = None,
        *,
        keep_test: bool = False,
        attrs: Mapping[str, Any] | None = None,
    ) -> StoredRun:
        """The stored run of ``key``, or train it and store it (with ``attrs`` beside its figures).

        ``keep_test``: keep the run's test metrics and run directory; the other runs hold val or a
        held-out fold in their bundle's test slot, which is nothing to keep.
        """

        def compute() -> tuple[str, float | None, dict[str, Any]]:
            recipe = load_recipe(self.base_raw, [*overrides, *QUIET_OVERRIDES])
            o = self.runner(recipe, bundle, out)
            record = {**(attrs or {}), "val": o.val, "seconds": o.seconds, "epochs": o.epochs}
            record.update(message=o.message, **o.size)
            if keep_test:
                record.update(test=o.test, run_dir=o.run_dir)
            return o.status, o.val.get(self.metric.metric), record

        run = self.store.run(key, compute)
        if run.cached:
            self.reused += 1
        else:
            self.computed += 1
        return run
