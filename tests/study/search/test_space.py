"""The search space: validation with clear messages, and suggest() giving valid recipes."""

import math

import optuna
import pytest

from tunelab.errors import RecipeError
from tunelab.recipe import load_recipe
from tunelab.study.search.space import check_space, dimensions, is_active, suggest, trial_recipe

BASE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adamw", "lr": 0.01, "betas": [0.8, 0.9]},
    "methods": [{"name": "l2", "weight": 1e-3}],
}


def space(search, base=BASE):
    return load_recipe({**base, "search": search})


def error(search, base=BASE) -> str:
    with pytest.raises(RecipeError) as e:
        check_space(space(search, base))
    return str(e.value)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("search", "fragment"),
    [
        (
            {"optimizer.lr": {"type": "uniform", "low": 0.1, "high": 0.01}},
            "search.optimizer.lr: got {'type': 'uniform', 'low': 0.1, 'high': 0.01}; low must be < high",
        ),
        (
            {"optimizer.lr": {"type": "uniform", "low": 0.1, "high": 0.1}},
            "low must be < high",
        ),
        (
            {"optimizer.lr": {"type": "loguniform", "low": 0.0, "high": 0.1}},
            "search.optimizer.lr: got {'type': 'loguniform', 'low': 0.0, 'high': 0.1}; "
            "loguniform needs low > 0",
        ),
        ({"optimizer.lr": {"type": "uniform", "low": 0.1}}, "type uniform needs low and high"),
        (
            {"model.hidden": {"type": "categorical"}},
            "search.model.hidden: got {'type': 'categorical'}; type ",
        ),
        ({"model.dropout": {"type": "categorical", "choices": [0.1]}}, "a single choice is a fixed value"),
        ({"model.dropout": {"type": "categorical", "choices": [0.1, 0.1]}}, "choices must be distinct"),
        ({"train.epochs": {"type": "int", "low": 1.5, "high": 4}}, "type int needs a whole low (got 1.5)"),
        ({"train.batch_size": {"type": "int", "low": 0, "high": 8, "log": True}}, "needs low >= 1"),
        ({"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1, "step": 1e-3}}, "takes no step"),
        ({"optimizer.lr": {"type": "uniform", "low": 0.1, "high": 0.2, "log": True}}, "use type: loguniform"),
        ({"optimizer.name": {"type": "uniform", "low": 0, "high": 1}}, "picks a registry entry"),
        ({"methods.l2": {"type": "categorical", "choices": [1e-3, 1e-2]}}, "switched on or off"),
    ],
)
def test_malformed_distributions_name_the_search_path(search, fragment):
    msg = error(search)
    assert msg.startswith(f"search.{next(iter(search))}")
    assert fragment in msg


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        # A bound outside the field's own range: the recipe's message, at the searched path.
        (
            {"optimizer.lr": {"type": "uniform", "low": -1, "high": 1}},
            "search.optimizer.lr: got -1.0; must be > 0 (at optimizer.lr)",
        ),
        (
            {"model.dropout": {"type": "uniform", "low": 0.0, "high": 1.5}},
            "search.model.dropout: got 1.5; must be >= 0 and < 1 (at model.dropout)",
        ),
        (
            {"train.batch_size": {"type": "int", "low": 0, "high": 64}},
            "search.train.batch_size: got 0; must be >= 1 (at train.batch_size)",
        ),
        # A float distribution on an int field is caught at an inner, non-whole point.
        (
            {"train.epochs": {"type": "uniform", "low": 1, "high": 5}},
            "search.train.epochs: got 2.48; must be an integer (at train.epochs)",
        ),
        (
            {"model.hidden": {"type": "categorical", "choices": [[16], [32, -1]]}},
            "search.model.hidden: got [32, -1]; must be >= 1 (at model.hidden[1])",
        ),
    ],
)
def test_bounds_and_choices_are_validated_as_recipe_fields(search, expected):
    assert error(search) == expected


def test_unknown_paths_get_did_you_mean():
    msg = error({"optimizer.lrr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}})
    assert msg.startswith("search.optimizer.lrr:") and 'did you mean "lr"?' in msg
    msg = error({"trian.epochs": {"type": "int", "low": 1, "high": 3}})
    assert msg.startswith("search.trian.epochs:") and 'did you mean "train"?' in msg
    msg = error({"methods.ema2": {"type": "categorical", "choices": [True, False]}})
    assert msg.startswith("search.methods.ema2:") and "unknown method" in msg
    assert "cannot be searched" in error({"search.x": {"type": "int", "low": 1, "high": 3}})


def test_a_parameter_of_an_entry_never_chosen_is_refused():
    # adamw has no momentum, and no optimizer switch brings one in.
    msg = error({"optimizer.momentum": {"type": "uniform", "low": 0.8, "high": 0.99}})
    assert msg.startswith("search.optimizer.momentum: got 0.8; unknown key for optimizer 'adamw'")
    # With a switch that can choose an optimizer that has it, it is a conditional parameter.
    check_space(
        space(
            {
                "optimizer.name": {"type": "categorical", "choices": ["adamw", "momentum"]},
                "optimizer.momentum": {"type": "uniform", "low": 0.8, "high": 0.99},
            }
        )
    )
    # ... whose bounds are still checked where it exists.
    msg = error(
        {
            "optimizer.name": {"type": "categorical", "choices": ["adamw", "momentum"]},
            "optimizer.momentum": {"type": "uniform", "low": 0.8, "high": 1.5},
        }
    )
    assert msg == "search.optimizer.momentum: got 1.5; must be >= 0 and < 1 (at optimizer.momentum)"


def test_a_method_parameter_needs_the_method_or_its_switch():
    base = {k: v for k, v in BASE.items() if k != "methods"}
    msg = error({"methods.l2.weight": {"type": "loguniform", "low": 1e-5, "high": 1e-2}}, base)
    assert msg.startswith("search.methods.l2.weight:") and "add it first with methods.l2={}" in msg
    check_space(
        space(
            {
                "methods.l2": {"type": "categorical", "choices": [True, False]},
                "methods.l2.weight": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
            },
            base,
        )
    )


def test_entry_choices_are_checked_with_did_you_mean():
    msg = error({"model.name": {"type": "categorical", "choices": ["mlp", "linaer"]}})
    assert msg.startswith("search.model.name: got 'linaer'; makes an invalid recipe: unknown model")
    assert 'did you mean "linear"?' in msg


def test_switches_are_checked_in_combination():
    # cyclic's base_lr 0.005 must stay below the optimizer's lr: fine with sgd (lr 0.1), not with
    # adam (lr 1e-3). adam with constant is fine, so only the combination is refused, up front.
    base = {**BASE, "optimizer": {"name": "sgd"}, "schedule": {"name": "cyclic", "base_lr": 0.005}}
    search = {
        "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam"]},
        "schedule.name": {"type": "categorical", "choices": ["cyclic", "constant"]},
    }
    with pytest.raises(RecipeError) as e:
        check_space(space(search, base))
    assert e.value.path == "search"
    assert e.value.value == {"optimizer.name": "adam", "schedule.name": "cyclic"}
    assert "this combination of choices makes an invalid recipe: must be < max_lr (0.001)" in str(e.value)


def test_switches_come_first_in_the_dimensions():
    r = space(
        {
            "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
            "methods.ema": {"type": "categorical", "choices": [True, False]},
            "optimizer.name": {"type": "categorical", "choices": ["adamw", "sgd"]},
        }
    )
    assert [(d.path, d.kind) for d in dimensions(r)] == [
        ("methods.ema", "method"),
        ("optimizer.name", "entry"),
        ("optimizer.lr", "value"),
    ]


# --- sampling ---------------------------------------------------------------------------------------

FULL = {
    "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5, "step": 0.1},
    "train.batch_size": {"type": "int", "low": 16, "high": 128, "log": True},
    "train.epochs": {"type": "int", "low": 2, "high": 10, "step": 2},
    "model.hidden": {"type": "categorical", "choices": [[8], [16, 16]]},
    "optimizer.name": {"type": "categorical", "choices": ["adamw", "momentum", "sgd"]},
    "optimizer.momentum": {"type": "uniform", "low": 0.8, "high": 0.99},
    "methods.l2": {"type": "categorical", "choices": [True, False]},
    "methods.l2.weight": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
    "methods.ema": {"type": "categorical", "choices": [True, False]},
}


def test_suggest_gives_valid_recipes_for_every_kind_of_dimension():
    r = space(FULL)
    check_space(r)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_optimizers, seen_l2, seen_ema = set(), set(), set()
    for _ in range(40):
        trial = study.ask()
        recipe = trial_recipe(r, suggest(trial, r))  # validates
        p = trial.params
        assert recipe.optimizer.name == p["optimizer.name"]
        assert recipe.optimizer.params["lr"] == p["optimizer.lr"]
        assert 1e-4 <= p["optimizer.lr"] <= 1e-1
        assert math.isclose(recipe.model.params["dropout"] * 10, round(recipe.model.params["dropout"] * 10))
        assert 16 <= recipe.train.batch_size <= 128
        assert recipe.train.epochs in (2, 4, 6, 8, 10)
        assert list(recipe.model.params["hidden"]) in ([8], [16, 16])
        # Conditional values: sampled exactly when their path exists in this trial's recipe.
        assert ("optimizer.momentum" in p) == (p["optimizer.name"] == "momentum")
        if p["optimizer.name"] == "momentum":
            assert recipe.optimizer.params["momentum"] == p["optimizer.momentum"]
        l2 = recipe.method("l2")
        assert (l2 is not None) == p["methods.l2"]
        assert ("methods.l2.weight" in p) == p["methods.l2"]
        if l2 is not None:
            assert l2.params["weight"] == p["methods.l2.weight"]
        assert (recipe.method("ema") is not None) == p["methods.ema"]
        assert not recipe.search
        seen_optimizers.add(p["optimizer.name"])
        seen_l2.add(p["methods.l2"])
        seen_ema.add(p["methods.ema"])
        study.tell(trial, 0.0)
    assert seen_optimizers == {"adamw", "momentum", "sgd"} and seen_l2 == seen_ema == {True, False}


def test_switching_the_optimizer_keeps_only_what_the_new_one_accepts():
    r = space({"optimizer.name": {"type": "categorical", "choices": ["adamw", "sgd"]}})
    sgd = trial_recipe(r, suggest(optuna.trial.FixedTrial({"optimizer.name": "sgd"}), r))
    assert sgd.optimizer.name == "sgd"
    assert sgd.optimizer.params == {"lr": 0.01}  # betas dropped; sgd's own defaults fill the rest
    adamw = trial_recipe(r, suggest(optuna.trial.FixedTrial({"optimizer.name": "adamw"}), r))
    assert adamw.optimizer.params == {"lr": 0.01, "betas": (0.8, 0.9)}


def test_a_method_switched_on_keeps_the_base_parameters_or_takes_defaults():
    r = space(
        {
            "methods.l2": {"type": "categorical", "choices": [True, False]},
            "methods.ema": {"type": "categorical", "choices": [True, False]},
        }
    )
    on = trial_recipe(r, suggest(optuna.trial.FixedTrial({"methods.l2": True, "methods.ema": True}), r))
    assert on.method("l2").params == {"weight": 1e-3}
    assert on.method("ema").params == {}  # ema's defaults
    off = trial_recipe(r, suggest(optuna.trial.FixedTrial({"methods.l2": False, "methods.ema": False}), r))
    assert off.methods == []


def test_non_scalar_choices_are_stored_as_yaml_text_and_decoded():
    r = space({"model.hidden": {"type": "categorical", "choices": [[8], [16, 16]]}})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    overrides = suggest(trial, r)
    assert trial.params["model.hidden"] in ("[8]", "[16, 16]")  # readable in optuna-dashboard
    assert overrides == [f"model.hidden={trial.params['model.hidden']}"]
    assert trial_recipe(r, overrides).model.params["hidden"] in ((8,), (16, 16))


def test_is_active_follows_the_entry_and_the_methods():
    assert is_active({"optimizer": {"name": "momentum"}}, "optimizer.momentum")
    assert not is_active({"optimizer": {"name": "adam"}}, "optimizer.momentum")
    assert is_active({"optimizer": {"name": "adam"}}, "optimizer.decay_bias_and_norm")  # a common field
    assert is_active({"methods": [{"name": "l2"}]}, "methods.l2.weight")
    assert not is_active({"methods": []}, "methods.l2.weight")
    assert is_active({}, "train.epochs")
