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

With ``nproc`` > 1 (``--trial-nproc``) the fit runs on that many DDP processes
(``tunelab.study.search.ddp_trial``); everything else, here in the worker, stays the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from tunelab.errors import RecipeError, TunelabError
from tunelab.io import finite_scalars
from tunelab.recipe import Recipe
from tunelab.redact import redact_text
from tunelab.resume import LAST, read_last
from tunelab.study.search.config import StudyConfig
from tunelab.study.search.ddp_trial import RankJob, TrialOutcome, launch_trial
from tunelab.study.search.objectives import MEASURED_COSTS
from tunelab.study.search.space import suggest, trial_recipe
from tunelab.study.search.trial_methods import Deadline, PruneOnEpoch


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
        *,
        nproc: int = 1,
        storage: str | None = None,
    ) -> None:
        """``checkpoints``: the search's output directory; each trial keeps its ``last.pt`` in
        ``<checkpoints>/<study>/trials/<number>/`` while it runs (None: no checkpoints).
        ``deadline``: a ``time.time()`` instant at which a training trial stops (``Deadline``).
        ``nproc``: processes each trial trains on (DDP, ``tunelab.study.search.ddp_trial``; they
        open the study at ``storage``, its URL); ``threads`` is then each process's."""
        if nproc > 1 and storage is None:
            raise TunelabError("TrialRunner: a trial on several processes needs the study's storage URL")
        self.config, self.deadline, self.nproc, self.storage = config, deadline, nproc, storage
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
        if _past_budget(trial.study, trial.number, self.budget):
            trial.set_user_attr("surplus", True)
            raise _Dropped(f"trial {trial.number} started past the budget of {self.budget}; dropped")
        overrides = suggest(trial, self.recipe)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", worker_id())  # which machine and process ran it
        if self.nproc > 1:
            trial.set_user_attr("processes", self.nproc)
        try:
            recipe = trial_recipe(self.recipe, [*overrides, *self.run_overrides])
        except RecipeError as e:
            trial.set_user_attr("error", redact_text(str(e)))
            raise
        checkpoint = self._checkpoint_dir(trial)
        try:
            outcome = self._train(trial, recipe, checkpoint)
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
        trial.set_user_attr("status", outcome.status)
        trial.set_user_attr("epochs", outcome.epochs)
        trial.set_user_attr("train_seconds", outcome.train_seconds)
        trial.set_user_attr("val", finite_scalars(outcome.val))
        if outcome.efficiency:
            trial.set_user_attr("costs", finite_scalars(outcome.efficiency))
        if outcome.message:
            trial.set_user_attr("message", redact_text(outcome.message))
        if outcome.pruned_at is not None:
            raise optuna.TrialPruned(outcome.message)
        if outcome.stopped_at is not None:
            # Cut short by the time budget, not judged: pruned, so no sampler takes it for a result.
            raise optuna.TrialPruned(outcome.message)
        if outcome.status == "diverged":
            raise optuna.TrialPruned(f"diverged: {outcome.message}")
        values = [o.read(outcome) for o in self.config.objectives]
        return values[0] if len(values) == 1 else values

    def _train(self, trial: optuna.trial.Trial, recipe: Recipe, checkpoint: Path | None) -> TrialOutcome:
        """Fit the trial's recipe here, or on ``nproc`` processes (``ddp_trial``)."""
        prune = self.config.pruner != "none"
        if self.nproc > 1:
            job = RankJob(
                recipe_yaml=recipe.to_yaml(),
                storage=self.storage,  # type: ignore[arg-type]  # checked in __init__
                study=trial.study.study_name,
                trial_id=trial._trial_id,  # Trial has no public accessor for its storage id
                number=trial.number,
                metric=self.report_metric,
                prune=prune,
                pruner=self.config.pruner,
                pruner_epochs=self.recipe.train.epochs,
                deadline=self.deadline,
                checkpoint=str(checkpoint) if checkpoint is not None else None,
            )
            return launch_trial(job, self.nproc)
        from tunelab.train import fit

        method = PruneOnEpoch(trial, self.report_metric, prune) if self.report_metric else None
        deadline = Deadline(self.deadline) if self.deadline is not None else None
        result = fit(
            recipe,
            data=self._bundle(recipe),
            save=False,
            resume=checkpoint,
            methods=[m for m in (method, deadline) if m is not None],
            evaluate_test=False,  # a trial is a choice: the test split stays unread
        )
        return TrialOutcome.of(result, method, deadline)

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
        if retried is None or not self._resumable(path / LAST):
            # A first attempt starts afresh: a directory there is another study's of the same name.
            shutil.rmtree(path, ignore_errors=True)
        if retried is not None:
            trial.set_user_attr("resumed_from_checkpoint", (path / LAST).is_file())
        return path

    def _resumable(self, last: Path) -> bool:
        """Whether this worker can continue the checkpoint ``last`` (absent: nothing to continue).

        A checkpoint continues only on as many processes as wrote it (the shards and each
        process's batch follow from their number); a retry on a worker with another
        ``--trial-nproc`` starts the trial again instead of failing it. A damaged file is left
        for ``fit``, which says what is wrong with it.
        """
        if not last.is_file():
            return True
        try:
            return read_last(last).get("processes", 1) == self.nproc
        except TunelabError:
            return True


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
