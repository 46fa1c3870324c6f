"""StudyConfig: what a worker needs round-trips through the study's user attributes."""

import pytest

from tunelab.errors import TunelabError
from tunelab.recipe import load_recipe
from tunelab.study.search.config import CONFIG_ATTR, StudyConfig
from tunelab.study.search.objectives import Objective


def test_the_config_round_trips_through_the_study_attributes(iris):
    config = StudyConfig(
        recipe_yaml=load_recipe(iris).to_yaml(),
        objectives=(Objective.parse("val.accuracy"), Objective.parse("latency_ms")),
        sampler="nsga2",
        pruner="none",
        trials=12,
        seed=3,
    )
    back = StudyConfig.from_attrs({CONFIG_ATTR: config.to_attrs()}, "s")
    assert back == config and back.directions == ["maximize", "minimize"]
    assert back.recipe().search["optimizer.lr"].high == 0.1  # the search space travels with it


def test_a_study_without_search_settings_is_named_and_how_to_start_one():
    with pytest.raises(
        TunelabError, match=r"study 'abl' was not made by `tunelab search`.*tunelab search RECIPE"
    ):
        StudyConfig.from_attrs({CONFIG_ATTR: {"kind": "ablation"}}, "abl")
