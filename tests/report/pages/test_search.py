"""The search report's data equals the study's trials, importances, front and final retrain."""

import optuna
import pytest
from optuna.trial import TrialState

from tunelab.errors import TunelabError
from tunelab.report.pages.search import build_search_report
from tunelab.study.search.studies import study_report
from tunelab.study.storage import open_storage


def trials_of(storage, name):
    return optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat=False)).get_trials()


def test_objective_per_trial_with_the_running_best_and_pruned_trials_marked(sources):
    name, out = sources.search(objectives=1)
    report = build_search_report(name, sources.storage, out)
    trials = trials_of(sources.storage, name)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and complete
    fig = report.figure("objective")
    points, best, marked = fig.series
    assert points.x == [t.number for t in complete] and points.y == [t.value for t in complete]
    running = [max(t.value for t in complete[: i + 1]) for i in range(len(complete))]
    assert best.y == pytest.approx(running) and best.y[-1] == max(t.value for t in complete)
    assert marked.x == [t.number for t in pruned]
    curves = report.figure("pruning")  # pruned trials end with an × at the epoch they stopped
    stops = curves.series[-1]
    assert stops.x == [max(t.intermediate_values) for t in pruned]
    assert all(f"pruned after epoch {e}" in label for e, label in zip(stops.x, stops.labels, strict=True))
    assert f"{len(pruned)} pruned trials" in curves.caption


def test_importances_slices_and_the_best_recipe(sources):
    name, out = sources.search(objectives=1)
    report = build_search_report(name, sources.storage, out)
    imp = report.figure("importance")
    expected = study_report(name, sources.storage).importances["val.accuracy"]
    assert dict(zip(imp.series[0].x, imp.series[0].y, strict=True)) == pytest.approx(expected)
    slices = report.figure("slices")
    assert {s.name for s in slices.series} == {
        "optimizer.lr",
        "model.dropout",
        "model.hidden",
        "optimizer.weight_decay",
    }
    lr = next(s for s in slices.series if s.name == "optimizer.lr")
    assert lr.log_x  # searched on a log scale
    assert any("single objective" in n for n in report.notes())  # no Pareto front to draw
    code = [i for s in report.sections for i in s.items if type(i).__name__ == "Code"]
    assert code and code[0].text == (out / "best.yaml").read_text()


def test_the_pareto_front_of_two_objectives_is_the_studys(sources):
    name, out = sources.search(objectives=2)
    report = build_search_report(name, sources.storage, out)
    fig = report.figure("pareto")
    front = optuna.load_study(
        study_name=name, storage=open_storage(sources.storage, heartbeat=False)
    ).best_trials
    marked = next(s for s in fig.series if s.name == "Pareto front")
    assert sorted(zip(marked.x, marked.y, strict=True)) == sorted((t.values[0], t.values[1]) for t in front)
    assert "no pruner" in " ".join(report.notes())  # a search without a pruner: a note, no empty axes


def test_a_real_search_shows_its_final_retrain_with_intervals(sources):
    result = sources.real_search()
    report = build_search_report(result.study, sources.storage, result.out_dir)
    fig = report.figure("final")
    means = fig.series[0]
    summary = result.final.metrics[0]
    assert means.x == ["val accuracy", "test accuracy"]
    assert means.y == pytest.approx([summary.val.mean, summary.test.mean])
    assert means.low == pytest.approx([summary.val.ci_low, summary.test.ci_low])
    assert "2 seeds" in fig.caption


def test_a_missing_study_or_an_ablation_study_is_a_clear_error(sources):
    with pytest.raises(TunelabError, match="is not in"):
        build_search_report("nope", sources.storage)
    optuna.create_study(
        study_name="abl", storage=open_storage(sources.storage, heartbeat=False)
    ).set_user_attr("tunelab_kind", "ablation")
    with pytest.raises(TunelabError, match="is an ablation study, not a search"):
        build_search_report("abl", sources.storage)
