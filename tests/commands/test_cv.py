"""`tunelab cv` on the command line: JSON keys recomputable from the fold scores, the table, the
one-SE choice, errors, and the exit status of a failed final retrain."""

import json

import numpy as np
import pytest
from scipy import stats


def test_cv_json_has_folds_values_and_chosen(recipe, storage, cli):
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
    )
    assert code == 0
    d = json.loads(out)
    assert d["param"] == "methods.l2.weight" and d["k"] == 3
    assert len(d["folds"]) == 6 and {f["fold"] for f in d["folds"]} == {0, 1, 2}
    assert {f["value"] for f in d["folds"]} == {0.1, 0.001}  # the values themselves, as in "values"
    assert [v["value"] for v in d["values"]] == [0.1, 0.001]
    for v in d["values"]:
        assert len(v["scores"]) == 3 and v["mean"] == pytest.approx(np.mean(v["scores"]))
        ci = stats.t.interval(0.95, 2, loc=np.mean(v["scores"]), scale=stats.sem(v["scores"]))
        assert (v["ci_low"], v["ci_high"]) == pytest.approx(ci)
    best = max(d["values"], key=lambda v: v["mean"])
    assert d["chosen"]["value"] == best["value"] and d["chosen"]["rule"] == "best"
    assert d["final"]["status"] == "completed" and "accuracy" in d["final"]["test"]


def test_cv_table_and_the_one_se_choice(recipe, storage, cli):
    code, out, err = cli(
        ["cv", recipe, "--folds", 3, "--param", "methods.l2.weight=0.1,0.001", "--choose", "1se",
         "--storage", storage],
    )  # fmt: skip
    assert code == 0
    assert "fold 1" in out and "95% CI" in out and "one-SE rule" in out and "best mean" in out
    assert "--choose 1se" in out and "the test split, read once" in out
    assert err.count("fold ") == 6


def test_cv_errors_exit_2(recipe, storage, cli):
    code, _, err = cli(["cv", recipe, "--folds", 50, "--storage", storage])
    assert code == 2 and "fewer than the 50 folds" in err and "--folds" in err
    code, _, err = cli(["cv", recipe, "--param", "optimizer.lr", "--storage", storage])
    assert code == 2 and "must look like path=v1,v2" in err
    code, _, err = cli(["cv", recipe, "--param", "optimizer.lr=0.1,-1", "--storage", storage])
    assert code == 2 and "optimizer.lr: got -1" in err


def test_cv_exits_1_when_the_final_retrain_fails(recipe, storage, monkeypatch, cli):
    from tunelab.study import scaffold
    from tunelab.study.scaffold import RunOutcome

    def runner(recipe, bundle, out):  # folds finish; the final retrain (real test split) diverges
        if bundle.x_test is bundle.x_val:
            return RunOutcome("completed", {"accuracy": 0.9})
        return RunOutcome("diverged", {}, message="the loss became nan at epoch 1")

    monkeypatch.setattr(scaffold, "train_run", runner)  # the runner `tunelab cv` uses
    code, out, err = cli(["cv", recipe, "--folds", 2, "--storage", storage])
    assert code == 1 and "retrained with recipe" in out and "diverged" in out
    assert "error: the final retrain diverged" in err
