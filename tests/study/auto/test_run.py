"""``run_auto`` end to end on a small CSV with planted copies, every evaluation of a split spied on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.study.auto.conftest import NEAR_PLANTED, PLANTED

import tunelab.train
from tunelab import load_run
from tunelab.cli import main
from tunelab.data import load_data
from tunelab.data.near_text import THRESHOLD as TEXT_NEAR_THRESHOLD
from tunelab.recipe import load_recipe
from tunelab.report import write_report
from tunelab.study.auto.budget import STAGES
from tunelab.study.auto.final import FINAL_OFFSET
from tunelab.study.auto.run import run_auto

pytestmark = pytest.mark.slow


def spied_auto(raw: dict, out, budget: str = "30s"):
    """One auto run, with a spy on every ``evaluate`` the loop and compress call:
    (result, reads [(stage open at the time, split evaluated)], events [(stage, what)])."""
    reads: list[tuple[str, str]] = []
    events: list[tuple[str, str]] = []
    stage = {"now": ""}
    real = tunelab.train.evaluate

    def spy(net, data, split, *args, **kwargs):
        reads.append((stage["now"], split))
        return real(net, data, split, *args, **kwargs)

    def on_event(name, what, budget, detail):
        events.append((name, what))
        if what == "start":
            stage["now"] = name

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tunelab.train, "evaluate", spy)
        result = run_auto(raw, budget=budget, out=out, final_seeds=3, on_event=on_event)
    return result, reads, events


@pytest.fixture(scope="module")
def auto_run(planted_csv, tmp_path_factory):
    """One auto run (30 s budget) on iris with planted copies."""
    out = tmp_path_factory.mktemp("auto") / "out"
    raw = {"data": {"name": "csv", "path": str(planted_csv), "target": "label"}}
    return (*spied_auto(raw, out), out)


@pytest.fixture(scope="module")
def text_auto_run(planted_text_csv, tmp_path_factory):
    """One auto run (40 s budget) on the tiny corpus with planted exact and near copies."""
    out = tmp_path_factory.mktemp("auto_text") / "out"
    return (*spied_auto({"data": {"name": "text_csv", "path": str(planted_text_csv)}}, out, "40s"), out)


@pytest.fixture(params=["table", "text"])
def any_auto_run(request):
    return request.getfixturevalue("auto_run" if request.param == "table" else "text_auto_run")


def test_the_test_split_is_read_only_by_the_final_runs(any_auto_run):
    result, reads, _, _ = any_auto_run
    test_reads = [s for s, split in reads if split == "test"]
    assert test_reads and set(test_reads) == {"final"}
    # Once per final seed (the loop's end), no more.
    assert len(test_reads) == len(result["final"]["runs"]) == 3
    # Selection read val: the search, ablation and compress stages evaluated val, never test.
    assert {s for s, split in reads if split == "val"} >= {"baseline", "search", "final"}


def test_the_final_seeds_are_new(any_auto_run):
    result, *_ = any_auto_run
    seeds = result["seeds"]
    earlier = set(seeds["selection"]) | set(seeds["ablation"])
    assert seeds["final"] and not earlier & set(seeds["final"])
    assert min(seeds["final"]) >= FINAL_OFFSET > max(earlier)
    assert [r["seed"] for r in result["final"]["runs"]] == seeds["final"]


def test_planted_copies_across_splits_are_reported(auto_run):
    result, *_ = auto_run
    profile = result["profile"]
    assert profile["dropped"]["exact"] == PLANTED + 1 and sum(profile["leakage"].values()) > 0
    assert load_recipe(result["recipe"]).preprocess.duplicates == "drop"


def test_the_json_has_every_stage_and_the_budget(auto_run):
    result, _, events, out = auto_run
    test = result["final"]["test"]
    assert test["ci_low"] <= test["mean"] <= test["ci_high"] and test["n"] == 3
    values = test["values"]
    assert test["mean"] == pytest.approx(np.mean(values))
    budget = result["budget"]
    assert budget["total_s"] == 30.0 and set(budget["stages"]) == set(STAGES)
    for name in STAGES:
        assert budget["stages"][name]["spent_s"] >= 0
        assert ("" if name == "profile" else budget["stages"][name]["planned_s"]) is not None
    assert [e for e in events if e[1] == "done"] == [(s, "done") for s in STAGES]
    assert json.loads((out / "auto.json").read_text())["final"]["test"]["mean"] == test["mean"]
    # A loaded machine may let no trial finish in 30 s (one starts, and the deadline prunes it):
    # then the baseline goes on.
    assert sum(result["search"]["counts"].values()) >= 1 and result["winner"] in ("baseline", "search")


def test_the_search_starts_with_the_portfolio(auto_run):
    # Trial 0 is the table portfolio's first point, a logistic model (tunelab.study.auto.portfolio),
    # enqueued before TPE samples; the second point, a small MLP, follows when time allows.
    result, *_ = auto_run
    first = result["search"]["trials"][0]
    assert (first["number"], first["model"]) == (0, "linear")


def test_best_yaml_reruns_and_run_predicts(auto_run):
    *_, out = auto_run
    recipe = load_recipe(out / "best.yaml")
    assert not recipe.search and any(m.name == "early_stopping" for m in recipe.methods)
    predictor = load_run(out / "run")
    proba = predictor.predict_proba(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_a_rerun_resumes_every_stage_without_training(auto_run, planted_csv, monkeypatch):
    result, _, _, out = auto_run
    monkeypatch.setattr(tunelab.train, "fit", lambda *a, **k: pytest.fail("a finished stage trained again"))
    events = []
    again = run_auto(
        {"data": {"name": "csv", "path": str(planted_csv), "target": "label"}},
        budget="30s", out=out, final_seeds=3, on_event=lambda n, w, b, d: events.append((n, w)),
    )  # fmt: skip
    assert [w for _, w in events] == ["skip"] * len(STAGES)
    assert again["final"]["test"] == result["final"]["test"]


def test_text_auto_writes_best_yaml_a_text_run_predict_reads_raw_text_with_and_a_report(
    text_auto_run, tmp_path, capsys
):
    result, _, events, out = text_auto_run
    assert [e for e in events if e[1] == "done"] == [(s, "done") for s in STAGES]
    profile = result["profile"]
    assert profile["modality"] == "text" and profile["near_duplicates"] == TEXT_NEAR_THRESHOLD
    assert profile["dropped"] == {"exact": 1, "near": NEAR_PLANTED}
    recipe = load_recipe(out / "best.yaml")
    assert recipe.model.name in ("embedding_bag", "textcnn", "gru") and recipe.data.params["dedupe"]
    assert recipe.preprocess.near_duplicates == TEXT_NEAR_THRESHOLD
    # Every final run dropped the planted near copies as it made its split (the exact one went before).
    for run in result["final"]["runs"]:
        prep = json.loads((Path(run["run_dir"]) / "result.json").read_text())["info"]["preprocess"]
        near = prep["duplicates"]["near"]
        assert sum(near["within"].values()) + sum(near["across"].values()) == NEAR_PLANTED
        assert prep["duplicates"]["action"] == "dropped" and prep["documents"]["duplicates"] == 1
    assert not any(m.name in ("mixup", "cutmix", "tta") for m in recipe.methods)
    test = result["final"]["test"]
    assert 0.0 <= test["ci_low"] <= test["mean"] <= test["ci_high"] <= 1.0
    # The deployable run reads raw documents: tunelab predict on the raw test split reproduces
    # the run's test accuracy exactly.
    run_dir = out / "run"
    b = load_data(recipe.data, recipe.preprocess, keep_raw=True)
    docs, labels = b.raw.x_test, np.asarray(b.class_names)[b.raw.y_test]
    (tmp_path / "test.txt").write_text("\n".join(docs) + "\n")
    assert main(["predict", str(run_dir), str(tmp_path / "test.txt"), "--json"]) == 0
    predicted = np.array([r["prediction"] for r in json.loads(capsys.readouterr().out)["rows"]])
    accuracy = json.loads((run_dir / "result.json").read_text())["test"]["accuracy"]
    assert float((predicted == labels).mean()) == accuracy
    # Compress measured the text model (unstructured pruning and int8 need no token-shaped input).
    assert any(r["name"].startswith("unstructured") for r in result["compress"]["rows"])
    pytest.importorskip("matplotlib")
    html = write_report(out).read_text()
    assert "near copies" in html and "embedding_bag" in html
