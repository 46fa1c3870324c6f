"""tunelab train RECIPE [--set k=v ...] [--out DIR] [--json] [--quiet] [--print-recipe] [--no-report]"""

from __future__ import annotations

import argparse
import json
import sys

from tunelab.commands._common import EXIT_RUN_FAILED, add_overrides, add_report_option, report_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate one recipe")
    p.add_argument("recipe", help="path of a YAML recipe")
    add_overrides(p)
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<model>-<time>)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no tables")
    p.add_argument(
        "--print-recipe",
        action="store_true",
        help="print the validated recipe with every default (and --set applied) as YAML; do not train",
    )
    add_report_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.recipe import load_recipe
    from tunelab.report.terminal import Progress, print_run
    from tunelab.train import fit

    recipe = load_recipe(args.recipe, args.overrides)
    if args.print_recipe:
        # The same resolved form a run writes to DIR/recipe.yaml, so it repeats the run exactly.
        sys.stdout.write(recipe.to_yaml())
        return 0
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    progress = Progress(recipe.train.epochs) if show else None
    try:
        result = fit(recipe, out=args.out, methods=[progress] if progress else [])
    finally:
        if progress is not None:
            progress.close()
    report = None
    if args.report and result.run_dir is not None:
        from tunelab.report import write_report

        report = write_report(result)  # after fit: the loop itself never imports the report layer
        if "mlflow" in result.info:
            from tunelab.loggers import log_files

            log_files(result.info, [report, report.with_suffix(".json")])
    if args.json:
        data = result.to_dict()
        data.pop("history")
        data["report"] = str(report) if report else None
        print(json.dumps(data, indent=2))
    elif not args.quiet:
        print_run(result)
        if report:
            print(report_line(report))
    if not result.ok:
        if not args.json:
            print(f"error: run {result.status}: {result.message}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0
