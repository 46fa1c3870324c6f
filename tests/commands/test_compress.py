"""`tunelab compress RUN_DIR` on the command line: the JSON keys, the table, and a bad --sparsity."""

from __future__ import annotations

import json

import pytest

from tunelab.cli import main

RECIPE = """\
data: {name: iris}
model: {name: mlp, hidden: [32, 32]}
optimizer: {name: adam, lr: 0.01}
train: {epochs: 5, batch_size: 16, threads: 1, efficiency: false, tensorboard: false}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory made by `tunelab train`, as a user would make it."""
    out = tmp_path_factory.mktemp("compress")
    (out / "iris.yaml").write_text(RECIPE)
    assert main(["train", str(out / "iris.yaml"), "--out", str(out / "run"), "--quiet", "--no-report"]) == 0
    return out / "run"


def test_json_has_the_documented_keys_and_the_table_renders_it(run_dir, capsys):
    args = ["compress", str(run_dir), "--sparsity", "0.9", "--finetune-epochs", "1", "--threads", "1"]
    assert main([*args, "--json", "--no-report"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["threads"] == 1 and len(d["rows"]) == 2
    for row in d["rows"]:
        for key in ("sparsity", "nonzero_params", "size_bytes", "latency_ms", "pareto"):
            assert key in row
        assert 0 <= row["val"]["accuracy"] <= 1 and "accuracy" in row["test"]
    assert d["rows"][1]["sparsity"] == 0.9 and d["report"] is None
    assert main(["compress", str(run_dir), "--sparsity", "0.9", "--finetune-epochs", "0"]) == 0
    text = capsys.readouterr().out
    assert "unstructured-0.9" in text and "val accuracy" in text
    assert f"report: {run_dir / 'compress' / 'report.html'}\n" in text  # beside compress/result.json


def test_a_sparsity_that_is_no_fraction_is_a_usage_error(run_dir, capsys):
    with pytest.raises(SystemExit):
        main(["compress", str(run_dir), "--sparsity", "half"])
    assert "comma-separated fractions" in capsys.readouterr().err
