"""tunelab train RECIPE [--set k=v ...] [--out DIR] [--json] [--quiet] [--print-recipe]"""

from __future__ import annotations

import argparse
import json
import sys

from tunelab.commands._common import EXIT_RUN_FAILED, add_overrides


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
    if args.json:
        data = result.to_dict()
        data.pop("history")
        print(json.dumps(data, indent=2))
    elif not args.quiet:
        print_run(result)
    if not result.ok:
        if not args.json:
            print(f"error: run {result.status}: {result.message}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0
