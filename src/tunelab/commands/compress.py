"""tunelab compress RUN_DIR [--sparsity 0.5,0.8,0.9,0.95] [--structured] [--quantize]
[--finetune-epochs E] [--seeds S] [--scope global|layerwise] [--schedule cubic|linear|oneshot]
[--threads N] [--json] [--quiet] [--no-report]"""

from __future__ import annotations

import argparse
import json
import sys

from tunelab.commands._common import add_report_option, report_line
from tunelab.errors import TunelabError


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}; give comma-separated fractions, e.g. 0.5,0.8,0.9"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one fraction, e.g. 0.9")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress",
        help="prune / quantize a trained run, fine-tune, and measure size, speed and accuracy",
    )
    p.add_argument("run_dir", help="a run directory written by `tunelab train`")
    p.add_argument(
        "--sparsity",
        type=_fractions,
        default=[0.5, 0.8, 0.9, 0.95],
        metavar="S1,S2,...",
        help="fractions of weights to zero (or, with --structured, of channels to remove); "
        "default 0.5,0.8,0.9,0.95",
    )
    p.add_argument("--structured", action="store_true", help="remove whole channels/neurons (Torch-Pruning)")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="add int8 rows, dynamic and weight-only (Linear layers, torchao)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=None,
        metavar="E",
        help="epochs of the run's recipe after pruning (default: a quarter of its epochs; 0: none)",
    )
    p.add_argument("--seeds", type=int, default=1, metavar="S", help="fine-tunings per row (mean ± CI)")
    p.add_argument(
        "--scope",
        choices=["global", "layerwise"],
        default=None,
        help="rank weights/channels across layers or within each (default: global unstructured, "
        "layerwise structured)",
    )
    p.add_argument(
        "--schedule",
        choices=["cubic", "linear", "oneshot"],
        default="cubic",
        help="unstructured: reach the sparsity gradually over the first half of fine-tuning "
        "(cubic, linear) or at once (oneshot)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads for training and timing")
    p.add_argument("--json", action="store_true", help="print one JSON object with `rows`")
    p.add_argument("--quiet", action="store_true", help="no progress lines and no table")
    add_report_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.report.compress import compress_json, print_compress
    from tunelab.study.compress import compress_run

    if args.threads is not None and args.threads < 1:
        raise TunelabError(f"--threads: got {args.threads}; must be >= 1")
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    result = compress_run(
        args.run_dir,
        sparsities=args.sparsity,
        structured=args.structured,
        quantize=args.quantize,
        finetune_epochs=args.finetune_epochs,
        seeds=args.seeds,
        scope=args.scope,
        schedule=args.schedule,
        threads=args.threads,
        progress=(lambda msg: print(msg, file=sys.stderr)) if show else None,
    )
    report = None
    if args.report:
        from tunelab.report import write_report

        report = write_report(result)  # RUN_DIR/compress/report.html, beside compress/result.json
    if args.json:
        print(json.dumps({**compress_json(result), "report": str(report) if report else None}, indent=2))
    elif not args.quiet:
        print_compress(result)
        if report:
            print(report_line(report))
    return 0
