"""The run report's data equals the run's own numbers (result.json, metrics.jsonl, final.pt)."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from tunelab.data import load_data
from tunelab.models import build_model
from tunelab.recipe import load_recipe
from tunelab.report.model import Figure, Note
from tunelab.report.pages.run import build_run_report, read_run_dir
from tunelab.train import predict


@pytest.fixture(scope="module")
def run(sources):
    result, run_dir = sources.run()
    files = read_run_dir(run_dir)
    return result, run_dir, json.loads((run_dir / "result.json").read_text()), build_run_report(files)


def test_curves_are_the_history_with_the_best_and_stopping_epochs_marked(run):
    _, run_dir, saved, report = run
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss = report.figure("loss")
    train, val = loss.series
    assert train.x == [h["epoch"] for h in history] and train.y == [h["train"]["loss"] for h in history]
    assert val.y == [h["val"]["loss"] for h in history]
    best = [m for m in loss.markers if m.role == "best"]
    stop = [m for m in loss.markers if m.role == "stop"]
    assert [m.value for m in best] == [saved["best_epoch"]]
    stopped = saved["info"]["early_stopping"]["stopped_epoch"]
    assert stopped is not None and stopped < 12, "the fixture's early stopping should fire"
    assert [m.value for m in stop] == [stopped] and f"epoch {stopped}" in loss.caption
    metric = report.figure("metric")
    assert metric.series[0].y == [h["val"]["accuracy"] for h in history]
    assert "seed 0" in metric.caption and "no intervals" in metric.caption


def test_the_lr_is_recorded_for_every_optimizer_step(run):
    _, _, saved, report = run
    lr = report.figure("lr")
    steps = saved["history"][-1]["steps"]
    assert len(lr.series[0].y) == steps == len(lr.series[0].x)  # one value per step of a onecycle run
    # onecycle starts at max_lr / div_factor (25) and peaks at max_lr (the recipe's lr)
    assert lr.series[0].y[0] == pytest.approx(0.02 / 25)
    assert max(lr.series[0].y) == pytest.approx(0.02, rel=1e-3)


def test_the_confusion_matrix_is_sklearns_on_the_final_weights(run):
    _, run_dir, saved, report = run
    fig = report.figure("confusion-val")
    matrix = np.array(fig.heatmap.values)
    assert matrix.sum() == saved["val"]["n"]
    # Recompute from final.pt and the data: the matrix is the evaluated weights' predictions.
    recipe = load_recipe(str(run_dir / "recipe.yaml"))
    data = load_data(recipe.data)
    net = build_model(recipe.model, data.input_shape, data.num_outputs)
    net.load_state_dict(torch.load(run_dir / "final.pt", weights_only=True))
    pred = predict(net, data.x_val, 1024).argmax(1).numpy()
    expected = confusion_matrix(data.y_val.numpy(), pred, labels=range(data.num_outputs))
    assert (matrix == expected).all()
    test = report.figure("confusion-test")
    assert np.array(test.heatmap.values).sum() == saved["test"]["n"]


def test_per_class_scores_and_costs_come_from_result_json(run):
    _, _, saved, report = run
    bars = report.figure("per-class")
    per = saved["val"]["per_class"]
    assert bars.series[0].y == [per[c]["precision"] for c in per]
    assert bars.series[2].y == [per[c]["f1"] for c in per]
    cost = next(t for t in report.tables() if t.title == "cost")
    assert ["parameters", saved["efficiency"]["params"]] in cost.rows
    grad = report.figure("method-grad_clip")  # the method's per-epoch figures, one panel each
    assert [s.name for s in grad.series] == ["norm_mean", "norm_max", "clipped_fraction"]
    assert grad.series[0].y == [h["grad_clip"]["norm_mean"] for h in saved["history"]]


def test_missing_data_gives_notes_not_empty_figures(sources):
    _, run_dir = sources.regression_run()
    report = build_run_report(read_run_dir(run_dir))
    ids = [f.id for f in report.figures()]
    assert "confusion-val" not in ids and "per-class" not in ids
    assert any("regression" in n for n in report.notes())
    lr = report.figure("lr")  # an epoch schedule: constant within each epoch, halved at each epoch
    steps = [h["steps"] for h in read_run_dir(run_dir).result["history"]]  # 5 steps an epoch
    assert lr.series[0].kind == "step" and lr.series[0].x == [1, steps[0] + 1, steps[1] + 1, steps[2]]
    assert lr.series[0].y == [0.001, 0.0005, 0.00025, 0.00025]
    quality = next(t for t in report.tables() if t.title == "val and test")
    assert "not read" in quality.caption
    assert any("not measured (train.efficiency: false)" in n for n in report.notes())
    for f in report.figures():  # every figure that is there has points
        assert isinstance(f, Figure) and any(s.y for s in f.series)
    assert all(isinstance(n, str) for n in report.notes()) and Note


def test_report_json_round_trips(run):
    from tunelab.report.model import Report

    report = run[3]
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_the_data_section_is_what_cleaning_and_preprocessing_did():
    from tunelab.report.pages.run import run_files
    from tunelab.train import fit

    # penguins: rows without the target dropped, text columns one-hot encoded, duplicates looked for
    recipe = {
        "data": {"name": "penguins"},
        "model": {"name": "mlp", "hidden": [4]},
        "train": {"epochs": 1, "threads": 1, "efficiency": False, "tensorboard": False},
    }
    result = fit(recipe, save=False)
    prep = result.info["preprocess"]
    report = build_run_report(run_files(result))
    table = next(t for t in report.tables() if t.title == "what cleaning and preprocessing did")
    rows = prep["rows"]
    assert ["rows read", "", rows["read"]] in table.rows
    assert ["rows dropped", f"target {rows['target']} missing", rows["dropped_missing_target"]] in table.rows
    assert [r[1:] for r in table.rows if r[0] == "encoded"] == [
        [c, how] for c, how in prep["encoded"].items()
    ]
    dup = [r for r in table.rows if r[0] == "duplicate rows"]
    assert len(dup) == len(prep["duplicates"]["within"]) + len(prep["duplicates"]["across"])
    assert prep["duplicates"]["action"] in table.caption
    facts = next((t for t in report.tables() if t.title == "what the methods reported"), None)
    assert facts is None or all(row[0] != "preprocess" for row in facts.rows)  # not a method's fact
