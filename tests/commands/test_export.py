"""`tunelab export RUN_DIR --format ...`: the printed check, JSON, exit codes."""

from __future__ import annotations

import json

from tunelab.cli import main


def test_onnx_prints_the_max_abs_diff(wine_run, tmp_path, capsys):
    out = tmp_path / "wine.onnx"
    assert main(["export", str(wine_run), "--format", "onnx", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"wrote {out} (") and lines[0].endswith(
        "raw inputs in, preprocessing included"
    )
    words = lines[1].split()
    assert words[:3] == ["max", "abs", "diff"] and float(words[3]) <= 1e-4
    assert lines[1].endswith("on 256 inputs (onnxruntime vs tunelab's predictor)") and len(lines) == 2


def test_json_and_default_path(wine_run, capsys):
    assert main(["export", str(wine_run), "--format", "safetensors", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["path"] == str(wine_run / "export" / "model.safetensors") and d["max_abs_diff"] == 0.0
    assert d["bytes"] > 0 and d["format"] == "safetensors"


def test_bad_arguments_exit_2(wine_run, tmp_path, capsys):
    assert main(["export", str(wine_run), "--format", "tflite"]) == 2
    assert (
        "--format: got 'tflite'; choose one of onnx, pt2, safetensors, torchscript" in capsys.readouterr().err
    )
    assert main(["export", str(tmp_path / "none"), "--format", "pt2"]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["export", str(wine_run), "--format", "pt2", "--variant", "int8"]) == 2
    assert "no compressed variant 'int8'; run `tunelab compress` on it first" in capsys.readouterr().err
