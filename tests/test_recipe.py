from pathlib import Path

import pytest
import yaml

from tunelab.errors import RecipeError
from tunelab.recipe import Recipe, load_recipe
from tunelab.spec import monitor_mode

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def err(raw, overrides=()):
    with pytest.raises(RecipeError) as e:
        load_recipe(raw, overrides)
    return str(e.value)


def test_defaults_are_complete_and_valid():
    r = load_recipe({})
    assert isinstance(r, Recipe)
    assert r.data.name == "mnist1d" and r.optimizer.name == "adam" and r.train.epochs == 20
    assert r.methods == []


def test_overrides_reach_every_section():
    r = load_recipe(
        {"methods": [{"name": "l2", "weight": 1e-4}]},
        overrides=["train.epochs=3", "optimizer.lr=0.01", "methods.l2.weight=0.5", "model.name=linear"],
    )
    assert r.train.epochs == 3
    assert r.optimizer.params["lr"] == 0.01
    assert r.method("l2").params["weight"] == 0.5
    assert r.model.name == "linear"


def test_override_adds_and_removes_methods():
    r = load_recipe(
        {"methods": ["l2"]}, overrides=["methods.early_stopping={patience: 3}", "methods.l2=null"]
    )
    assert [m.name for m in r.methods] == ["early_stopping"]
    assert r.method("early_stopping").params == {"patience": 3}
    assert "add it first with methods.l1={}" in err({}, ["methods.l1.weight=1"])


def test_a_method_added_by_override_goes_before_tta():
    # tta wraps the model the other methods choose: it stays last, or ema would be refused.
    r = load_recipe({"data": {"name": "digits"}, "methods": ["l2", "tta"]}, overrides=["methods.ema={}"])
    assert [m.name for m in r.methods] == ["l2", "ema", "tta"]


def test_bad_override_syntax():
    assert "must look like path.to.key=value" in err({}, ["train.epochs"])


def test_unknown_section_and_keys_did_you_mean():
    assert 'did you mean "optimizer"?' in err({"optimiser": {}})
    msg = err({"train": {"epoch": 3}})
    assert msg.startswith("train.epoch: got 3; unknown key") and 'did you mean "epochs"?' in msg
    msg = err({"optimizer": {"name": "adam", "learning_rate": 0.1}})
    assert msg.startswith("optimizer.learning_rate: got 0.1; unknown key for optimizer 'adam'")


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ({"optimizer": {"lr": -0.1}}, "optimizer.lr", "must be > 0"),
        ({"model": {"name": "mlp", "dropout": 1.0}}, "model.dropout", "< 1"),
        ({"train": {"batch_size": 0}}, "train.batch_size", "must be >= 1"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "must be an integer"),
        ({"model": {"name": "mlpp"}}, "model.name", 'did you mean "mlp"?'),
        ({"data": {"name": "digitz"}}, "data.name", 'did you mean "digits"?'),
        ({"methods": [{"name": "l3"}]}, "methods[0].name", "unknown method"),
        ({"methods": [{"name": "l2", "weight": -1}]}, "methods.l2.weight", "must be >= 0"),
        ({"train": {"device": "gpu"}}, "train.device", "must be auto, cpu, mps, cuda or cuda:N"),
        ({"train": {"monitor": "val.acc"}}, "train.monitor", "val.<metric>"),
        ({"train": {"precision": "fp8"}}, "train.precision", "one of fp32, bf16"),
    ],
)
def test_bad_values_name_path_value_and_allowed(raw, path, fragment):
    msg = err(raw)
    assert msg.startswith(f"{path}: got ")
    assert fragment in msg


def test_duplicate_method_rejected():
    assert "each method may appear once" in err({"methods": ["l2", "l2"]})


def test_resolved_recipe_round_trips_exactly():
    r = load_recipe({"model": {"name": "mlp", "hidden": [16]}, "methods": ["l2"]})
    d = r.to_dict()
    assert d["methods"][0]["weight"] is not None  # every default written
    assert "lr" in d["optimizer"]
    again = load_recipe(yaml.safe_load(r.to_yaml()))
    assert again.to_dict() == d


def test_missing_and_invalid_files(tmp_path):
    assert "file not found" in err(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    assert "is not valid YAML" in err(bad)


def test_monitor_mode():
    assert monitor_mode("val.loss") == "min" and monitor_mode("val.mae") == "min"
    assert monitor_mode("val.accuracy") == "max" and monitor_mode("val.r2") == "max"


# Recipes meant to be run with a setting from the command line (see examples/README.md).
EXAMPLE_OVERRIDES = {"digits_finetune.yaml": ["model.pretrained=runs/digits-pretrain"]}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_recipe_validates(path):
    load_recipe(path, EXAMPLE_OVERRIDES.get(path.name, []))


# --- the preprocess section ----------------------------------------------------------------------


def test_data_standardize_moved_to_preprocess_scaling():
    for source, overrides in (
        ({"data": {"name": "iris", "standardize": False}}, []),
        ({}, ["data.standardize=false"]),
    ):
        with pytest.raises(
            RecipeError, match=r"data\.standardize: got False; moved; use preprocess\.scaling: standard\|none"
        ):
            load_recipe(source, overrides)


def test_preprocess_section_is_typed_validated_and_written_out():
    r = load_recipe({"preprocess": {"scaling": "minmax", "minmax_range": [-1, 1], "categorical": ["a"]}})
    assert r.preprocess.scaling == "minmax" and r.preprocess.minmax_range == (-1.0, 1.0)
    assert r.to_dict()["preprocess"]["categorical"] == ["a"]
    assert load_recipe(r.to_dict()).preprocess == r.preprocess  # the resolved dict repeats it
    with pytest.raises(RecipeError, match=r'preprocess\.scaling: got \'minmaxx\'.*did you mean "minmax"'):
        load_recipe({"preprocess": {"scaling": "minmaxx"}})
    with pytest.raises(
        RecipeError, match=r"preprocess\.outlier_quantiles: got \[0\.9, 0\.1\]; must be \[low, high\]"
    ):
        load_recipe({"preprocess": {"outlier_quantiles": [0.9, 0.1]}})
    with pytest.raises(
        RecipeError, match=r"preprocess\.numeric: got 'a'; is also listed in preprocess\.categorical"
    ):
        load_recipe({"preprocess": {"categorical": ["a"], "numeric": ["a"]}})
    with pytest.raises(
        RecipeError, match=r"preprocess\.imputer: got 'mean'; unknown key.*did you mean \"impute\""
    ):
        load_recipe({"preprocess": {"imputer": "mean"}})
    assert load_recipe({}, ["preprocess.scaling=none"]).preprocess.scaling == "none"


# --- text: the tokenizer must be what the model or the features read ------------------------------


def test_text_recipes_check_the_tokenizer_against_the_model_and_features(tmp_path):
    from tunelab.errors import RecipeError
    from tunelab.recipe import load_recipe

    with pytest.raises(RecipeError, match=r"preprocess\.tokenizer.*'wrod'.*did you mean \"word\""):
        load_recipe({"preprocess": {"tokenizer": "wrod"}})
    with pytest.raises(RecipeError, match=r"set preprocess\.tokenizer: minilm"):
        load_recipe({"model": {"name": "transformer"}})
    with pytest.raises(RecipeError, match=r"features of 'minilm' read its own token ids"):
        load_recipe({"preprocess": {"features": "minilm"}})
    with pytest.raises(RecipeError, match=r"model\.pretrained.*loads into model\.name: transformer"):
        load_recipe({"model": {"name": "mlp", "pretrained": "minilm"}})
    with pytest.raises(RecipeError, match=r"features replace them"):
        load_recipe(
            {"preprocess": {"tokenizer": "minilm", "features": "minilm"}, "model": {"name": "transformer"}}
        )
    r = load_recipe(
        {"preprocess": {"tokenizer": "minilm"}, "model": {"name": "transformer", "pretrained": "minilm"}}
    )
    assert r.model.params == {} and r.preprocess.tokenizer == "minilm"
