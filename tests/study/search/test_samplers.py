"""The sampler and pruner registries: every sampler runs a search, pruners step on epochs."""

import importlib.util

import optuna
import pytest

from tunelab.errors import RecipeError, TunelabError
from tunelab.study.search.run import run_search
from tunelab.study.search.samplers import PRUNERS, SAMPLERS, make_pruner


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_every_sampler_runs(where, sampler, iris):
    objectives = "val.accuracy,val.loss" if sampler == "nsga2" else None
    if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
        # Optuna's CMA-ES needs the cmaes package; without it the error says how to get it.
        with pytest.raises(TunelabError, match="needs the cmaes package: pip install cmaes"):
            run_search(iris, trials=2, sampler=sampler, final_seeds=0, study_name=sampler, **where)
        return
    r = run_search(
        iris, trials=2, sampler=sampler, objectives=objectives, final_seeds=0, study_name=sampler, **where
    )
    assert r.counts() == {"COMPLETE": 2}


def test_pruners_step_on_epochs():
    assert isinstance(make_pruner("none", 5), optuna.pruners.NopPruner)
    hb = make_pruner("hyperband", 9)
    assert isinstance(hb, optuna.pruners.HyperbandPruner) and hb._max_resource == 9


def test_every_entry_describes_itself_and_an_unknown_name_gets_a_suggestion():
    assert all(e.description for e in [*SAMPLERS, *PRUNERS])
    with pytest.raises(
        RecipeError, match=r"--pruner: got 'medain'; unknown pruner; .*did you mean \"median\""
    ):
        make_pruner("medain", 3)
