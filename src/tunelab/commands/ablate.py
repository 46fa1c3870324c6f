"""tunelab ablate RECIPE [--seeds S] [--set k=v ...] [--storage URL] [--study NAME] [--json] [--quiet]
[--test t|wilcoxon] [--correction holm|bonferroni] [--alpha A] [--out DIR] [--no-report]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tunelab.commands._common import add_overrides, add_report_option, report_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="which methods help: the recipe without each method / regularizer, paired over seeds",
        description=(
            "Train the base recipe and each variant (each method removed, dropout and batch norm "
            "switched off, the candidates of the recipe's `ablation:` section) on the same seeds and "
            "split; report each variant's paired difference to the base with a Holm-corrected p-value "
            "and an interval at the level that correction gives it (so a verdict and its interval always "
            "agree). Runs are stored: running the command again resumes."
        ),
    )
    p.add_argument("recipe", help="path of a YAML recipe")
    p.add_argument("--seeds", type=int, default=5, help="seeds per variant: train.seed, +1, ... (default 5)")
    add_overrides(p)
    p.add_argument(
        "--storage", help="Optuna storage URL (default $TUNELAB_STORAGE, else sqlite:///runs/studies.db)"
    )
    p.add_argument("--study", help="study name (default ablate-<recipe file name>)")
    p.add_argument(
        "--test",
        choices=("t", "wilcoxon"),
        default="t",
        help="paired test: t (default) or wilcoxon (signed-rank; needs >= 6 seeds for a 95%% interval)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="the family's significance level (default 0.05)")
    p.add_argument(
        "--correction",
        choices=("holm", "bonferroni"),
        default="holm",
        help="for several variants: holm (default; step-down, each interval at its Holm step's level) "
        "or bonferroni (every interval at 1 - alpha/m: simultaneous, finds a little less)",
    )
    p.add_argument(
        "--out",
        help="output directory: report.html, report.json, result.json and the run directories of the final "
        "base/best test runs (default runs/studies/<study>)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", action="store_true", help="no per-run lines on stderr and no tables")
    add_report_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.recipe import load_recipe
    from tunelab.report.study import print_ablation, run_line
    from tunelab.study.ablation import run_ablation
    from tunelab.study.search.options import DEFAULT_OUT

    recipe = load_recipe(args.recipe, args.overrides)
    study = args.study or f"ablate-{Path(args.recipe).stem}"
    out = Path(args.out) if args.out else Path(DEFAULT_OUT) / study
    on_run = None if (args.quiet or args.json) else (lambda rec: print(run_line(rec), file=sys.stderr))
    try:
        result = run_ablation(
            recipe,
            seeds=args.seeds,
            storage=args.storage,
            study_name=study,
            out_dir=out,
            test=args.test,
            alpha=args.alpha,
            correction=args.correction,
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
        print_ablation(result)
        if report:
            print(report_line(report))
    return 0
