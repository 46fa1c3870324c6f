from __future__ import annotations

import optuna
import pytest

from tunelab.errors import RecipeError
from tunelab.recipe import load_recipe
from tunelab.study.auto.portfolio import fit_to_space, portfolio
from tunelab.study.auto.profile import FAMILIES
from tunelab.study.auto.space import baseline_recipe, search_recipe
from tunelab.study.search.space import fixed_params, suggest, trial_recipe

SHAPES = {
    "table": ([13], {"name": "wine"}),
    "signal": ([1, 40], {"name": "mnist1d"}),
    "image": ([1, 8, 8], {"name": "digits"}),
}
LR_RANGE = (1e-4, 2.5e-3)  # below the signal and table points' 3e-3 and 1e-2: they are clipped


def _space(modality, data, shape, lr_range=LR_RANGE):
    base = baseline_recipe(data, modality, FAMILIES[modality][0], epochs=20)
    raw = search_recipe(base, modality, shape, 1000, lr_range=lr_range, epochs=20, missing=True)
    return load_recipe(raw), raw["search"]


def _trial_of(space, point):
    # FixedTrial raises for any dimension the trial asks for and the point lacks: a point that
    # passes names every dimension its recipe uses, so no value of the known recipe is drawn at random.
    overrides = suggest(optuna.trial.FixedTrial(fixed_params(space, point)), space)
    return trial_recipe(space, overrides)


@pytest.mark.parametrize("modality", sorted(SHAPES))
def test_each_point_is_a_whole_recipe_of_the_space(modality):
    shape, data = SHAPES[modality]
    space, bounds = _space(modality, data, shape)
    points = [fit_to_space(p, bounds) for p in portfolio(modality, shape, 1000, missing=True)]
    assert points
    for point in points:
        recipe = _trial_of(space, point)
        assert recipe.model.name == point["model.name"]
        assert recipe.optimizer.params["lr"] == point["optimizer.lr"]
        assert LR_RANGE[0] <= point["optimizer.lr"] <= LR_RANGE[1]  # clipped into lr-find's range
        on = {m.name for m in recipe.methods}
        switches = {k: v for k, v in point.items() if k.startswith("methods.") and k.count(".") == 1}
        switched_on = {k.split(".")[1] for k, v in switches.items() if v}
        assert on == switched_on | {"early_stopping"}


def test_the_signal_point_is_the_mnist1d_example():
    shape, data = SHAPES["signal"]
    space, bounds = _space("signal", data, shape, lr_range=(1e-3, 1e-2))
    recipe = _trial_of(space, fit_to_space(portfolio("signal", shape, 3200)[0], bounds))
    example = load_recipe("examples/mnist1d_cnn.yaml")
    assert recipe.model == example.model
    assert (recipe.optimizer, recipe.schedule.name) == (example.optimizer, example.schedule.name)
    assert {m.name for m in recipe.methods} == {m.name for m in example.methods} | {"early_stopping"}


def test_the_text_point_is_a_whole_recipe_of_the_text_space(text_csv):
    base = baseline_recipe({"name": "text_csv", "path": str(text_csv)}, "text", "embedding_bag", epochs=10)
    raw = search_recipe(base, "text", [256], 100, lr_range=(1e-3, 1e-1), epochs=10)
    (point,) = portfolio("text", [256], 100)
    recipe = _trial_of(load_recipe(raw), fit_to_space(point, raw["search"]))
    assert recipe.train.batch_size == 25  # clipped: a quarter of the 100 train texts
    assert recipe.model.name == "embedding_bag" and recipe.preprocess.max_length == 512


def test_a_point_outside_the_space_is_refused_by_name():
    shape, data = SHAPES["image"]
    space, _ = _space("image", data, shape)
    with pytest.raises(RecipeError, match=r"search\.model\.channels.*must be one of"):
        fixed_params(space, {"model.channels": [8, 8]})
    with pytest.raises(RecipeError, match=r"search\.optimizer\.lr.*within"):
        fixed_params(space, {"optimizer.lr": 1.0})
    with pytest.raises(RecipeError, match=r"search\.model\.chanels.*names no dimension.*model\.channels"):
        fixed_params(space, {"model.chanels": [32, 64]})


def test_the_logistic_point_has_scikit_learns_default_penalty():
    logistic = portfolio("table", [13], n_train=400)[0]
    assert logistic["model.name"] == "linear" and logistic["methods.l2.weight"] == 1 / 400  # C = 1
