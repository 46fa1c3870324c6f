"""tunelab.report.search: the search result, `tunelab show` and `tunelab studies` print the numbers of
the objects they render (set here by hand): trials, the best one, final runs with their intervals,
importances, counts."""

from __future__ import annotations

import datetime

import optuna

from tunelab.report.search import (
    fmt_counts,
    fmt_summary,
    num,
    print_final,
    print_search,
    print_studies,
    print_study,
    trial_line,
)
from tunelab.study.search.objectives import Objective
from tunelab.study.search.results import (
    Best,
    BestRecipeRun,
    FinalReport,
    MetricSummary,
    SearchResult,
    TrialRecord,
)
from tunelab.study.search.studies import StudyInfo, StudyReport
from tunelab.study.stats import Summary


def record(number, value, state="COMPLETE", lr=0.01, message=""):
    values = None if value is None else [value]
    return TrialRecord(number, state, {"optimizer.lr": lr}, value, values, 2.5, 3, message, None)


ACCURACY = Objective("val.accuracy", "maximize")
VAL = Summary(3, 0.9412, 0.01, 0.9163, 0.9661, 0.95, "t")
TEST = Summary(3, 0.9023, 0.02, 0.8526, 0.9520, 0.95, "t")


def final_report() -> FinalReport:
    runs = [
        BestRecipeRun(s, "completed", {"accuracy": a}, {"accuracy": b}, {}, f"out/s/final/seed-{s}")
        for s, a, b in [(0, 0.93, 0.88), (1, 0.94, 0.90), (2, 0.95, 0.92)]
    ]
    return FinalReport(1, [0, 1, 2], runs, [MetricSummary("val.accuracy", val=VAL, test=TEST)])


def search_result(**changes) -> SearchResult:
    fields = {
        "study": "iris_search",
        "storage": "sqlite:///runs/studies.db",
        "objectives": [ACCURACY],
        "trials": [record(0, 0.9), record(1, 0.9412, lr=0.0031), record(2, None, "PRUNED", message="pruned")],
        "best": Best(
            1, 0.9412, [0.9412], {"optimizer.lr": 0.0031}, ["optimizer.lr=0.0031"], "out/s/best.yaml"
        ),
        "pareto_front": [],
        "final": final_report(),
        "out_dir": "out/s",
        "budget": 5,
    }
    return SearchResult(**{**fields, **changes})


def test_summaries_counts_and_numbers_are_formatted_as_documented():
    assert fmt_summary(VAL.to_dict()) == "0.9412 ± 0.0249 [0.9163, 0.9661]"
    one = Summary(1, 0.9, float("nan"), -float("inf"), float("inf"), 0.95, "t").to_dict()
    assert fmt_summary(one) == "0.9000 (n=1, no interval)" and fmt_summary(None) == "-"
    assert fmt_counts({"FAIL": 1, "COMPLETE": 4, "PRUNED": 2}) == "4 complete, 2 pruned, 1 fail"
    assert fmt_counts({}) == "no trials"
    assert num(67.0) == "67" and num(1234.0) == "1,234" and num(0.5) == "0.5000"


def test_the_search_result_shows_its_counts_best_trial_and_final_runs(render):
    text = render(print_search, search_result())
    assert "study iris_search · 2 complete, 1 pruned (budget 5) · sqlite:///runs/studies.db" in text
    assert "best trial 1" in text
    best_row = next(line for line in text.splitlines() if line.strip("│ ").startswith("1 "))
    assert "0.9412" in best_row and "optimizer.lr = 0.0031" in best_row
    assert "best recipe: out/s/best.yaml" in text
    assert "best recipe retrained · seeds 0, 1, 2 · mean ± 95% CI" in text
    final_row = next(line for line in text.splitlines() if "val.accuracy" in line and "±" in line)
    assert fmt_summary(VAL.to_dict()) in final_row and fmt_summary(TEST.to_dict()) in final_row
    assert "final runs: out/s/final/seed-0, out/s/final/seed-1, out/s/final/seed-2" in text


def test_a_pareto_front_is_listed_and_a_search_without_a_best_says_so(render):
    front = [record(0, 0.9), record(1, 0.95)]
    text = render(print_search, search_result(pareto_front=front))
    assert "Pareto front (2 trials)" in text
    text = render(print_search, search_result(best=None, final=None, trials=[record(0, None, "FAIL")]))
    assert "no trial completed" in text and "best trial" not in text


def test_a_cost_objective_has_one_value_and_no_test_column_value(render):
    latency = Summary(3, 0.25, 0.02, 0.21, 0.30, 0.95, "log-t")
    report = FinalReport(
        0, [0, 1, 2], [], [MetricSummary("latency_ms", value=latency)], note="one run left out"
    )
    text = render(print_final, report)
    row = next(line for line in text.splitlines() if "latency_ms" in line)
    assert "0.2500 (geometric) [0.2100, 0.3000]" in row and row.rstrip(" │").endswith("-")
    assert "one run left out" in text


def test_show_prints_the_best_trials_importances_sorted_and_the_final_runs(render):
    report = StudyReport(
        name="iris_search",
        storage="sqlite:///runs/studies.db",
        objectives=["val.accuracy"],
        directions=["maximize"],
        budget=5,
        counts={"COMPLETE": 5},
        best=[record(1, 0.9412), record(0, 0.9)],
        importances={"val.accuracy": {"model.dropout": 0.2, "optimizer.lr": 0.8}},
        importance_note="",
        final=final_report().to_dict(),
    )
    text = render(print_study, report)
    assert (
        "study iris_search · 5 complete (budget 5)" in text and "objectives: val.accuracy (maximize)" in text
    )
    assert "best 2 trials" in text
    lines = text.splitlines()
    lr, dropout = (next(i for i, line in enumerate(lines) if name in line and "=" not in line)
                   for name in ("optimizer.lr", "model.dropout"))  # fmt: skip
    assert lr < dropout  # the most important first
    assert "0.8000" in lines[lr] and "0.2000" in lines[dropout]
    assert fmt_summary(TEST.to_dict()) in text


def test_show_without_complete_trials_gives_the_reason_for_missing_importances(render):
    note = "parameter importances need at least 4 complete trials (this study has 0)"
    objectives, directions = ["objective 0", "objective 1"], ["maximize", "minimize"]
    report = StudyReport("s", "sqlite:///x.db", objectives, directions, None, {"FAIL": 2}, [], {}, note, None)
    text = render(print_study, report)
    assert "no complete trial yet" in text and "need at least 4 complete trials" in text
    assert "budget" not in text


def test_studies_lists_each_study_with_its_kind_counts_and_best_value(render):
    studies = [
        StudyInfo(
            "iris_search", "search", ["maximize"], {"COMPLETE": 3, "FAIL": 1}, 0.9412, "2024-05-01T10:00:00"
        ),
        StudyInfo("ablate-iris", "ablation", ["maximize"], {"COMPLETE": 10}, None, None),
    ]
    text = render(print_studies, studies)
    row = next(line for line in text.splitlines() if "iris_search" in line)
    assert (
        "search" in row and "3 complete, 1 fail" in row and "0.9412" in row and "2024-05-01T10:00:00" in row
    )
    row = next(line for line in text.splitlines() if "ablate-iris" in line)
    assert "ablation" in row and "10 complete" in row
    assert "no studies in this storage" in render(print_studies, [])


def test_trial_lines_name_the_state_values_duration_reason_and_params():
    dist = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
    t = optuna.trial.create_trial(
        params={"optimizer.lr": 0.0031}, distributions=dist, values=[0.9412, 1250.0],
        user_attrs={"message": "not shown: the trial completed"},
    )  # fmt: skip
    t.number = 7
    t.datetime_start = datetime.datetime(2024, 5, 1, 10, 0, 0)
    t.datetime_complete = t.datetime_start + datetime.timedelta(seconds=2.25)
    assert trial_line(t, ["val.accuracy", "params"]) == (
        "trial 7 complete · val.accuracy 0.9412, params 1,250 · 2.2 s · optimizer.lr = 0.0031"
    )
    pruned = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED, params={"optimizer.lr": 0.5}, distributions=dist,
        user_attrs={"message": "pruned after epoch 1: val.accuracy 0.3000"},
    )  # fmt: skip
    pruned.number = 3
    line = trial_line(pruned)
    assert line.startswith("trial 3 pruned · ")
    assert line.endswith(" s · pruned after epoch 1: val.accuracy 0.3000 · optimizer.lr = 0.5000")
