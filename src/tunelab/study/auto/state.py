"""Where ``tunelab auto`` keeps what each stage found, so that a rerun resumes where it stopped.

One Optuna study per auto run (``auto``, in the run's storage, default ``sqlite:///<out>/auto.db``)
holds, as user attributes, the run's identity (the data and options whose change would make the
stored figures meaningless), the budget's spending, and one record per finished stage
(``stage:<name>``). The searches and ablations of the run are studies of their own in the same
storage (``auto-search``, ``auto-ablation``, ``auto-occam``): Optuna resumes those run by run.
A stage whose record is stored is never run again; a stage without one starts over, reusing
every run its own study holds.

    >>> s = AutoState("sqlite:///:memory:", {"data": {"name": "iris"}})
    >>> s.get("baseline") is None
    True
    >>> s.put("baseline", {"val": 0.9}); s.get("baseline")
    {'val': 0.9}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage

from tunelab.errors import TunelabError
from tunelab.io import finite
from tunelab.study.runstore import canonical, open_study_storage, recipe_changes
from tunelab.study.storage import KIND_ATTR, optuna_quiet

STUDY = "auto"
_IDENTITY = "identity"
_BUDGET = "budget"


class AutoState:
    """The stage records of one auto run, in its storage."""

    def __init__(self, storage: str | BaseStorage | None, identity: Mapping[str, Any]) -> None:
        self.storage, self.where = open_study_storage(storage)
        with optuna_quiet():
            self.study = optuna.create_study(storage=self.storage, study_name=STUDY, load_if_exists=True)
        attrs = self.study.user_attrs
        identity = json.loads(canonical(identity))
        if not attrs:
            self.study.set_user_attr(KIND_ATTR, "auto")
            self.study.set_user_attr(_IDENTITY, identity)
        elif attrs.get(KIND_ATTR) != "auto":
            raise TunelabError(
                f"{self.where} holds a study named {STUDY!r} that is not an auto run; "
                "give auto its own --storage"
            )
        elif canonical(attrs.get(_IDENTITY)) != canonical(identity):
            changes = "; ".join(recipe_changes(attrs.get(_IDENTITY) or {}, identity))
            raise TunelabError(
                f"{self.where} holds an auto run of other data or options ({changes}); its stages would "
                "not apply: rerun with the same data and options to resume, or choose another --out"
            )

    def get(self, stage: str) -> dict[str, Any] | None:
        """The stored record of ``stage`` (None: not finished yet)."""
        return self.study.user_attrs.get(f"stage:{stage}")

    def put(self, stage: str, record: Mapping[str, Any]) -> None:
        """Store ``stage`` as finished, with its figures (plain JSON: NaN and inf become None)."""
        self.study.set_user_attr(f"stage:{stage}", json.loads(json.dumps(finite(dict(record)))))

    def budget(self) -> dict[str, Any]:
        return self.study.user_attrs.get(_BUDGET) or {}

    def save_budget(self, budget: Mapping[str, Any]) -> None:
        self.study.set_user_attr(_BUDGET, json.loads(json.dumps(finite(dict(budget)))))
