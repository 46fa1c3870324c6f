"""tunelab cv RECIPE [--folds K] [--param path=v1,v2,...] [--choose best|1se] [--set k=v ...] [--out DIR]
[--json] [--no-report]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.commands._common import EXIT_RUN_FAILED, add_overrides, add_report_option, report_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cv",
        help="K-fold cross-validation on train+val, optionally over the values of one parameter",
        description=(
            "Stratified K-fold cross-validation on train+val (the test split is left out). For each "
            "value of --param: per-fold scores, mean and 95% interval; the choice by best mean and "
            "by the one-standard-error rule; then one retrain on the recipe's train/val split with the "
            "chosen value and one test evaluation."
        ),
    )
    p.add_argument("recipe", help="path of a YAML recipe")
    p.add_argument("--folds", type=int, default=5, help="number of folds K (default 5)")
    p.add_argument(
        "--param",
        metavar="PATH=V1,V2,...",
        help=(
            "a recipe path and the values to cross-validate, listed simplest first (most regularized "
            "or smallest model first): the one-SE rule picks the first value within one standard error "
            "of the best, e.g. --param methods.l2.weight=0.1,0.01,0.001"
        ),
    )
    p.add_argument(
        "--choose",
        choices=("best", "1se"),
        default="best",
        help="which choice is retrained and tested: best mean (default) or the one-standard-error rule",
    )
    add_overrides(p)
    p.add_argument(
        "--storage", help="Optuna storage URL (default $TUNELAB_STORAGE, else sqlite:///runs/studies.db)"
    )
    p.add_argument("--study", help="study name (default cv-<recipe file name>)")
    p.add_argument(
        "--out",
        help="output directory: report.html, report.json, result.json and final/, the run directory of the "
        "final retrain (default runs/studies/<study>)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", action="store_true", help="no per-run lines on stderr and no tables")
    add_report_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.recipe import load_recipe
    from tunelab.report.study import cv_run_line, print_cv
    from tunelab.study.cv import parse_param, run_cv
    from tunelab.study.search.options import DEFAULT_OUT

    recipe = load_recipe(args.recipe, args.overrides)
    param = parse_param(args.param) if args.param else None
    study = args.study or f"cv-{Path(args.recipe).stem}"
    out = Path(args.out) if args.out else Path(DEFAULT_OUT) / study
    on_run = None if (args.quiet or args.json) else (lambda rec: print(cv_run_line(rec), file=sys.stderr))
    try:
        result = run_cv(
            recipe,
            folds=args.folds,
            param=param,
            choose=args.choose,
            storage=args.storage,
            study_name=study,
            out=out / "final",
            on_run=on_run,
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted: the finished runs are stored in study {study!r}; run the same command "
            "again to resume"
        ) from None
    report = None
    if args.report:
        from tunelab.report import write_report

        report = write_report(result, out=out)  # also keeps result.json there, for `tunelab report`
    if args.json:
        print(json.dumps({**result.to_dict(), "report": str(report) if report else None}, indent=2))
    elif not args.quiet:
        print_cv(result)
        if report:
            print(report_line(report))
    if result.final.status not in ("completed", "stopped_early"):
        if not args.json:
            print(
                f"error: the final retrain {result.final.status}; see its message in the study",
                file=sys.stderr,
            )
        return EXIT_RUN_FAILED
    return 0
