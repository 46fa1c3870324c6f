"""tunelab export RUN_DIR --format onnx|pt2|safetensors|torchscript [--out FILE] [--variant NAME]
[--dequantize] [--json]

Writes one file that takes raw inputs and returns probabilities (or values in the targets' units),
with the preprocessing inside; checks it against the run's predictor and prints ``max abs diff``.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained run (with its preprocessing) for deployment")
    p.add_argument("run_dir", help="a run directory written by `tunelab train`")
    # Checked by export_run (importing tunelab.export here would slow every command's start).
    p.add_argument("--format", required=True, help="onnx, pt2, safetensors or torchscript")
    p.add_argument("--out", help="the file to write (default: RUN_DIR/export/model.<ext>)")
    p.add_argument(
        "--variant", default=None, metavar="ROW[/seed-S]", help="a model `tunelab compress` wrote, e.g. int8"
    )
    p.add_argument(
        "--dequantize",
        action="store_true",
        help="export an int8 model as a float copy of its int8 weights (onnx, torchscript, safetensors)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.export import export_run

    result = export_run(args.run_dir, args.format, args.out, variant=args.variant, dequantize=args.dequantize)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    if result.format == "safetensors":
        print(f"wrote {result.path} ({result.bytes:,} bytes): weights, tunelab.data, tunelab.preprocess")
        print(f"max abs diff {result.max_abs_diff:.3g} between the saved and reloaded weights")
    else:
        checked = "onnxruntime" if result.format == "onnx" else "the reloaded file"
        print(f"wrote {result.path} ({result.bytes:,} bytes): raw inputs in, preprocessing included")
        diff = f"{result.max_abs_diff:.3g}"
        print(f"max abs diff {diff} on {result.samples} inputs ({checked} vs tunelab's predictor)")
    for note in result.notes:
        print(f"note: {note}")
    return 0
