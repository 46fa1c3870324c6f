"""`tunelab report` and the report every command writes: the path on a line, under "report" in
--json, --no-report, one-line errors."""

import json

from tunelab.cli import main

RECIPE = """\
data: {name: iris}
model: {name: mlp, hidden: [8]}
train: {epochs: 2, threads: 1, efficiency: false}
"""


RECIPE_DICT = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 2, "threads": 1, "efficiency": False},
}


def cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_its_report_and_says_where(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(RECIPE)
    code, out, _ = cli(["train", tmp_path / "r.yaml", "--out", tmp_path / "run"], capsys)
    assert code == 0 and f"report: {tmp_path / 'run' / 'report.html'}\n" in out
    code, out, _ = cli(
        ["train", tmp_path / "r.yaml", "--out", tmp_path / "run", "--overwrite", "--json"], capsys
    )
    assert json.loads(out)["report"] == str(tmp_path / "run" / "report.html")
    code, out, _ = cli(
        ["train", tmp_path / "r.yaml", "--out", tmp_path / "quiet", "--no-report", "--json"], capsys
    )
    assert json.loads(out)["report"] is None and not (tmp_path / "quiet" / "report.html").exists()


def test_report_rewrites_a_run_report_where_asked(tmp_path, capsys):
    from tunelab.train import fit

    run_dir = fit(RECIPE_DICT, out=tmp_path / "run").run_dir
    code, out, _ = cli(["report", run_dir, "--out", tmp_path / "r.html"], capsys)
    assert code == 0 and out == f"report: {tmp_path / 'r.html'}\n" and (tmp_path / "r.json").is_file()
    code, out, _ = cli(["report", run_dir, "--json", "--out", tmp_path / "j"], capsys)
    d = json.loads(out)
    assert (
        d["kind"] == "run" and d["report"] == str(tmp_path / "j" / "report.html") and "loss" in d["figures"]
    )


def test_a_bad_path_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["report", "no/such/run"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: no/such/run")
    assert "Traceback" not in err and "a run directory" in err


STUDY = """\
data: {name: iris}
model: {name: mlp, hidden: [8], dropout: 0.1}
train: {epochs: 2, threads: 1, batch_size: 32, efficiency: false}
search:
  optimizer.lr: {type: loguniform, low: 0.001, high: 0.1}
"""


def test_studies_write_their_report_in_runs_studies_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(STUDY)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    code, out, _ = cli(["ablate", "s.yaml", "--seeds", 2, "--storage", storage, "--json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["report"] == "runs/studies/ablate-s/report.html"
    assert (
        json.loads((tmp_path / "runs/studies/ablate-s/result.json").read_text())["variants"] == d["variants"]
    )
    assert (tmp_path / "runs/studies/ablate-s/base/seed-0/result.json").is_file()  # the test runs, kept there
    code, out, _ = cli(["cv", "s.yaml", "--folds", 2, "--storage", storage, "--out", "cvout"], capsys)
    assert (
        code == 0
        and out.endswith("report: cvout/report.html\n")
        and (tmp_path / "cvout/final/result.json").is_file()
    )
    code, out, _ = cli(
        ["search", "s.yaml", "--trials", 2, "--final-seeds", 0, "--storage", storage, "--quiet"], capsys
    )
    assert code == 0 and out == "" and (tmp_path / "runs/studies/s/report.html").is_file()
    code, out, _ = cli(
        ["report", "ablate-s", "--storage", storage], capsys
    )  # a study name finds its directory
    assert code == 0 and out == "report: runs/studies/ablate-s/report.html\n"
    code, out, _ = cli(["report", "s", "--storage", storage], capsys)
    assert code == 0 and out == "report: runs/studies/s/report.html\n"


def test_compare_overlays_other_runs_in_the_run_report(tmp_path, capsys):
    from tunelab.train import fit

    fit(RECIPE_DICT, out=tmp_path / "one")
    fit({**RECIPE_DICT, "train": {**RECIPE_DICT["train"], "seed": 1}}, out=tmp_path / "other")
    code, out, _ = cli(["report", tmp_path / "one", "--compare", tmp_path / "other", "--json"], capsys)
    assert code == 0 and "compare-loss" in json.loads(out)["figures"]
    html = (tmp_path / "one" / "report.html").read_text()
    assert "compared runs" in html and "train.seed" in html
    code, _, err = cli(["report", tmp_path / "one", "--compare", tmp_path / "nothing"], capsys)
    assert code == 2 and "not a run directory" in err
