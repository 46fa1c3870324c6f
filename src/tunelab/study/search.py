"""Hyperparameter search on Optuna: ``run_search(recipe) -> SearchResult`` and ``run_worker``.

A search is an Optuna study in an RDB storage (``tunelab.study.storage``). Each trial samples the
recipe's ``search:`` space (``tunelab.study.space``), trains the trial's recipe with ``fit`` and
returns the objective(s) read from the RunResult:

* ``val.<metric>`` (``val.accuracy``, ``val.loss``, ``val.f1``, ...), the direction inferred from
  the metric (``tunelab.recipe.monitor_mode``). The default is the recipe's monitored metric. The
  test split is never an objective: it is read once, by the final runs.
* costs from ``RunResult.efficiency``: ``latency_ms``, ``params``, ``size_bytes``, ``flops``,
  ``train_seconds`` (minimized) and ``throughput`` (maximized). Several objectives give a Pareto
  front (e.g. ``val.accuracy,latency_ms``).

Each epoch, a trial reports its objective metric to Optuna (``PruneOnEpoch``, a tunelab Method);
with a pruner (median, ASHA, Hyperband; one ``val.*`` objective only) a trial the pruner judges
hopeless stops after that epoch and ends PRUNED.

A run that diverges (loss NaN/inf) also ends PRUNED, with its message in the trial's user
attributes: it counts as a spent trial (so a space that often diverges still ends after
``trials`` trials), and Optuna's samplers rank pruned trials below every completed one, so TPE
steers away from the diverging region instead of ignoring it, as it would a FAIL. A trial whose
recipe is invalid ends FAIL with the error (and does not count); ``trials`` such failures stop
the search with that error.

Workers. Everything a worker needs (the resolved base recipe, objectives, sampler, pruner and
the trial budget) lives in the study's user attributes, so ``tunelab worker --study NAME
--storage URL`` joins from any machine with nothing else. ``--workers K`` starts K such worker
processes here, each with ``cores // K`` torch threads. The budget is exact across workers: a
worker starts a trial only while COMPLETE + PRUNED + RUNNING trials are fewer than the budget,
and a trial that two workers started at the same moment past the budget is dropped before it
trains (FAIL, user attribute ``surplus``). Optuna's ``MaxTrialsCallback`` counts only trials that
have ended, so two workers finishing together would overshoot; counting running trials closes
that gap. When the running trials fill the budget, idle workers wait: if a worker dies, its trial
is failed by the heartbeat check (``optuna.storages.fail_stale_trials``) and retried with the
same parameters (``RetryHeartbeatStaleTrialCallback``, up to 3 times) by whoever is left.

Running the same search again resumes it: trials that ended count toward the budget and are
never recomputed. Single-worker studies are reproducible: the sampler's seed comes from
``train.seed`` (and the number of trials already in the study, so a resumed study draws new
points instead of repeating its first ones).

At the end, the best trial's recipe is written fully resolved (no ``search:`` section) to
``<out_dir>/<study>/best.yaml``, retrained on ``final_seeds`` seeds (``train.seed`` ..
``train.seed + S - 1``), and each final run reads the test split once; the objective's val and
test values are summarized as mean ± 95% CI (``tunelab.study.stats.summarize``).

    >>> from tunelab.study.search import run_search
    >>> r = run_search({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]},
    ...                 "train": {"epochs": 3},
    ...                 "search": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}}},
    ...                trials=4, storage="sqlite:///runs/doc.db", final_seeds=2)  # doctest: +SKIP
    >>> r.best.value, r.best.params, r.final.metrics[0].test.mean  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import RecipeError, TunelabError
from tunelab.io import atomic_write_text, finite
from tunelab.methods import Method, TrainState
from tunelab.recipe import Recipe, load_recipe
from tunelab.redact import mask_url, redact_text
from tunelab.runs import RunResult
from tunelab.spec import MONITOR_METRICS, monitor_mode, resolve_auto_monitor
from tunelab.study.options import (
    COSTS,
    DEFAULT_FINAL_SEEDS,
    DEFAULT_OUT,
    DEFAULT_TRIALS,
    PRUNERS,
    SAMPLERS,
    Direction,
)
from tunelab.study.space import check_space, suggest, trial_recipe
from tunelab.study.storage import STORAGE_ENV, heartbeat_settings, open_storage, storage_url

if TYPE_CHECKING:
    from tunelab.study.stats import Summary

# Costs that need the end-of-run efficiency measurement (train.efficiency); train_seconds does not.
MEASURED_COSTS = frozenset(COSTS) - {"train_seconds"}
CONFIG_ATTR = "tunelab"  # study user attribute holding the StudyConfig
KIND_ATTR = "tunelab_kind"  # the study type, as every tunelab study records it (search, ablation, ...)
FINAL_ATTR = "tunelab_final"  # study user attribute holding the final runs' report
# A worker waiting for the last running trials looks again this often (seconds); the heartbeat
# grace period, not this, bounds how long a dead worker's trial goes unnoticed.
POLL_SECONDS = 1.0


# --- objectives ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One value a search optimizes: ``val.<metric>`` or a cost, with its direction.

    >>> Objective.parse("val.loss")
    Objective(name='val.loss', direction='minimize')
    >>> Objective.parse("throughput").direction
    'maximize'
    """

    name: str
    direction: Direction

    @property
    def metric(self) -> str | None:
        """The val metric ("accuracy"), or None for a cost."""
        return self.name.split(".", 1)[1] if self.name.startswith("val.") else None

    @classmethod
    def parse(cls, text: str) -> Objective:
        name = text.strip()
        if name in COSTS:
            return cls(name, COSTS[name])
        split, _, metric = name.partition(".")
        if split == "val" and metric in MONITOR_METRICS:
            return cls(name, "minimize" if monitor_mode(name) == "min" else "maximize")
        allowed = "val.<metric> with metric one of " + ", ".join(sorted(MONITOR_METRICS))
        allowed += ", or a cost: " + ", ".join(COSTS)
        if split in ("test", "train"):
            allowed += f" (a search never selects on the {split} split)"
        raise RecipeError("--objective", text, f"must be {allowed}")

    def read(self, result: RunResult) -> float:
        """The objective's value in a finished run."""
        source = result.val if self.metric else result.efficiency
        key = self.metric or self.name
        if key not in source:
            raise TunelabError(f"objective {self.name}: the run has no {key!r} (has {', '.join(source)})")
        return float(source[key])


def parse_objectives(spec: str | Sequence[str] | None, monitor: str) -> list[Objective]:
    """Objectives from ``"val.accuracy,latency_ms"`` (or a list); ``None`` gives ``[monitor]``.

    >>> [o.name for o in parse_objectives("val.accuracy, latency_ms", "val.accuracy")]
    ['val.accuracy', 'latency_ms']
    """
    if spec is None or spec == "" or spec == []:
        names = [monitor]
    else:
        names = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    objectives = [Objective.parse(n) for n in names]
    seen = [o.name for o in objectives]
    if len(set(seen)) != len(seen):
        raise RecipeError("--objective", ",".join(seen), "each objective may appear once")
    return objectives


def resolve_monitor(recipe: Recipe) -> str:
    """The recipe's monitored val metric, resolving ``auto`` from the data's task (loads the data)."""
    if recipe.train.monitor.startswith("train."):
        return "val.loss"  # a search selects on val; train.loss is the monitor of runs without val
    if recipe.train.monitor != "auto":
        return recipe.train.monitor
    from tunelab.data import load_data

    return resolve_auto_monitor("auto", load_data(recipe.data).task)


# --- what a worker needs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyConfig:
    """Everything a worker needs to run trials of a search, kept in the study's user attributes."""

    recipe_yaml: str  # the resolved base recipe, with its search section
    objectives: tuple[Objective, ...]
    sampler: str
    pruner: str
    trials: int  # the budget: COMPLETE + PRUNED trials the study ends with
    seed: int  # train.seed of the base recipe: seeds the samplers of local workers

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def recipe(self) -> Recipe:
        return load_recipe(yaml.safe_load(self.recipe_yaml))

    def to_attrs(self) -> dict[str, Any]:
        return {
            "kind": "search",
            "recipe": self.recipe_yaml,
            "objectives": [o.name for o in self.objectives],
            "sampler": self.sampler,
            "pruner": self.pruner,
            "trials": self.trials,
            "seed": self.seed,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], study_name: str) -> StudyConfig:
        a = attrs.get(CONFIG_ATTR)
        if not isinstance(a, Mapping) or a.get("kind") != "search":
            raise TunelabError(
                f"study {study_name!r} was not made by `tunelab search` (no search settings in its "
                "user attributes); start it with `tunelab search RECIPE --study NAME`"
            )
        return cls(
            recipe_yaml=a["recipe"],
            objectives=tuple(Objective.parse(n) for n in a["objectives"]),
            sampler=a["sampler"],
            pruner=a["pruner"],
            trials=int(a["trials"]),
            seed=int(a["seed"]),
        )


def make_sampler(name: str, seed: int | None, n_objectives: int = 1) -> optuna.samplers.BaseSampler:
    """The Optuna sampler for ``--sampler NAME``.

    >>> type(make_sampler("tpe", seed=0)).__name__
    'TPESampler'
    """
    s = optuna.samplers
    if name == "tpe":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # multivariate + group: one joint density per set of parameters that occur together
            # (an optimizer and its own momentum), which Optuna finds better than independent
            # densities on conditional spaces. constant_liar: running trials count as bad
            # guesses, so parallel workers spread out.
            return s.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        if n_objectives > 1:
            raise TunelabError("--sampler cmaes optimizes one objective; use tpe, nsga2 or gp for several")
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise TunelabError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
        # Categorical and conditional dimensions fall back to random sampling, which is expected.
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        return s.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return s.NSGAIISampler(seed=seed)
    raise RecipeError("--sampler", name, "must be one of " + ", ".join(SAMPLERS))


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner for ``--pruner NAME``; steps are epochs (1 .. ``epochs``).

    >>> type(make_pruner("asha", epochs=10)).__name__
    'SuccessiveHalvingPruner'
    """
    p = optuna.pruners
    if name == "none":
        return p.NopPruner()
    if name == "median":
        # Optuna's defaults: the first 5 trials run in full to give the median something to stand on.
        return p.MedianPruner(n_startup_trials=5)
    if name == "asha":
        # Rungs at 1, 3, 9, ... epochs; each keeps the best third (reduction factor 3).
        return p.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    raise RecipeError("--pruner", name, "must be one of " + ", ".join(PRUNERS))


# --- one trial ------------------------------------------------------------------------------------------


class PruneOnEpoch(Method):
    """Reports ``metric`` to the Optuna trial after each epoch; stops the fit when it should prune.

    The loop then ends with status ``stopped_early`` and the objective raises
    ``optuna.TrialPruned``. With ``prune=False`` it only reports (learning curves in the storage).

    >>> import optuna
    >>> trial = optuna.create_study().ask()
    >>> m = PruneOnEpoch(trial, "val.accuracy")
    >>> m.pruned_at is None
    True
    """

    name = "optuna_pruning"

    def __init__(self, trial: optuna.trial.Trial, metric: str, prune: bool = True) -> None:
        self.trial, self.metric, self.prune = trial, metric, prune
        self.pruned_at: int | None = None

    def epoch_end(self, state: TrainState) -> None:
        value = state.last(self.metric)
        step = state.epoch + 1  # epochs done: the resource ASHA and Hyperband allocate
        self.trial.report(value, step)
        if self.prune and self.trial.should_prune():
            state.stop = True
            state.stop_reason = f"pruned after epoch {step}: {self.metric} {value:.4f}"
            self.pruned_at = step


def worker_id() -> str:
    """``host:pid`` of this process, kept with each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Dropped(TunelabError):
    """The trial started past the budget (another worker took the last slot); it never trains."""


class TrialRunner:
    """The objective function of a search: one trial = suggest, fit, read the objectives."""

    def __init__(self, config: StudyConfig, threads: int | None = None) -> None:
        self.config = config
        self.recipe = config.recipe()
        needs_efficiency = any(o.name in MEASURED_COSTS for o in config.objectives)
        # Per-trial settings that are about this worker, not the searched recipe: kept out of
        # the trial's "overrides" (and so out of best.yaml).
        self.run_overrides = [] if needs_efficiency else ["train.efficiency=false"]
        if threads is not None:
            self.run_overrides.append(f"train.threads={threads}")
        self._data: dict[str, Any] = {}
        self.budget = config.trials  # kept current by run_worker (a resumed search may raise it)
        single = len(config.objectives) == 1 and config.objectives[0].metric is not None
        self.report_metric = config.objectives[0].name if single else None

    def _bundle(self, recipe: Recipe) -> Any:
        # Trials share one DataBundle per data and preprocess sections: loading, splitting and
        # preprocessing once per worker (a searched preprocess.* setting gets one per value).
        from tunelab.data import load_data

        d = recipe.to_dict()
        key = yaml.safe_dump({"data": d["data"], "preprocess": d["preprocess"]}, sort_keys=True)
        if key not in self._data:
            self._data[key] = load_data(recipe.data, recipe.preprocess)
        return self._data[key]

    def __call__(self, trial: optuna.trial.Trial) -> float | list[float]:
        from tunelab.train import fit

        if _past_budget(trial.study, trial.number, self.budget):
            trial.set_user_attr("surplus", True)
            raise _Dropped(f"trial {trial.number} started past the budget of {self.budget}; dropped")
        overrides = suggest(trial, self.recipe)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", worker_id())  # which machine and process ran it
        try:
            recipe = trial_recipe(self.recipe, [*overrides, *self.run_overrides])
        except RecipeError as e:
            trial.set_user_attr("error", redact_text(str(e)))
            raise
        method = (
            PruneOnEpoch(trial, self.report_metric, self.config.pruner != "none")
            if self.report_metric
            else None
        )
        try:
            result = fit(
                recipe,
                data=self._bundle(recipe),
                save=False,
                methods=[method] if method else [],
                evaluate_test=False,  # a trial is a choice: the test split stays unread
            )
        except TunelabError as e:
            trial.set_user_attr("error", redact_text(str(e)))
            raise
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("val", _scalars(result.val))
        if result.efficiency:
            trial.set_user_attr("costs", _scalars(result.efficiency))
        if result.message:
            trial.set_user_attr("message", redact_text(result.message))
        if method is not None and method.pruned_at is not None:
            raise optuna.TrialPruned(result.message)
        if result.status == "diverged":
            raise optuna.TrialPruned(f"diverged: {result.message}")
        values = [o.read(result) for o in self.config.objectives]
        return values[0] if len(values) == 1 else values


def _scalars(d: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in d.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _past_budget(study: optuna.Study, number: int, budget: int) -> bool:
    """True when ``budget`` trials already ended or started before trial ``number``."""
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    ahead = sum(1 for t in trials if t.state != TrialState.RUNNING or t.number < number)
    return ahead >= budget


# --- workers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    done: int  # COMPLETE + PRUNED: what the budget counts
    running: int
    errors: int  # FAIL with an error of the trial's own (not a dead worker, not dropped)


def _counts(study: optuna.Study) -> Counts:
    done = running = errors = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            errors += 1
    return Counts(done, running, errors)


def _fail_stale(study: optuna.Study) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    # Optuna logs each trial (and a traceback for each failed one); tunelab reports trials itself.
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def worker_seed(base: int, index: int, existing: int) -> int:
    """A sampler seed from the recipe's seed, the worker's index and the trials already there.

    Distinct workers and resumed studies get distinct streams; the same study started the same
    way gets the same one.

    >>> worker_seed(0, 0, 0) == worker_seed(0, 0, 0) != worker_seed(0, 1, 0)
    True
    """
    return int(np.random.SeedSequence([base, index, existing]).generate_state(1)[0])


def run_worker(
    study_name: str,
    storage: str | None = None,
    *,
    threads: int | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None = None,
) -> int:
    """Run trials of an existing search study until its budget is spent; return how many ran.

    Needs only the study's name and storage: the recipe, objectives, sampler, pruner and budget
    are read from the study. ``seed`` seeds this worker's sampler (None: fresh entropy, as for a
    worker joining from another machine). ``timeout`` (seconds): start no trial after it.
    ``on_trial(trial, objective_names)`` is called with each trial this worker ends.

    >>> run_worker("mnist1d_search", "postgresql://tunelab@db/studies")  # doctest: +SKIP
    3
    """
    store = open_storage(storage)
    try:
        probe = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        raise TunelabError(
            f"--study {study_name}: no such study in {_shown_url(storage_url(storage))}; "
            "`tunelab studies --storage URL` lists them"
        ) from None
    config = StudyConfig.from_attrs(probe.user_attrs, study_name)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    study = optuna.load_study(
        study_name=study_name,
        storage=store,
        sampler=make_sampler(config.sampler, seed, len(config.objectives)),
        pruner=make_pruner(config.pruner, config.recipe().train.epochs),
    )
    runner = TrialRunner(config, threads)
    names = [o.name for o in config.objectives]
    callbacks = [lambda _study, trial: on_trial(trial, names)] if on_trial is not None else None
    started = time.monotonic()
    ran = 0
    with _optuna_quiet():
        while timeout is None or time.monotonic() - started < timeout:
            # The budget is re-read each time: `tunelab search --trials N` on a running study raises it.
            budget = StudyConfig.from_attrs(study.user_attrs, study_name).trials
            _fail_stale(study)
            c = _counts(study)
            if c.done >= budget:
                break
            if c.errors >= budget:
                raise TunelabError(f"study {study_name}: {c.errors} trials failed: {_first_error(study)}")
            if c.done + c.running >= budget:
                # The last trials are running elsewhere; if their worker dies, one of them comes
                # back here as a retry once its heartbeat goes stale.
                time.sleep(POLL_SECONDS)
                continue
            runner.budget = budget
            study.optimize(
                runner,
                n_trials=1,
                catch=(TunelabError,),
                callbacks=callbacks,
                gc_after_trial=False,
                show_progress_bar=False,
            )
            ran += 1
    return ran


def _first_error(study: optuna.Study) -> str:
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if "error" in t.user_attrs:
            return f"trial {t.number}: {t.user_attrs['error']}"
    return "no message"


def _wait_all(procs: Sequence[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def run_local_workers(
    study_name: str,
    storage: str,
    workers: int,
    *,
    base_seed: int,
    existing: int,
    timeout: float | None = None,
    quiet: bool = True,
    threads: int | None = None,
) -> list[int]:
    """Run ``workers`` `tunelab worker` processes on this machine, ``cores // workers`` threads each
    (or ``threads``).

    Returns their exit codes. Each worker prints its own errors on stderr.
    """
    threads = threads or max(1, available_cores() // workers)
    env = dict(os.environ)
    # Native thread pools (OpenMP, MKL) size themselves from these before torch can cap them.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # OpenMP threads that spin while waiting burn the cores the other workers need; on a busy
    # 2-core machine a 2-thread worker ran 5x slower spinning than sleeping (PASSIVE).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The URL goes through the environment, not the command line: `ps` shows any user's argv,
    # and the URL may hold a password.
    env[STORAGE_ENV] = storage
    procs = []
    for i in range(workers):
        cmd = [
            sys.executable,
            "-m",
            "tunelab.cli",
            "worker",
            "--study",
            study_name,
            "--threads",
            str(threads),
            "--seed",
            str(worker_seed(base_seed, i, existing)),
        ]
        if timeout is not None:
            cmd += ["--timeout", str(timeout)]
        if quiet:
            cmd.append("--quiet")
        procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C on a terminal reaches the workers too: give them a moment to mark their trials
        # failed and exit, and only then pass the interrupt on to any that did not get it.
        _wait_all(procs, 5)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _wait_all(procs, 30)
        for p in procs:
            if p.poll() is None:
                p.kill()  # its running trial goes stale and is retried on the next run
        raise
    return codes


# --- results ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a search reports it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    params: dict[str, Any]
    value: float | None  # the (first) objective's value
    values: list[float] | None  # every objective's value
    duration_s: float | None
    epochs: int | None
    message: str  # why pruned / failed; "" otherwise
    retry_of: int | None  # the number of the trial this one retries (a dead worker's)

    @classmethod
    def of(cls, t: FrozenTrial) -> TrialRecord:
        a = t.user_attrs
        # Masked on reading too: a study written by an older tunelab may hold a raw password.
        message = redact_text(a.get("error") or a.get("message") or "")
        if a.get("surplus"):
            message = "dropped: started past the budget"
        elif t.state == TrialState.FAIL and not message:
            message = "its worker stopped (no heartbeat) or was interrupted"
        return cls(
            number=t.number,
            state=t.state.name,
            params=dict(t.params),
            value=t.values[0] if t.values else None,
            values=list(t.values) if t.values else None,
            duration_s=t.duration.total_seconds() if t.duration else None,
            epochs=a.get("epochs"),
            message=message,
            retry_of=t.system_attrs.get("failed_trial"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "value": self.value,
            "values": self.values,
            "duration_s": self.duration_s,
            "epochs": self.epochs,
            "message": self.message,
            "retry_of": self.retry_of,
        }


@dataclass(frozen=True)
class Best:
    """The selected trial: the best one, or for several objectives the Pareto trial best on the first."""

    number: int
    value: float
    values: list[float]
    params: dict[str, Any]
    overrides: list[str]  # the trial's recipe = base recipe + these
    recipe_path: str | None  # best.yaml

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "value": self.value,
            "values": self.values,
            "params": self.params,
            "overrides": self.overrides,
            "recipe_path": self.recipe_path,
        }


@dataclass(frozen=True)
class FinalRun:
    """One retraining of the best recipe on one seed; test was read once, here."""

    seed: int
    status: str
    val: dict[str, float]
    test: dict[str, float]
    costs: dict[str, float]
    run_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MetricSummary:
    """An objective over the final runs: val and test for a metric, ``value`` for a cost."""

    name: str
    val: Summary | None = None
    test: Summary | None = None
    value: Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "val": self.val.to_dict() if self.val else None,
            "test": self.test.to_dict() if self.test else None,
            "value": self.value.to_dict() if self.value else None,
        }


@dataclass(frozen=True)
class FinalReport:
    """The best recipe retrained on several seeds: per-seed results and mean ± CI per objective."""

    trial: int  # the best trial's number
    seeds: list[int]
    runs: list[FinalRun]
    metrics: list[MetricSummary]
    note: str = ""  # e.g. why there is no summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "seeds": self.seeds,
            "runs": [r.to_dict() for r in self.runs],
            "metrics": [m.to_dict() for m in self.metrics],
            "note": self.note,
        }

    @classmethod
    def from_runs(cls, trial: int, runs: Sequence[FinalRun], objectives: Sequence[Objective]) -> FinalReport:
        from tunelab.study.stats import summarize  # scipy: only the final phase needs it

        ok = [r for r in runs if r.status in ("completed", "stopped_early")]
        metrics = []
        note = ""
        if not ok:
            note = "no final run finished: " + "; ".join(f"seed {r.seed} {r.status}" for r in runs)
        else:
            for o in objectives:
                if o.metric:
                    metrics.append(
                        MetricSummary(
                            o.name,
                            val=summarize([r.val[o.metric] for r in ok]),
                            test=summarize([r.test[o.metric] for r in ok]),
                        )
                    )
                elif all(o.name in r.costs for r in ok):
                    # Costs are positive and spread multiplicatively: a log-scale interval.
                    costs = [r.costs[o.name] for r in ok]
                    method = "log-t" if all(c > 0 for c in costs) else "t"
                    metrics.append(MetricSummary(o.name, value=summarize(costs, method=method)))
            if len(ok) < len(runs):
                note = f"{len(runs) - len(ok)} of {len(runs)} final runs did not finish and are left out"
        return cls(trial, [r.seed for r in runs], list(runs), metrics, note)


@dataclass(frozen=True)
class SearchResult:
    """What ``run_search`` returns; ``to_dict()`` is what ``tunelab search --json`` prints."""

    study: str
    storage: str  # the URL, password hidden
    objectives: list[Objective]
    trials: list[TrialRecord]
    best: Best | None
    pareto_front: list[TrialRecord]  # several objectives only
    final: FinalReport | None
    out_dir: str
    budget: int

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.objectives]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return finite(
            {
                "study": self.study,
                "storage": self.storage,
                "objectives": [o.name for o in self.objectives],
                "directions": self.directions,
                "budget": self.budget,
                "counts": self.counts(),
                "best": self.best.to_dict() if self.best else None,
                "pareto_front": [t.to_dict() for t in self.pareto_front],
                "trials": [t.to_dict() for t in self.trials],
                "final": self.final.to_dict() if self.final else None,
                "out_dir": self.out_dir,
            }
        )


def _shown_url(url: str) -> str:
    """The storage URL without its password (nor one in the query), for output."""
    return mask_url(url)


def select_best(study: optuna.Study, n_objectives: int) -> FrozenTrial | None:
    """The best COMPLETE trial; with several objectives, the Pareto trial best on the first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    if n_objectives == 1:
        return study.best_trial
    front = study.best_trials
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    return min(front, key=lambda t: (sign * t.values[0], t.number))


# --- the search -----------------------------------------------------------------------------------------


def default_study_name(source: str | Path | Mapping[str, Any] | Recipe, recipe: Recipe) -> str:
    """The recipe file's stem (``mnist1d_search``), else ``<dataset>-<model>``."""
    if isinstance(source, (str, Path)):
        return Path(source).stem
    return f"{recipe.data.name}-{recipe.model.name}"


def _open_study(store: Any, name: str, config: StudyConfig, trials_given: bool) -> optuna.Study:
    """Create the study, or resume it when its recipe and objectives are the same."""
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        study = optuna.create_study(storage=store, study_name=name, directions=config.directions)
        study.set_user_attr(CONFIG_ATTR, config.to_attrs())
        study.set_user_attr(KIND_ATTR, "search")
        return study
    old = StudyConfig.from_attrs(study.user_attrs, name)
    if old.recipe_yaml != config.recipe_yaml:
        raise TunelabError(
            f"study {name!r} exists with another recipe or search space; resume it with the same "
            "recipe and --set options, or start a new study with --study OTHER_NAME"
        )
    if [o.name for o in old.objectives] != [o.name for o in config.objectives]:
        raise TunelabError(
            f"study {name!r} exists with objectives {','.join(o.name for o in old.objectives)}; "
            "resume it with the same --objective, or start a new study with --study OTHER_NAME"
        )
    # The sampler and pruner may change between sessions; the budget only when given again.
    updated = StudyConfig(
        config.recipe_yaml,
        config.objectives,
        config.sampler,
        config.pruner,
        config.trials if trials_given else old.trials,
        config.seed,
    )
    study.set_user_attr(CONFIG_ATTR, updated.to_attrs())
    return study


@dataclass(frozen=True)
class PreparedSearch:
    """A search study created (or found, to resume) in its storage, ready for workers."""

    study: str
    storage: str  # the URL workers open
    config: StudyConfig
    existing: int  # trials the study had before this session


def prepare_search(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    *,
    trials: int | None = None,
    sampler: str = "tpe",
    pruner: str = "none",
    objectives: str | Sequence[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
) -> PreparedSearch:
    """Check everything, then create the study (or resume it) with what its workers need.

    ``run_search`` calls this, then runs workers. Call it yourself to start a study that workers
    on other machines (``tunelab worker --study NAME --storage URL``) or ``run_worker`` run.

    >>> s = prepare_search("examples/mnist1d_search.yaml", trials=50,
    ...                    storage="postgresql://tunelab@db/studies")  # doctest: +SKIP
    >>> s.study  # doctest: +SKIP
    'mnist1d_search'
    """
    base = load_recipe(recipe, overrides)
    if not base.search:
        raise RecipeError(
            "search",
            {},
            "the recipe has no search space; add e.g. search: {optimizer.lr: "
            "{type: loguniform, low: 1.0e-4, high: 1.0e-1}}",
        )
    check_space(base)
    if trials is not None and trials < 1:
        raise RecipeError("--trials", trials, "must be >= 1")
    objs = parse_objectives(objectives, resolve_monitor(base))
    if pruner != "none" and pruner in PRUNERS:
        if len(objs) > 1:
            raise TunelabError(
                f"--pruner {pruner}: pruning compares one value per epoch, so it needs a single "
                "objective; drop --pruner or keep one --objective"
            )
        if objs[0].metric is None:
            raise TunelabError(
                f"--pruner {pruner}: {objs[0].name} is only known after training; "
                "prune on a val.<metric> objective"
            )
    make_sampler(sampler, 0, len(objs))  # reject an unknown or unfit sampler before creating anything
    make_pruner(pruner, base.train.epochs)
    heartbeat_settings()  # a bad TUNELAB_* setting fails here, not in each worker

    url = storage_url(storage)
    name = study_name or default_study_name(recipe, base)
    config = StudyConfig(
        recipe_yaml=base.to_yaml(),
        objectives=tuple(objs),
        sampler=sampler,
        pruner=pruner,
        trials=trials if trials is not None else DEFAULT_TRIALS,
        seed=base.train.seed,
    )
    study = _open_study(open_storage(url), name, config, trials is not None)
    existing = len(study.get_trials(deepcopy=False))
    return PreparedSearch(name, url, StudyConfig.from_attrs(study.user_attrs, name), existing)


def run_search(
    recipe: str | Path | Mapping[str, Any] | Recipe,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    sampler: str = "tpe",
    pruner: str = "none",
    objectives: str | Sequence[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    final_seeds: int = DEFAULT_FINAL_SEEDS,
    out_dir: str | Path = DEFAULT_OUT,
    overrides: Sequence[str] = (),
    quiet: bool = True,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None = None,
) -> SearchResult:
    """Search the recipe's ``search:`` space, then retrain the best recipe on ``final_seeds`` seeds.

    Args:
        recipe: a YAML path, a mapping or a Recipe, with a ``search:`` section.
        trials: the budget of COMPLETE + PRUNED trials (default 20; when resuming, the stored one).
        timeout: seconds after which workers start no new trial.
        sampler: tpe, random, cmaes, gp or nsga2 (seeded from ``train.seed``).
        pruner: none, median, asha or hyperband (one ``val.*`` objective only).
        objectives: ``"val.accuracy"`` (default: the monitored metric), or several for a Pareto
            front: ``"val.accuracy,latency_ms"``.
        storage: an SQLAlchemy URL (default ``sqlite:///runs/studies.db``).
        study_name: default the recipe file's stem; an existing study of that name is resumed.
        workers: local worker processes (1: this process).
        final_seeds: retrain the best recipe on this many seeds (0: skip).
        out_dir: ``<out_dir>/<study>/best.yaml`` and ``final/seed-<s>/`` run directories.
        overrides: ``--set`` overrides applied to the recipe before anything else.
        quiet: local worker processes print nothing per trial.
        on_trial: ``on_trial(trial, objective_names)`` for each trial this process ends (workers=1).

    >>> r = run_search("examples/mnist1d_search.yaml", trials=20, workers=2)  # doctest: +SKIP
    >>> r.best.recipe_path, r.final.metrics[0].test  # doctest: +SKIP
    """
    if workers < 1:
        raise RecipeError("--workers", workers, "must be >= 1")
    if final_seeds < 0:
        raise RecipeError("--final-seeds", final_seeds, "must be >= 0")
    if timeout is not None and timeout <= 0:
        raise RecipeError("--timeout", timeout, "must be > 0 seconds")
    prepared = prepare_search(
        recipe,
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        objectives=objectives,
        storage=storage,
        study_name=study_name,
        overrides=overrides,
    )
    name, url, seed = prepared.study, prepared.storage, prepared.config.seed
    codes: list[int] = []
    if workers == 1:
        run_worker(
            name, url, seed=worker_seed(seed, 0, prepared.existing), timeout=timeout, on_trial=on_trial
        )
    else:
        codes = run_local_workers(
            name, url, workers, base_seed=seed, existing=prepared.existing, timeout=timeout, quiet=quiet
        )
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))
    if workers > 1 and any(codes):
        # A worker that died is covered by the others (its trial is retried); only a budget left
        # unspent makes it an error.
        done = _counts(study).done
        if done < prepared.config.trials and timeout is None:
            raise TunelabError(
                f"study {name}: local workers exited with codes {codes} after {done} of "
                f"{prepared.config.trials} trials; their messages are above. Running the same "
                "command again resumes the study"
            )
        print(f"warning: study {name}: local worker exit codes {codes}", file=sys.stderr)
    return _finish(study, name, url, Path(out_dir), final_seeds)


def _finish(study: optuna.Study, name: str, url: str, out_dir: Path, final_seeds: int) -> SearchResult:
    config = StudyConfig.from_attrs(study.user_attrs, name)
    base = config.recipe()
    all_trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.of(t) for t in all_trials]
    best_trial = select_best(study, len(config.objectives))
    pareto = (
        [TrialRecord.of(t) for t in sorted(study.best_trials, key=lambda t: t.number)]
        if len(config.objectives) > 1 and best_trial is not None
        else []
    )
    best = None
    final = None
    if best_trial is not None:
        overrides = list(best_trial.user_attrs.get("overrides", []))
        best_recipe = trial_recipe(base, overrides)
        study_dir = out_dir / name
        study_dir.mkdir(parents=True, exist_ok=True)
        path = study_dir / "best.yaml"
        atomic_write_text(path, best_recipe.to_yaml())
        best = Best(
            number=best_trial.number,
            value=best_trial.values[0],
            values=list(best_trial.values),
            params=dict(best_trial.params),
            overrides=overrides,
            recipe_path=str(path),
        )
        if final_seeds > 0:
            final = _final_runs(study, best_recipe, best_trial.number, final_seeds, study_dir, config)
    return SearchResult(
        study=name,
        storage=_shown_url(url),
        objectives=list(config.objectives),
        trials=records,
        best=best,
        pareto_front=pareto,
        final=final,
        out_dir=str(out_dir / name),
        budget=config.trials,
    )


def _final_runs(
    study: optuna.Study, recipe: Recipe, trial: int, n: int, study_dir: Path, config: StudyConfig
) -> FinalReport:
    """Retrain ``recipe`` on seeds train.seed .. +n-1 (reusing runs already made for this trial)."""
    from tunelab.train import fit

    seeds = [recipe.train.seed + i for i in range(n)]
    recipe_yaml = recipe.to_yaml()
    stored = study.user_attrs.get(FINAL_ATTR) or {}
    done: dict[int, FinalRun] = {}
    if stored.get("trial") == trial and stored.get("recipe") == recipe_yaml:
        for r in stored.get("runs", []):
            done[int(r["seed"])] = FinalRun(**r)
    runs = []
    for seed in seeds:
        if seed in done:  # a resumed search with the same best trial: nothing to recompute
            runs.append(done[seed])
            continue
        result = fit(recipe, overrides=[f"train.seed={seed}"], out=study_dir / "final" / f"seed-{seed}")
        runs.append(
            FinalRun(
                seed=seed,
                status=result.status,
                val=_scalars(result.val),
                test=_scalars(result.test),
                costs=_scalars(result.efficiency),
                run_dir=result.run_dir,
            )
        )
    report = FinalReport.from_runs(trial, runs, config.objectives)
    merged = {**done, **{r.seed: r for r in runs}}
    study.set_user_attr(
        FINAL_ATTR,
        finite(
            {
                "trial": trial,
                "recipe": recipe_yaml,
                "runs": [r.to_dict() for r in sorted(merged.values(), key=lambda r: r.seed)],
                "report": report.to_dict(),
            }
        ),
    )
    atomic_write_text(study_dir / "final.json", yaml.safe_dump(finite(report.to_dict()), sort_keys=False))
    return report


# --- reading studies back ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyInfo:
    """One line of `tunelab studies`."""

    name: str
    kind: str  # "search", "ablation", ... ("-" for a study tunelab did not make)
    directions: list[str]
    counts: dict[str, int]
    best_value: float | None
    started: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_studies(storage: str | None = None) -> list[StudyInfo]:
    """Every study in the storage, with trial counts by state.

    >>> [s.name for s in list_studies("sqlite:///runs/studies.db")]  # doctest: +SKIP
    ['mnist1d_search']
    """
    store = open_storage(storage, heartbeat=False)
    out = []
    for s in optuna.study.get_all_study_summaries(store, include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=store)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        kind = s.user_attrs.get(KIND_ATTR, "-")
        best = s.best_trial.values[0] if s.best_trial is not None and s.best_trial.values else None
        out.append(
            StudyInfo(
                name=s.study_name,
                kind=str(kind),
                directions=[d.name.lower() for d in s.directions],
                counts=counts,
                best_value=best,
                started=s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None,
            )
        )
    return out


@dataclass(frozen=True)
class StudyReport:
    """What `tunelab show STUDY` prints: counts, best trials, parameter importances, final runs."""

    name: str
    storage: str
    objectives: list[str]
    directions: list[str]
    budget: int | None
    counts: dict[str, int]
    best: list[TrialRecord]  # the top trials, or the Pareto front for several objectives
    importances: dict[str, dict[str, float]]  # objective -> parameter -> share (sums to 1)
    importance_note: str  # why importances are missing (for some objective), if they are
    final: dict[str, Any] | None  # FinalReport.to_dict() of the last search

    def to_dict(self) -> dict[str, Any]:
        return finite(
            {
                "name": self.name,
                "storage": self.storage,
                "objectives": self.objectives,
                "directions": self.directions,
                "budget": self.budget,
                "counts": self.counts,
                "best": [t.to_dict() for t in self.best],
                "importances": self.importances,
                "importance_note": self.importance_note,
                "final": self.final,
            }
        )


# fANOVA fits a random forest over the trials; below this it mostly describes noise.
MIN_IMPORTANCE_TRIALS = 4


def study_report(study_name: str, storage: str | None = None, top: int = 5) -> StudyReport:
    """Summarize a study: counts by state, the ``top`` trials (or the Pareto front), and each
    parameter's importance for each objective (fANOVA, seeded).

    >>> study_report("mnist1d_search").importances  # doctest: +SKIP
    {'val.accuracy': {'optimizer.lr': 0.71, 'model.dropout': 0.18, ...}}
    """
    url = storage_url(storage)
    store = open_storage(url, heartbeat=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.study.get_all_study_summaries(store, include_best_trial=False)]
        from tunelab.errors import did_you_mean

        hint = did_you_mean(study_name, names)
        raise TunelabError(
            f"study {study_name!r} is not in {_shown_url(url)}"
            + (f" ({hint})" if hint else "")
            + "; `tunelab studies --storage URL` lists them"
        ) from None
    config = (
        StudyConfig.from_attrs(study.user_attrs, study_name)
        if study.user_attrs.get(KIND_ATTR) == "search"
        else None
    )
    directions = [d.name.lower() for d in study.directions]
    names = (
        [o.name for o in config.objectives] if config else [f"objective {i}" for i in range(len(directions))]
    )
    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(directions) > 1:
        best = (
            [TrialRecord.of(t) for t in sorted(study.best_trials, key=lambda t: t.number)] if complete else []
        )
    else:
        reverse = directions[0] == "maximize"
        best = [TrialRecord.of(t) for t in sorted(complete, key=lambda t: t.values[0], reverse=reverse)[:top]]
    importances, note = _importances(study, complete, names)
    final = study.user_attrs.get(FINAL_ATTR, {}).get("report")
    return StudyReport(
        name=study_name,
        storage=_shown_url(url),
        objectives=names,
        directions=directions,
        budget=config.trials if config else None,
        counts=counts,
        best=best,
        importances=importances,
        importance_note=note,
        final=final,
    )


def _importances(
    study: optuna.Study, complete: list[FrozenTrial], names: list[str]
) -> tuple[dict[str, dict[str, float]], str]:
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {}, (
            f"parameter importances need at least {MIN_IMPORTANCE_TRIALS} complete trials "
            f"(this study has {len(complete)})"
        )
    # fANOVA reads the parameters every complete trial has; conditional ones (an optimizer's
    # momentum) are left out of the importances.
    out: dict[str, dict[str, float]] = {}
    notes = []
    for i, name in enumerate(names):
        try:
            imp = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
                target=lambda t, i=i: t.values[i],
            )
        except (RuntimeError, ValueError) as e:
            # e.g. "zero total variance": the objective is the same in every trial.
            notes.append(f"{name}: parameter importances could not be computed ({e})")
            continue
        if imp:
            out[name] = imp
        else:
            notes.append(f"{name}: no parameter appears in every complete trial, so none can be ranked")
    return out, "; ".join(notes)


__all__ = [
    "COSTS",
    "PRUNERS",
    "SAMPLERS",
    "Best",
    "FinalReport",
    "FinalRun",
    "MetricSummary",
    "Objective",
    "PreparedSearch",
    "PruneOnEpoch",
    "SearchResult",
    "StudyConfig",
    "StudyInfo",
    "StudyReport",
    "TrialRecord",
    "TrialRunner",
    "list_studies",
    "make_pruner",
    "make_sampler",
    "parse_objectives",
    "prepare_search",
    "run_search",
    "run_worker",
    "select_best",
    "study_report",
    "worker_seed",
]
