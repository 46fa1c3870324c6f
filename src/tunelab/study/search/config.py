"""What a worker needs to run trials of a search, kept in the study's user attributes.

Everything a worker needs (the resolved base recipe, objectives, sampler, pruner and the trial
budget) lives in the study, so ``tunelab worker --study NAME --storage URL`` joins from any
machine with nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tunelab.errors import TunelabError
from tunelab.recipe import Recipe, load_recipe
from tunelab.study.search.objectives import Objective
from tunelab.study.search.options import Direction

CONFIG_ATTR = "tunelab"  # study user attribute holding the StudyConfig
FINAL_ATTR = "tunelab_final"  # study user attribute holding the final runs' report


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
