"""`tunelab ablate` on the command line: JSON keys recomputable from the values, verdicts that agree
with their intervals, tables, errors, resume."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from tunelab.recipe import load_recipe
from tunelab.study.comparisons import holm
from tunelab.study.stats import level_text


def test_ablate_json_has_every_variant_with_its_difference_interval_and_p(recipe, storage, cli):
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--json"])
    assert code == 0 and err == ""  # --json prints no progress lines
    d = json.loads(out)
    assert d["study"] == "ablate-iris_small" and d["seeds"] == [0, 1]
    names = [v["name"] for v in d["variants"]]
    assert names == ["base", "-l2", "dropout=0", "optimizer.lr=0.05"]
    for v in d["variants"]:
        assert {"name", "mean", "std", "ci_low", "ci_high", "ci_level", "p_value"} <= v.keys()
        assert v["n"] == 2 and v["mean"] == pytest.approx(np.mean(v["values"]))
    assert d["correction"] == "holm" and d["intervals"].startswith("95% Holm step-down")
    assert_numbers_are_recomputable(d)
    assert d["best"] in names and d["test_split"]["base"]["n"] == 2


def assert_numbers_are_recomputable(d):
    """Every variant's difference, p-values, interval and verdict, recomputed from its ``values``
    with scipy: the paired t-test, Holm over the variants, the t-interval at the variant's
    ``ci_level``, and the verdict that interval implies (the issue's rule: "no detectable
    difference" only with ci_low <= 0 <= ci_high; null is an unbounded end)."""
    base, variants = d["variants"][0], d["variants"][1:]
    p_raw = []
    for v in variants:
        diff = np.subtract(v["values"], base["values"])
        assert v["difference"] == pytest.approx(diff.mean(), abs=1e-12)
        low = -math.inf if v["ci_low"] is None else v["ci_low"]
        high = math.inf if v["ci_high"] is None else v["ci_high"]
        if np.ptp(diff) > 1e-12:  # a t-test (equal differences go to the sign test)
            ref = stats.ttest_rel(v["values"], base["values"])
            ci = ref.confidence_interval(v["ci_level"])
            assert v["test"] == "t" and v["p_unadjusted"] == pytest.approx(ref.pvalue)
            assert (low, high) == pytest.approx((ci.low, ci.high))
        p_raw.append(v["p_unadjusted"])
        up, down = ("better", "worse") if d["mode"] == "max" else ("worse", "better")
        expected = up if low > 0 else down if high < 0 else "no detectable difference"
        assert v["verdict"] == expected, v
        if v["verdict"] == "no detectable difference":
            assert low <= 0 <= high
    assert [v["p_value"] for v in variants] == pytest.approx(holm(p_raw))


class Planted:
    """A runner with planted effects, no training: a lr of 0.05 costs 30 points, dropout=0 nothing."""

    def __call__(self, recipe, bundle, out):
        seed, slow = recipe.train.seed, recipe.optimizer.params["lr"] == 0.05
        # Noise of its own per variant (the same for every variant would make the differences
        # constant: the sign test); -l2 shares the base's, so its differences are exactly zero.
        noise = np.random.default_rng([seed, int(recipe.to_dict()["model"]["dropout"] * 10), slow]).normal(
            0, 0.004
        )
        value = 0.9 + 0.01 * math.sin(seed) + noise - 0.3 * slow
        from tunelab.study.scaffold import RunOutcome

        return RunOutcome("completed", {"accuracy": value}, {"accuracy": value})


@pytest.mark.parametrize("correction", ["holm", "bonferroni"])
def test_ablate_json_verdicts_follow_planted_effects_and_agree_with_their_intervals(
    recipe, storage, monkeypatch, correction, cli
):
    from tunelab.study import scaffold

    monkeypatch.setattr(scaffold, "train_run", Planted())  # the runner `tunelab ablate` uses
    args = ["ablate", recipe, "--seeds", 6, "--storage", storage, "--json", "--correction", correction]
    code, out, _ = cli(args)
    assert code == 0
    d = json.loads(out)
    v = {x["name"]: x for x in d["variants"]}
    assert v["optimizer.lr=0.05"]["verdict"] == "worse" and v["optimizer.lr=0.05"]["outcome"] == "hurt"
    assert v["optimizer.lr=0.05"]["ci_high"] < 0
    assert v["optimizer.lr=0.05"]["ci_low"] <= -0.3 <= v["optimizer.lr=0.05"]["ci_high"]
    assert v["-l2"]["verdict"] == "no detectable difference" and v["-l2"]["note"] == "identical on every pair"
    assert v["dropout=0"]["verdict"] == "no detectable difference"
    assert v["dropout=0"]["ci_low"] <= 0 <= v["dropout=0"]["ci_high"]
    m = 3
    if correction == "bonferroni":
        assert d["intervals"] == "95% simultaneous (Bonferroni: each at 98.33%)"
        assert all(x["ci_level"] == pytest.approx(1 - 0.05 / m) for x in d["variants"][1:])
        p = [x["p_unadjusted"] for x in d["variants"][1:]]
        assert [x["p_value"] for x in d["variants"][1:]] == pytest.approx([min(1, m * q) for q in p])
    else:
        assert_numbers_are_recomputable(d)
        # The lr variant is found at step 1 (98.33%); Holm stops at step 2 (97.5%) for the others.
        assert v["optimizer.lr=0.05"]["ci_level"] == pytest.approx(1 - 0.05 / 3)
        assert v["dropout=0"]["ci_level"] == v["-l2"]["ci_level"] == pytest.approx(0.975)


def test_ablate_tables_show_differences_with_intervals_and_resume(recipe, storage, cli):
    code, table, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage])
    assert code == 0
    assert "p (Holm)" in table and "verdict" in table and "intervals: 95% Holm step-down" in table
    assert "best on val" in table and "read once after the choice" in table
    assert err.count("select ") == 8  # one progress line per computed run
    code, out, err = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--quiet"])
    assert code == 0 and out == "" and err == ""
    code, out, _ = cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--json"])
    d = json.loads(out)
    assert d["runs_computed"] == 0  # everything came back from the storage
    # The table names the level of its intervals: in the header when the rows share one.
    levels = {v["ci_level"] for v in d["variants"][1:] if v["ci_low"] is not None}
    if len(levels) == 1:
        assert f"Δ vs base [{level_text(levels.pop())} CI]" in table and "CI level" not in table
    else:
        assert "Δ vs base [CI]" in table and "CI level" in table


def test_the_table_gives_each_row_its_level_when_holm_finds_something(recipe):
    import optuna

    from tunelab.report.study import print_ablation
    from tunelab.study.ablation import run_ablation

    r = load_recipe(recipe)
    result = run_ablation(r, seeds=6, storage=optuna.storages.InMemoryStorage(), runner=Planted())
    text = _render(print_ablation, result)
    assert "Δ vs base [CI]" in text and "CI level" in text
    row = next(line for line in text.splitlines() if "optimizer.lr=0.05" in line)
    assert "98.33%" in row and "<0.001" in row and "hurt" in row
    row = next(line for line in text.splitlines() if "dropout=0" in line and "│" in line)
    assert "97.5%" in row and "no detectable" in row


def test_ablate_user_errors_exit_2_with_one_line(recipe, storage, cli):
    code, _, err = cli(
        ["ablate", recipe, "--storage", storage, "--set", "ablation.add=[{name: emma}]"],
    )
    assert code == 2 and err.startswith("error: ablation.add[0].name") and 'did you mean "ema"?' in err
    code, _, err = cli(["ablate", recipe, "--seeds", 0, "--storage", storage])
    assert code == 2 and "--seeds 0" in err
    empty = ["--set", "methods.l2=null", "--set", "model.dropout=0", "--set", "ablation.values={}"]
    code, _, err = cli(["ablate", recipe, "--storage", storage, *empty])
    assert code == 2 and "nothing to ablate" in err and "Traceback" not in err


def test_ablate_refuses_a_study_of_another_recipe(recipe, storage, cli):
    assert cli(["ablate", recipe, "--seeds", 2, "--storage", storage, "--quiet"])[0] == 0
    code, _, err = cli(
        ["ablate", recipe, "--seeds", 2, "--storage", storage, "--set", "train.epochs=3", "--quiet"],
    )
    assert code == 2 and "different recipe (train.epochs: 2 -> 3)" in err and "--study" in err


def _render(print_fn, result):
    from rich.console import Console

    console = Console(record=True, width=200)
    print_fn(result, console)
    return console.export_text()
