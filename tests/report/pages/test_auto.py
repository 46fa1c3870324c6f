from __future__ import annotations

import json

from tunelab.report import write_report
from tunelab.report.html import render_html
from tunelab.report.pages.auto import build_auto_report

STAGE = {"planned_s": 10.0, "spent_s": 8.0, "note": ""}
WHY = {"ci_low": -0.05, "ci_high": -0.01, "ci_level": 0.975, "p_value": 0.01}
AUTO = {
    "kind": "auto",
    "name": "iris",
    "seeds": {"selection": [0], "ablation": [1, 2, 3], "final": [1000, 1001, 1002]},
    "budget": {"total_s": 60.0, "spent_s": 50.0, "rule": "r",
               "stages": {"baseline": STAGE, "search": STAGE}},
    "profile": {"task": "classification", "modality": "table", "input_shape": [4], "dropped": {"exact": 13},
                "leakage": {"test~train": 4}, "notes": ["leakage: copies across splits"]},
    "baseline": {"curve": [0.8, 0.9], "monitor": "val.accuracy", "status": "completed"},
    "lr_find": {"lrs": [1e-4, 1e-3, 1e-2], "smoothed": [1.0, 0.5, 2.0], "suggested_lr": 1e-3,
                "range": [1e-4, 1e-2]},
    "search": {"objective": "val.accuracy", "counts": {"COMPLETE": 2}, "epochs": 10,
               "trials": [{"number": 0, "value": 0.9}, {"number": 1, "value": 0.95}],
               "best": {"number": 1, "value": 0.95, "params": {"optimizer.name": "adam"}}},
    "ablation": {"seeds": [1, 2, 3], "note": "",
                 "variants": [{"name": "-l2", "difference": -0.03, "ci_low": -0.05, "ci_high": -0.01,
                               "outcome": "helped"},
                              {"name": "-ema", "difference": 0.0, "ci_low": -0.02, "ci_high": 0.02,
                               "outcome": "no detectable difference"}],
                 "kept": [{"name": "l2", "delta": -0.03, "effect": "l2 helped", **WHY}],
                 "dropped": [{"name": "ema", "delta": 0.0, "effect": "ema: no detectable difference",
                              **WHY}]},
    "final": {"metric": "accuracy", "test": {"mean": 0.95, "ci_low": 0.9, "ci_high": 1.0, "n": 3},
              "val": {"mean": 0.96, "ci_low": 0.93, "ci_high": 0.99},
              "runs": [{"seed": 1000, "status": "completed", "val": {"accuracy": 0.96},
                        "test": {"accuracy": 0.95}, "epochs": 9}], "run_dir": "run", "run_seed": 1000},
    "compress": {"metric": "accuracy", "tolerance": 0.3, "smallest": "int8", "fastest": "dense", "rows": [
        {"name": "dense", "val": 0.96, "val_drop": 0.0, "within": True, "bytes": 2000, "nonzero_params": 15,
         "latency_ms": 0.01, "speedup": 1.0, "throughput": 1e6}]},
    "recipe": {"model": {"name": "mlp"}},
}  # fmt: skip


def test_every_stage_has_its_section_and_figures():
    report = build_auto_report(AUTO)
    assert report.kind == "auto" and "0.9500 [0.9000, 1.0000]" in report.summary
    assert {f.id for f in report.figures()} == {"budget", "baseline", "lr-find", "search", "ablation"}
    titles = [s.title for s in report.sections]
    assert titles[0] == "answer" and "ablation (Occam step)" in titles and "compress" in titles
    occam = next(t for t in report.tables() if t.title == "Occam step")
    assert [r[:2] for r in occam.rows] == [["l2", "kept"], ["ema", "dropped"]]
    assert any("read only by the final runs" in n for n in report.notes())
    assert "<svg" in render_html(report)


def test_a_stage_without_figures_says_why():
    empty = {**AUTO, "search": {"trials": []}, "ablation": {"note": "fewer than 2 seeds"}, "compress": {}}
    notes = build_auto_report(empty).notes()
    assert any("no search trial finished" in n for n in notes) and any(
        "fewer than 2 seeds" in n for n in notes
    )


def test_tunelab_report_rebuilds_it_from_the_output_directory(tmp_path):
    (tmp_path / "auto.json").write_text(json.dumps(AUTO))
    (tmp_path / "best.yaml").write_text("model: {name: mlp}\n")  # an auto directory, not a search's
    html = write_report(tmp_path)
    assert html == tmp_path / "report.html" and "tunelab auto: iris" in html.read_text()


def test_the_final_interval_says_it_is_a_t_interval_clipped_to_the_metric_range():
    report = build_auto_report(AUTO)
    answer = report.tables()[0]
    assert "a t-interval over the seeds, clipped to the metric's range [0, 1]" in answer.title
    loss = {**AUTO, "final": {**AUTO["final"], "metric": "loss"}}
    assert "clipped" not in build_auto_report(loss).tables()[0].title


def test_seeds_read_as_seeds_and_trial_counts_as_words():
    report = build_auto_report(AUTO)
    final = next(t for t in report.tables() if t.title.startswith("final runs"))
    assert final.rows[0][0] == "1000"  # not "1,000"
    html = render_html(report)
    assert "2 complete" in html and "total 60.0 s, spent 50.0 s" in html and "{'COMPLETE'" not in html
