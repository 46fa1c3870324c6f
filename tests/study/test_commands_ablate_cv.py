"""`tunelab ablate` and `tunelab cv` on the command line: JSON keys, tables, errors, resume."""

import json

import pytest
import yaml

from tunelab.cli import main

RECIPE = """\
data: {name: iris}
model: {name: mlp, hidden: [8], dropout: 0.1}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 2, batch_size: 32, threads: 1}
methods:
  - {name: l2, weight: 0.001}
ablation:
  values:
    optimizer.lr: [0.05]
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "iris_small.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def storage(tmp_path):
    return f"sqlite:///{tmp_path / 'studies.db'}"


# Reports (report.html) are tested in tests/commands/test_report.py; here they would only cost time.
REPORTING = {"train", "search", "ablate", "cv", "compress"}


def no_report(args):
    args = [str(a) for a in args]
    return [*args, "--no-report"] if args and args[0] in REPORTING else args


def cli(args, capsys):
    code = main(no_report(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_ablate_json_has_every_variant_with_its_difference_interval_and_p(recipe, storage, capsys):
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--json"], capsys)
    assert code == 0 and err == ""  # --json prints no progress lines
    d = json.loads(out)
    assert d["study"] == "ablate-iris_small" and d["seeds"] == [0, 1]
    names = [v["name"] for v in d["variants"]]
    assert names == ["base", "-l2", "dropout=0", "optimizer.lr=0.05"]
    for v in d["variants"]:
        assert {"name", "mean", "std", "ci_low", "ci_high", "p_value"} <= v.keys()
        assert v["n"] == 2 and 0 <= v["mean"] <= 1
    for v in d["variants"][1:]:
        assert v["verdict"] in ("better", "worse", "no detectable difference")
        assert v["ci_low"] is None or v["ci_low"] <= v["difference"] <= v["ci_high"]
    assert d["best"] in names and d["test_split"]["base"]["n"] == 2


def test_ablate_tables_show_differences_with_intervals_and_resume(recipe, storage, capsys):
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage], capsys)
    assert code == 0
    assert "Δ vs base [95% CI]" in out and "p (Holm)" in out and "verdict" in out
    assert "best on val" in out and "read once after the choice" in out
    assert err.count("select ") == 8  # one progress line per computed run
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--quiet"], capsys)
    assert code == 0 and out == "" and err == ""
    code, out, _ = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--json"], capsys)
    assert json.loads(out)["runs_computed"] == 0  # everything came back from the storage


def test_ablate_user_errors_exit_2_with_one_line(recipe, storage, capsys):
    code, _, err = cli(
        ["ablate", recipe, "--storage", storage, "--set", "ablation.add=[{name: emma}]"], capsys
    )
    assert code == 2 and err.startswith("error: ablation.add[0].name") and 'did you mean "ema"?' in err
    code, _, err = cli(["ablate", recipe, "--seeds", 0, "--storage", storage], capsys)
    assert code == 2 and "--seeds 0" in err
    empty = ["--set", "methods.l2=null", "--set", "model.dropout=0", "--set", "ablation.values={}"]
    code, _, err = cli(["ablate", recipe, "--storage", storage, *empty], capsys)
    assert code == 2 and "nothing to ablate" in err and "Traceback" not in err


def test_ablate_refuses_a_study_of_another_recipe(recipe, storage, capsys):
    assert cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--quiet"], capsys)[0] == 0
    code, _, err = cli(
        ["ablate", recipe, "--seeds", 2, "--storage", storage, "--set", "train.epochs=3", "--quiet"], capsys
    )
    assert code == 2 and "different recipe (train.epochs: 2 -> 3)" in err and "--study" in err


def test_cv_json_has_folds_values_and_chosen(recipe, storage, capsys):
    code, out, _ = cli(
        [
            "cv",
            recipe,
            "--folds",
            3,
            "--param",
            "methods.l2.weight=0.1,0.001",
            "--storage",
            storage,
            "--json",
        ],
        capsys,
    )
    assert code == 0
    d = json.loads(out)
    assert d["param"] == "methods.l2.weight" and d["k"] == 3
    assert len(d["folds"]) == 6 and {f["fold"] for f in d["folds"]} == {0, 1, 2}
    assert {f["value"] for f in d["folds"]} == {0.1, 0.001}  # the values themselves, as in "values"
    assert [v["value"] for v in d["values"]] == [0.1, 0.001]
    for v in d["values"]:
        assert v["ci_low"] <= v["mean"] <= v["ci_high"] and len(v["scores"]) == 3
    assert d["chosen"]["value"] in (0.1, 0.001) and d["chosen"]["rule"] == "best"
    assert d["final"]["status"] == "completed" and "accuracy" in d["final"]["test"]


def test_cv_table_and_the_one_se_choice(recipe, storage, capsys):
    code, out, err = cli(
        ["cv", recipe, "--folds", 3, "--param", "methods.l2.weight=0.1,0.001", "--choose", "1se",
         "--storage", storage],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert "fold 1" in out and "95% CI" in out and "one-SE rule" in out and "best mean" in out
    assert "--choose 1se" in out and "the test split, read once" in out
    assert err.count("fold ") == 6


def test_cv_errors_exit_2(recipe, storage, capsys):
    code, _, err = cli(["cv", recipe, "--folds", 50, "--storage", storage], capsys)
    assert code == 2 and "fewer than the 50 folds" in err and "--folds" in err
    code, _, err = cli(["cv", recipe, "--param", "optimizer.lr", "--storage", storage], capsys)
    assert code == 2 and "must look like path=v1,v2" in err
    code, _, err = cli(["cv", recipe, "--param", "optimizer.lr=0.1,-1", "--storage", storage], capsys)
    assert code == 2 and "optimizer.lr: got -1" in err


def _render(print_fn, result):
    from rich.console import Console

    console = Console(record=True, width=200)
    print_fn(result, console)
    return console.export_text()


def test_one_seed_renders_no_interval_and_says_why():
    import optuna

    from tunelab.recipe import load_recipe
    from tunelab.report.study import print_ablation
    from tunelab.study.ablation import RunOutcome, run_ablation

    def runner(recipe, bundle, out):  # a scripted objective: the variants differ by a known amount
        value = 0.9 - 0.05 * (recipe.method("l2") is None)
        return RunOutcome("completed", {"accuracy": value}, {"accuracy": value})

    recipe = load_recipe(yaml.safe_load(RECIPE.replace("dropout: 0.1", "dropout: 0.0")))
    one = run_ablation(recipe, seeds=1, storage=optuna.storages.InMemoryStorage(), runner=runner)
    text = _render(print_ablation, one)
    assert "-0.0500 [needs ≥ 2 seeds]" in text and "l2: needs ≥ 2 seeds" in text
    assert "needs ≥ 2 seeds for an interval and a test" in text

    three = run_ablation(recipe, seeds=3, storage=optuna.storages.InMemoryStorage(), runner=runner)
    text = _render(print_ablation, three)
    # Every difference is exactly -0.05: the exact sign test, too few pairs for an interval.
    assert "all 3 differences equal -0.05: exact sign test" in text
    assert "best on val: base" in text and "by mean only" not in text


def test_cv_exits_1_when_the_final_retrain_fails(recipe, storage, capsys, monkeypatch):
    from tunelab.study import cv
    from tunelab.study.ablation import RunOutcome

    def runner(recipe, bundle, out):  # folds finish; the final retrain (real test split) diverges
        if bundle.x_test is bundle.x_val:
            return RunOutcome("completed", {"accuracy": 0.9})
        return RunOutcome("diverged", {}, message="the loss became nan at epoch 1")

    monkeypatch.setattr(cv, "train_run", runner)
    code, out, err = cli(["cv", recipe, "--folds", 2, "--storage", storage], capsys)
    assert code == 1 and "retrained with recipe" in out and "diverged" in out
    assert "error: the final retrain diverged" in err
