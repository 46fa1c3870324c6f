"""Runs of an ablation or a cross-validation, kept as Optuna trials so a study resumes.

Each run has a key (what makes it unique: variant overrides, seed, fold, phase). A run whose key
is already stored as finished is read back, never recomputed; so running the same command again
after Ctrl-C or a crash picks up where it stopped, and widening a study (more seeds, another
value) reuses every run it already has.

The study itself records the recipe it belongs to (every field that changes a result); opening
it with a different recipe is refused with the fields that differ, so old runs never mix with
new ones.

Each trial carries one user attribute, ``run``: the key, the status and what the run measured.
Trial states: COMPLETE for a run that finished (value: the monitored val metric), FAIL with
``status`` "diverged" for a run whose loss blew up (a real, repeatable outcome: kept, not rerun),
FAIL with ``status`` "interrupted" for a run cut by Ctrl-C (rerun next time). A run killed
outright stays RUNNING and is rerun next time. Runs are taken one at a time by one process: two
processes on one study may duplicate a run, never corrupt one.

    >>> import optuna
    >>> store = RunStore(optuna.storages.InMemoryStorage(), "demo", kind="ablation",
    ...                  recipe={"train": {"epochs": 3}}, direction="maximize")
    >>> rec = store.run({"seed": 0}, lambda: ("completed", 0.9, {"val": {"accuracy": 0.9}}))
    >>> rec.cached, store.run({"seed": 0}, lambda: 1 / 0).cached  # the second call reads it back
    (False, True)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from tunelab.errors import TunelabError
from tunelab.recipe import recipe_changes
from tunelab.redact import mask_url, redact
from tunelab.study.storage import KIND_ATTR, open_storage, optuna_quiet, storage_url

# Statuses of finished runs; anything else (interrupted, or no status: killed) is run again.
FINISHED = ("completed", "stopped_early", "diverged")
# The trial's user attribute holding the run's record: key, status, metrics, timings.
RUN_ATTR = "run"

Outcome = tuple[str, float | None, dict[str, Any]]  # (status, value or None, JSON-able attrs)


@dataclass(frozen=True)
class StoredRun:
    """One run read from or written to the store."""

    key: dict[str, Any]
    status: str
    value: float | None
    attrs: dict[str, Any]
    cached: bool  # True: read back from the storage, not computed now

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "stopped_early") and self.value is not None


def canonical(obj: Any) -> str:
    """A stable text of JSON-able data (sorted keys): the identity of a key or a recipe."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def open_study_storage(storage: str | BaseStorage | None) -> tuple[BaseStorage, str]:
    """(storage, a printable description): a URL (None: the default SQLite file) or a storage.

    Heartbeats stay off: these runs are taken by one process, and a killed run is simply rerun.
    """
    if isinstance(storage, BaseStorage):
        return storage, type(storage).__name__
    url = storage_url(storage)
    return open_storage(url, heartbeat=False), mask_url(url)


class RunStore:
    """The finished runs of one study; ``run(key, fn)`` computes a key only once.

    ``recipe`` is the study's identity (a JSON-able dict): a study created with another recipe
    is refused. ``kind`` ("ablation", "cv") keeps a search study from being mistaken for one.
    """

    def __init__(
        self,
        storage: str | BaseStorage | None,
        study_name: str,
        *,
        kind: str,
        recipe: Mapping[str, Any],
        direction: Literal["maximize", "minimize"],
    ) -> None:
        self.storage, self.where = open_study_storage(storage)
        self.study_name = study_name
        with optuna_quiet():
            self.study = optuna.create_study(
                storage=self.storage, study_name=study_name, direction=direction, load_if_exists=True
            )
        attrs = self.study.user_attrs
        recipe = json.loads(canonical(recipe))  # plain JSON types, as the storage gives them back
        if not attrs:
            self.study.set_user_attr(KIND_ATTR, kind)
            self.study.set_user_attr("recipe", recipe)
        elif attrs.get(KIND_ATTR) != kind:
            raise TunelabError(
                f"study {study_name!r} in {self.where} is of kind {attrs.get(KIND_ATTR, 'non-tunelab')}, "
                f"not {kind}; choose another name with --study"
            )
        elif canonical(attrs.get("recipe")) != canonical(recipe):
            changes = "; ".join(recipe_changes(attrs.get("recipe") or {}, recipe))
            raise TunelabError(
                f"study {study_name!r} in {self.where} holds runs of a different recipe ({changes}); "
                "its runs would not be comparable: use a new --study name, or restore the recipe to resume"
            )
        self._done: dict[str, StoredRun] = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            run = t.user_attrs.get(RUN_ATTR) or {}
            if run.get("status") in FINISHED and "key" in run:
                value = t.value if t.state == TrialState.COMPLETE else None
                self._done[canonical(run["key"])] = StoredRun(run["key"], run["status"], value, run, True)

    def get(self, key: Mapping[str, Any]) -> StoredRun | None:
        return self._done.get(canonical(key))

    def run(self, key: Mapping[str, Any], fn: Callable[[], Outcome]) -> StoredRun:
        """The stored run of ``key``, or compute it with ``fn() -> (status, value, attrs)`` and store it.

        Ctrl-C during ``fn`` marks the trial FAIL ("interrupted") and re-raises, so the next call
        computes that key again; nothing finished is lost.
        """
        found = self.get(key)
        if found is not None:
            return found
        trial = self.study.ask()
        try:
            status, value, attrs = fn()
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "error"
            trial.set_user_attr(RUN_ATTR, {"key": dict(key), "status": status})
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        # A message may quote a URL with its password (a user's code failing); the key is kept
        # exactly as given, since it is what a resumed study matches on.
        record = {**redact(attrs), "key": dict(key), "status": status}
        # One attribute per run: each set_user_attr is a database transaction.
        trial.set_user_attr(RUN_ATTR, json.loads(canonical(record)))
        finished_ok = status in ("completed", "stopped_early") and value is not None and math.isfinite(value)
        if finished_ok:
            self.study.tell(trial, float(value))  # type: ignore[arg-type]
        else:
            self.study.tell(trial, state=TrialState.FAIL)
            value = None
        stored = StoredRun(dict(key), status, value, record, False)
        if status in FINISHED:
            self._done[canonical(key)] = dataclasses.replace(stored, cached=True)
        return stored
