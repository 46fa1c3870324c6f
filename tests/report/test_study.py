"""tunelab.report.study: the ablation and cross-validation reports print the numbers of the results
they render (set here by hand): each difference with its interval and level, the adjusted p, the
verdict, the test split; each value's fold scores, interval and which rule chose it."""

from __future__ import annotations

import math

import optuna

from tunelab.recipe import load_recipe
from tunelab.report.study import (
    cv_run_line,
    fmt_difference,
    fmt_interval,
    fmt_p,
    fmt_signed,
    print_ablation,
    print_cv,
    run_line,
)
from tunelab.study.ablation import run_ablation
from tunelab.study.ablation_analysis import AblationResult, RunRecord, Variant, VariantResult
from tunelab.study.ablation_analysis import TestEvaluation as SplitEvaluation  # not a test class
from tunelab.study.cv import CVChoice, CVResult, CVRetrain, CVValue, FoldRun
from tunelab.study.scaffold import RunOutcome
from tunelab.study.stats import PairedDifference, Summary


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"│ {name} "))


def summary(mean: float, std: float, half: float, n: int = 3) -> Summary:
    return Summary(n, mean, std, mean - half, mean + half, 0.95, "t")


def difference(estimate: float, low: float, high: float, p: float, level: float) -> PairedDifference:
    return PairedDifference(3, estimate, 0.001, estimate, low, high, p, level, "t")


SIZE = {"params": 1000.0, "nonzero": 1000.0, "size_bytes": 4096.0}
BASE = VariantResult(
    Variant("base", (), "base", "base"), (0, 1, 2), (0.90, 0.91, 0.92), (), summary(0.91, 0.01, 0.0248),
    None, None, "base", "reference", 1.25, SIZE,
)  # fmt: skip
NO_L2 = VariantResult(
    Variant("-l2", ("methods.l2=null",), "remove", "l2"), (0, 1, 2), (0.85, 0.86, 0.87),
    (), summary(0.86, 0.01, 0.0248), difference(-0.05, -0.0612, -0.0388, 0.0004, 1 - 0.05 / 3), 0.0008,
    "worse", "helped", 1.5, {**SIZE, "nonzero": 500.0},
)  # fmt: skip
ADD_EMA = VariantResult(
    Variant("+ema", ("methods.ema={}",), "add", "ema"), (0, 1, 2), (0.91, 0.915, 0.925), (),
    summary(0.9167, 0.0076, 0.019), difference(0.0067, -0.0071, 0.0205, 0.2, 0.975), 0.2,
    "no detectable difference", "no detectable difference", 2.0, SIZE,
)  # fmt: skip
HIGH_LR = VariantResult(
    Variant("optimizer.lr=1", ("optimizer.lr=1",), "value", "optimizer.lr=1"), (), (),
    ((0, "diverged"), (1, "diverged"), (2, "diverged")), None, None, None, "failed", "failed", 0.0, {},
)  # fmt: skip


def ablation(**changes) -> AblationResult:
    fields = {
        "study_name": "ablate-iris",
        "storage": "sqlite:///runs/studies.db",
        "monitor": "val.accuracy",
        "mode": "max",
        "seeds": (0, 1, 2),
        "test_name": "t",
        "alpha": 0.05,
        "confidence": 0.95,
        "variants": (BASE, NO_L2, ADD_EMA, HIGH_LR),
        "best": "+ema",
        "test": SplitEvaluation(
            "accuracy", summary(0.88, 0.01, 0.0248), summary(0.89, 0.02, 0.0497),
            difference(0.01, -0.02, 0.04, 0.4, 0.95), (0.87, 0.88, 0.89), (0.87, 0.89, 0.91),
        ),
        "runs_computed": 12,
        "runs_reused": 3,
        "notes": ("+ema seed 2: the retrain for the test split scored val 0.924, not 0.925",),
    }  # fmt: skip
    return AblationResult(**{**fields, **changes})


def test_differences_and_p_values_are_formatted_with_their_sign_and_interval():
    assert fmt_signed(0.01) == "+0.0100" and fmt_signed(-1234.5) == "-1,234"
    assert fmt_interval(-0.0612, -0.0388, signed=True) == "[-0.0612, -0.0388]"
    assert fmt_interval(-math.inf, math.inf, missing="[needs ≥ 2 seeds]") == "[needs ≥ 2 seeds]"
    assert fmt_difference(NO_L2.difference) == "-0.0500 [-0.0612, -0.0388]"
    assert (fmt_p(None), fmt_p(0.0004), fmt_p(0.2)) == ("-", "<0.001", "0.200")


def test_each_row_holds_its_variants_numbers_level_p_and_verdict(render):
    text = render(print_ablation, ablation())
    assert "study ablate-iris · 3 seeds (0, 1, 2) · val.accuracy (higher is better)" in text
    assert "paired t-test, Holm across 2 variants" in text
    assert "Δ vs base [CI]" in text and "CI level" in text  # two levels: one per row
    base = row(text, "base")
    assert "3/3" in base and "0.9100 ± 0.0100" in base and "reference" in base and "1.25" in base
    no_l2 = row(text, "-l2")
    cells = ("3/3", "0.8600 ± 0.0100", "-0.0500 [-0.0612, -0.0388]", "98.33%", "<0.001", "l2 helped", "1.50")
    for cell in cells:
        assert cell in no_l2, cell
    assert "nonzero" not in text  # a failed variant has no sizes: no size column
    ema = row(text, "+ema")
    for cell in ("+0.0067 [-0.0071, +0.0205]", "97.5%", "0.200", "adding ema: no detectable difference"):
        assert cell in ema, cell
    lr = row(text, "optimizer.lr=1")
    assert "0/3" in lr and "every run failed (diverged)" in lr
    assert (
        "optimizer.lr=1: 3 run(s) did not finish: seed 0 diverged, seed 1 diverged, seed 2 diverged" in text
    )


def test_the_conclusions_the_choice_and_the_test_split_follow_the_result(render):
    result = ablation()
    text = render(print_ablation, result)
    assert "helped: l2" in text and "no detectable difference (at 3 seeds): adding ema" in text
    assert "failed: optimizer.lr=1" in text
    assert "best on val: +ema (mean 0.9167) · by mean only: not detectably better than the base" in text
    assert (
        "test accuracy, read once after the choice: base 0.8800 ± 0.0100 · +ema 0.8900 ± 0.0200 · "
        "Δ +0.0100 [-0.0200, +0.0400] (95%, one comparison)"
    ) in text
    assert f"intervals: {result.intervals}" in " ".join(text.split())
    assert "note: +ema seed 2: the retrain for the test split scored val 0.924" in text
    assert "runs: 12 computed, 3 reused · study ablate-iris in sqlite:///runs/studies.db" in text


def test_rows_that_share_one_level_name_it_in_the_header(render):
    same = VariantResult(**{**NO_L2.__dict__, "difference": difference(-0.05, -0.07, -0.03, 0.001, 0.975)})
    text = render(print_ablation, ablation(variants=(BASE, same, ADD_EMA), best="base", test=None))
    assert "Δ vs base [97.5% CI]" in text and "CI level" not in text
    assert "best on val: base (mean 0.9100)" in text and "by mean only" not in text


def test_a_size_column_appears_when_every_row_has_it_and_it_varies(render):
    text = render(print_ablation, ablation(variants=(BASE, NO_L2, ADD_EMA), test=None))
    assert "nonzero" in text and "size" not in text.replace("size_bytes", "")  # size_bytes is the same
    assert row(text, "-l2").rstrip(" │").endswith("500") and row(text, "base").rstrip(" │").endswith("1,000")


def test_progress_lines_give_each_runs_phase_seed_status_and_values():
    rec = RunRecord("-l2", 1, "select", "completed", 0.86123, None, 1.234, False)
    assert run_line(rec) == "select -l2 · seed 1 · completed · val 0.8612 · 1.2s"
    rec = RunRecord("base", 0, "test", "diverged", None, 0.5, 0.5, False)
    assert run_line(rec) == "test   base · seed 0 · diverged · val - · test 0.5000 · 0.5s"
    fold = FoldRun(0.1, "0.1", 2, 0.8812, "completed", 100, 50, 2.345, False)
    assert cv_run_line(fold) == "fold 3 · 0.1 · completed · score 0.8812 · 2.3s"


def cv_result() -> CVResult:
    folds = [
        FoldRun(0.1, "0.1", i, s, "completed", 80, 40, 1.0, False) for i, s in enumerate((0.88, 0.89, 0.90))
    ] + [
        FoldRun(0.01, "0.01", i, s, "completed", 80, 40, 1.0, False) for i, s in enumerate((0.89, 0.90, 0.91))
    ]
    folds.append(FoldRun(0.0, "0.0", 0, None, "diverged", 80, 40, 1.0, False))
    strong = CVValue(
        0.1, "0.1", ("methods.l2.weight=0.1",), (0.88, 0.89, 0.90), (), summary(0.89, 0.01, 0.0248)
    )
    weak = CVValue(
        0.01, "0.01", ("methods.l2.weight=0.01",), (0.89, 0.90, 0.91), (), summary(0.90, 0.01, 0.0248)
    )
    none = CVValue(0.0, "0.0", ("methods.l2.weight=0.0",), (), ((0, "diverged"),), None)
    choice = CVChoice("1se", best=weak, one_se=strong, threshold=0.90 - 0.01 / math.sqrt(3))
    final = CVRetrain("0.1", 0.1, "completed", {"accuracy": 0.9}, {"accuracy": 0.8667}, None)
    return CVResult(
        "cv-iris", "sqlite:///runs/studies.db", "methods.l2.weight", 3, "val.accuracy", "accuracy", "max",
        True, (strong, weak, none), tuple(folds), choice, final, 7, 0, ("a note",),
    )  # fmt: skip


def test_the_cv_table_holds_each_values_fold_scores_interval_and_choice(render):
    text = render(print_cv, cv_result())
    assert "3 stratified folds of train+val · methods.l2.weight · val.accuracy (higher is better)" in text
    strong = row(text, "0.1")
    for cell in ("0.8800", "0.8900", "0.9000", "0.8900 ± 0.0100", "[0.8652, 0.9148]", "one-SE rule"):
        assert cell in strong, cell
    assert "best mean" not in strong
    weak = row(text, "0.01")
    assert "0.9100" in weak and "0.9000 ± 0.0100" in weak and "best mean" in weak
    failed = row(text, "0.0")
    assert "diverged" in failed and "not eligible: failed on a fold" in failed


def test_the_cv_report_names_both_choices_and_the_retrains_test_read(render):
    text = " ".join(render(print_cv, cv_result()).split())
    assert "best mean: 0.01 (0.9000)" in text
    assert (
        "one-SE rule: 0.1, the first value listed with mean ≥ 0.8942 (best mean − one standard error 0.0058)"
        in text
    )
    assert (
        "retrained with 0.1 (--choose 1se) on the recipe's train/val split: completed · "
        "val accuracy 0.9000 · test accuracy 0.8667 (the test split, read once)"
    ) in text
    assert "note: a note" in text and "runs: 7 computed, 0 reused · study cv-iris" in text


def test_one_seed_renders_no_interval_and_says_why(render):
    def runner(recipe, bundle, out):  # a scripted objective: the variants differ by a known amount
        value = 0.9 - 0.05 * (recipe.method("l2") is None)
        return RunOutcome("completed", {"accuracy": value}, {"accuracy": value})

    recipe = load_recipe({
        "data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "threads": 1}, "methods": [{"name": "l2", "weight": 0.001}],
    })  # fmt: skip
    one = run_ablation(recipe, seeds=1, storage=optuna.storages.InMemoryStorage(), runner=runner)
    text = render(print_ablation, one)
    assert "-0.0500 [needs ≥ 2 seeds]" in text and "l2: needs ≥ 2 seeds" in text
    assert "needs ≥ 2 seeds for an interval and a test" in text

    three = run_ablation(recipe, seeds=3, storage=optuna.storages.InMemoryStorage(), runner=runner)
    text = render(print_ablation, three)
    # Every difference is exactly -0.05: the exact sign test, too few pairs for an interval.
    assert "all 3 differences equal -0.05: exact sign test" in text
    assert "best on val: base" in text and "by mean only" not in text


def test_a_loss_is_lower_is_better(render):
    text = render(print_ablation, ablation(mode="min", monitor="val.loss"))
    assert "val.loss (lower is better)" in text
