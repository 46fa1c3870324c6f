"""tunelab train RECIPE --print-recipe: the validated recipe with every default, and no training."""

import pytest
import yaml

from tunelab.cli import main
from tunelab.recipe import load_recipe


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text("data: {name: iris}\nmodel: {name: mlp, hidden: [16]}\nmethods: [{name: l2}]\n")
    return path


def test_print_recipe_shows_every_default_and_the_overrides(recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    overrides = ["--set", "train.epochs=7", "--set", "optimizer.lr=0.01"]
    code = main(["train", str(recipe), "--print-recipe", *overrides])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    printed = yaml.safe_load(out)
    assert printed["train"]["epochs"] == 7 and printed["optimizer"]["lr"] == 0.01
    # Defaults written out, from the common fields and from each entry's signature:
    assert printed["train"]["batch_size"] == 64 and printed["data"]["val_fraction"] == 0.2
    assert printed["model"]["activation"] == "relu" and printed["methods"] == [
        {"name": "l2", "weight": 0.0001, "include_bias_and_norm": False}
    ]
    # A valid recipe that is its own resolved form: loading it again changes nothing.
    assert load_recipe(printed).to_yaml() == out
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "train.epochs=0"], "train.epochs: got 0; must be >= 1"),
        (["--set", "model.name=mlq"], 'did you mean "mlp"?'),
        (["--set", "methods.l2.weigth=1"], 'did you mean "weight"?'),
    ],
)
def test_print_recipe_of_a_bad_recipe_exits_2_with_one_line(recipe, args, fragment, capsys):
    code = main(["train", str(recipe), "--print-recipe", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and fragment in err and len(err.strip().splitlines()) == 1
