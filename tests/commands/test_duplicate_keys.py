"""A recipe (or a --set / --param value) with a key written twice is refused before anything runs:
exit 2, one line naming the dotted key and both lines (issue 9, "Duplicate YAML keys")."""

from __future__ import annotations

import pytest

from tunelab.cli import main

RECIPE = """\
data: {name: iris}
model:
  name: mlp
  hidden: [8]
optimizer:
  name: adam
  lr: 0.01
  weight_decay: 0
  lr: 0.1
train: {epochs: 1, tensorboard: false}
search:
  optimizer.lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}
"""
COMMANDS = [
    ["train"],
    ["search", "--trials", "1"],
    ["ablate", "--seeds", "2"],
    ["cv", "--folds", "2"],
    ["lr-find"],
]


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command wrongly wrote would land here
    path = tmp_path / "dup.yaml"
    path.write_text(RECIPE)
    return path


def cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_refuses_a_recipe_with_a_key_written_twice(recipe, tmp_path, capsys, command):
    code, out, err = cli([command[0], recipe, *command[1:]], capsys)
    assert code == 2 and out == ""
    assert (
        err == f"error: recipe: got '{recipe}'; key optimizer.lr is written twice (lines 7 and 9); keep one\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.yaml"]  # nothing ran, nothing written


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("data: {name: iris}\nschedule: {name: constant}\ndata: {name: digits}\n", "data", "lines 1 and 3"),
        ("methods: [{name: l2, weight: 1.0e-4, weight: 1.0e-2}]\n", "methods.l2.weight", "both on line 1"),
        ("methods:\n  - name: ema\n  - name: l2\n    weight: 1\n    weight: 2\n", "methods.l2.weight",
         "lines 4 and 5"),
    ],
    ids=["top level", "flow list of methods", "block list of methods"],
)  # fmt: skip
def test_top_level_and_method_keys_are_named(tmp_path, monkeypatch, capsys, text, key, lines):
    monkeypatch.chdir(tmp_path)
    # A short run on small data, should the duplicate ever be missed.
    (tmp_path / "r.yaml").write_text(text + "model: {name: mlp}\ntrain: {epochs: 1, tensorboard: false}\n")
    code, _, err = cli(["train", "r.yaml", "--set", "data.name=iris", "--out", "run"], capsys)
    assert code == 2 and f"key {key} is written twice ({lines}); keep one" in err


def test_a_set_value_with_a_key_written_twice_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("data: {name: iris}\ntrain: {epochs: 1}\n")
    code, _, err = cli(["train", "r.yaml", "--set", "methods.l2={weight: 1, weight: 2}"], capsys)
    assert code == 2
    assert err == (
        "error: --set: got 'methods.l2={weight: 1, weight: 2}'; key methods.l2.weight is written twice; "
        "keep one\n"
    )


def test_a_param_value_with_a_key_written_twice_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("data: {name: iris}\ntrain: {epochs: 1}\n")
    code, _, err = cli(["cv", "r.yaml", "--param", "model.hidden=[[8], {a: 1, a: 2}]"], capsys)
    assert code == 2 and "key model.hidden[1].a is written twice; keep one" in err
