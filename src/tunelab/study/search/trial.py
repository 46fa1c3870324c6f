"""One trial of a search: suggest the trial's recipe, train it, read its objectives.

``TrialRunner`` is the objective function Optuna calls. Each epoch, a trial reports its objective
metric to Optuna (``PruneOnEpoch``, a tunelab Method); with a pruner (median, ASHA, Hyperband; one
``val.*`` objective only) a trial the pruner judges hopeless stops after that epoch and ends PRUNED.

A run that diverges (loss NaN/inf) also ends PRUNED, with its message in the trial's user
attributes: it counts as a spent trial (so a space that often diverges still ends after
``trials`` trials), and Optuna's samplers rank pruned trials below every completed one, so TPE
steers away from the diverging region instead of ignoring it, as it would a FAIL. A trial whose
recipe is invalid ends FAIL with the error (and does not count); ``trials`` such failures stop
the search with that error. A trial that starts past the budget (another worker took the last
slot) is dropped before it trains: FAIL, user attribute ``surplus``. A trial that a worker's
deadline cuts short (``Deadline``, a time budget) ends PRUNED, its message saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from tunelab.errors import RecipeError, TunelabError
from tunelab.io import finite_scalars
from tunelab.methods import Method, TrainState
from tunelab.recipe import Recipe
from tunelab.redact import redact_text
from tunelab.resume import LAST
from tunelab.study.search.config import StudyConfig
from tunelab.study.search.objectives import MEASURED_COSTS
from tunelab.study.search.space import suggest, trial_recipe


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
        self.reported: list[tuple[int, float]] = []  # (epoch, value) sent to the trial

    def epoch_end(self, state: TrainState) -> None:
        value = state.last(self.metric)
        step = state.epoch + 1  # epochs done: the resource ASHA and Hyperband allocate
        self.trial.report(value, step)
        self.reported.append((step, value))
        if self.prune and self.trial.should_prune():
            state.stop = True
            state.stop_reason = f"pruned after epoch {step}: {self.metric} {value:.4f}"
            self.pruned_at = step

    def state_dict(self) -> dict[str, Any]:
        return {"reported": self.reported, "pruned_at": self.pruned_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A retried trial is a new Optuna trial without the killed one's learning curve: the
        # epochs it resumes after are reported again, so the pruner compares whole curves.
        self.pruned_at = state["pruned_at"]
        self.reported = [(int(step), float(value)) for step, value in state["reported"]]
        for step, value in self.reported:
            self.trial.report(value, step)


class Deadline(Method):
    """Stops the fit at the end of the first epoch that ends after ``at`` (a ``time.time()`` instant).

    What a time budget needs from a run: the loop then ends ``stopped_early`` with the reason, and
    ``stopped_at`` says after which epoch (None: the run ended before the deadline).

    >>> Deadline(at=0.0).stopped_at is None
    True
    """

    name = "deadline"

    def __init__(self, at: float) -> None:
        self.at = at
        self.stopped_at: int | None = None

    def epoch_end(self, state: TrainState) -> None:
        if not state.stop and time.time() >= self.at:
            state.stop = True
            state.stop_reason = f"the time budget ran out after epoch {state.epoch + 1}"
            self.stopped_at = state.epoch + 1


def worker_id() -> str:
    """``host:pid`` of this process, kept with each trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Dropped(TunelabError):
    """The trial started past the budget (another worker took the last slot); it never trains."""


class TrialRunner:
    """The objective function of a search: one trial = suggest, fit, read the objectives."""

    def __init__(
        self,
        config: StudyConfig,
        threads: int | None = None,
        checkpoints: str | Path | None = None,
        deadline: float | None = None,
    ) -> None:
        """``checkpoints``: the search's output directory; each trial keeps its ``last.pt`` in
        ``<checkpoints>/<study>/trials/<number>/`` while it runs (None: no checkpoints).
        ``deadline``: a ``time.time()`` instant at which a training trial stops (``Deadline``)."""
        self.config, self.deadline = config, deadline
        self.checkpoints = Path(checkpoints) if checkpoints is not None else None
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
        from tunelab.train import load_bundle  # as fit loads it: data.stream streams here too

        d = recipe.to_dict()
        key = yaml.safe_dump({"data": d["data"], "preprocess": d["preprocess"]}, sort_keys=True)
        if key not in self._data:
            self._data[key] = load_bundle(recipe)
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
        deadline = Deadline(self.deadline) if self.deadline is not None else None
        checkpoint = self._checkpoint_dir(trial)
        try:
            result = fit(
                recipe,
                data=self._bundle(recipe),
                save=False,
                resume=checkpoint,
                methods=[m for m in (method, deadline) if m is not None],
                evaluate_test=False,  # a trial is a choice: the test split stays unread
            )
        except TunelabError as e:
            trial.set_user_attr("error", redact_text(str(e)))
            raise
        finally:
            # Only a killed worker leaves its trial's checkpoint, for the retry; any other end,
            # Ctrl-C included (Optuna does not retry that), makes it useless.
            if checkpoint is not None:
                shutil.rmtree(checkpoint, ignore_errors=True)
                with contextlib.suppress(OSError):  # trials/ goes once no trial runs here
                    checkpoint.parent.rmdir()
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("val", finite_scalars(result.val))
        if result.efficiency:
            trial.set_user_attr("costs", finite_scalars(result.efficiency))
        if result.message:
            trial.set_user_attr("message", redact_text(result.message))
        if method is not None and method.pruned_at is not None:
            raise optuna.TrialPruned(result.message)
        if deadline is not None and deadline.stopped_at is not None:
            # Cut short by the time budget, not judged: pruned, so no sampler takes it for a result.
            raise optuna.TrialPruned(result.message)
        if result.status == "diverged":
            raise optuna.TrialPruned(f"diverged: {result.message}")
        values = [o.read(result) for o in self.config.objectives]
        return values[0] if len(values) == 1 else values

    def _checkpoint_dir(self, trial: optuna.trial.Trial) -> Path | None:
        """Where this trial keeps its ``last.pt``: a retried trial (Optuna's heartbeat retry of a
        trial whose worker died) continues from the checkpoint of the trial it retries."""
        if self.checkpoints is None:
            return None
        # Trial has no public accessor for its system attributes; its storage row has them.
        frozen = trial.storage.get_trial(trial._trial_id)
        retried = frozen.system_attrs.get("failed_trial")
        path = self.checkpoints / _checkpoint_dir_name(
            trial.study.study_name, trial.number if retried is None else retried
        )
        if retried is None:
            # A first attempt starts afresh: a directory there is another study's of the same name.
            shutil.rmtree(path, ignore_errors=True)
        else:
            trial.set_user_attr("resumed_from_checkpoint", (path / LAST).is_file())
        return path


def _checkpoint_dir_name(study: str, original: int) -> str:
    """The directory of a trial's checkpoint, by study and original trial number: a retry of a
    killed trial (``failed_trial``) finds the checkpoint its first attempt wrote.

    >>> _checkpoint_dir_name("mnist1d_search", 7)
    'mnist1d_search/trials/7'
    """
    return f"{study}/trials/{original}"


def _past_budget(study: optuna.Study, number: int, budget: int) -> bool:
    """True when ``budget`` trials already ended or started before trial ``number``."""
    trials = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    )
    ahead = sum(1 for t in trials if t.state != TrialState.RUNNING or t.number < number)
    return ahead >= budget
