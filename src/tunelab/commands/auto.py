"""tunelab auto [RECIPE] [--data NAME | --set data.*=...] --budget 30m [--workers K] [--storage URL]
[--out DIR] [--final-seeds S] [--tolerance T] [--json] [--quiet] [--no-report]"""

from __future__ import annotations

import argparse
import json
import sys

from tunelab.commands._common import add_overrides, add_report_option, report_line
from tunelab.io import finite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "auto",
        help="the whole tuning playbook under a time budget: profile, baseline, lr-find, search, ablation, "
        "final seeds, compression",
        description=(
            "Profile the data (copies, leakage), train a baseline, find the lr range, search (TPE + ASHA), "
            "ablate the winner on seeds and drop what does not earn its place, retrain the final recipe on "
            "new seeds (the only reading of the test split: mean and 95% CI), and compress it within a val "
            "tolerance. Writes best.yaml, run/ (deployable), report.html and auto.json under --out. Every "
            "stage is stored: running the same command again after Ctrl-C resumes. See docs/auto.md."
        ),
    )
    p.add_argument("recipe", nargs="?", help="a starting recipe (default: the modality's baseline)")
    p.add_argument("--data", help="a dataset name (tunelab datasets), instead of a recipe")
    p.add_argument(
        "--budget", default="30m", help="wall time for everything: 90s, 30m, 2h, 1h30m (default 30m)"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="search worker processes on this machine (default 1)"
    )
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///<out>/auto.db)")
    p.add_argument("--out", help="output directory (default runs/auto/<name>)")
    p.add_argument("--final-seeds", type=int, default=5, help="new seeds of the final runs (default 5)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.3,
        help="compression: points of val a model may lose (default 0.3)",
    )
    add_overrides(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (every stage's figures)")
    p.add_argument("--quiet", action="store_true", help="no live lines and no summary")
    add_report_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.report.auto import AutoLive, print_auto
    from tunelab.study.auto.run import run_auto

    live = AutoLive()
    live.enabled = live.enabled and not (args.quiet or args.json)
    try:
        with live:
            result = run_auto(
                args.recipe,
                data=args.data,
                overrides=args.overrides,
                budget=args.budget,
                workers=args.workers,
                storage=args.storage,
                out=args.out,
                final_seeds=args.final_seeds,
                tolerance=args.tolerance,
                on_event=live,
            )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            "interrupted: every finished stage and run is stored; run the same command again to resume"
        ) from None
    if args.report:
        from tunelab.report import write_report

        result["report"] = str(write_report(result["out"]))
    if args.json:
        print(json.dumps(finite(result), indent=2))
    elif not args.quiet:
        print_auto(result)
        if args.report:
            print(report_line(result["report"]), file=sys.stdout)
    return 0
