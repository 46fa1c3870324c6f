"""tunelab train RECIPE [--set k=v ...] [--out DIR [--overwrite]] [--json] [--quiet] [--print-recipe]
              [--no-report] [--nproc N [--nnodes M --node-rank R --master-addr HOST --master-port P]]
tunelab train --resume RUN_DIR [--json] [--quiet] [--no-report] [--nproc N ...]

``--resume`` continues a killed or interrupted run from its ``last.pt`` (the run directory holds
its recipe; a recipe or ``--set`` given too must not change it). A run that has finished is not
trained again: the command says where its result is and exits 0, so a job that reruns the same
``--resume`` command after a preemption succeeds either way.

``--nproc N`` trains with N data-parallel processes through torchrun (``tunelab.commands.launch``,
``tunelab.distributed``); under DDP only rank 0 prints and writes the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tunelab.commands._common import (
    EXIT_RUN_FAILED,
    EXIT_USER_ERROR,
    add_overrides,
    add_report_option,
    report_line,
)
from tunelab.commands.launch import add_launch_options, launch, wants_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate one recipe, or continue a killed run")
    p.add_argument("recipe", nargs="?", help="path of a YAML recipe (not needed with --resume)")
    add_overrides(p)
    p.add_argument("--out", help="run directory (default: runs/<dataset>-<model>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint (last.pt), with its own recipe",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (all of its files)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no tables")
    p.add_argument(
        "--print-recipe",
        action="store_true",
        help="print the validated recipe with every default (and --set applied) as YAML; do not train",
    )
    add_report_option(p)
    add_launch_options(p)
    p.set_defaults(run=run)


def _worker_command(args: argparse.Namespace) -> list[str]:
    """This command's arguments, less the launch options: what each DDP process runs."""
    command = ["train"] + ([args.recipe] if args.recipe is not None else [])
    for item in args.overrides:
        command += ["--set", item]
    for flag, value in (("--out", args.out), ("--resume", args.resume)):
        if value is not None:
            command += [flag, value]
    flags = {"--overwrite": args.overwrite, "--json": args.json, "--quiet": args.quiet}
    return command + [f for f, on in flags.items() if on] + ([] if args.report else ["--no-report"])


def run(args: argparse.Namespace) -> int:
    from tunelab.recipe import load_recipe
    from tunelab.report.terminal import Progress, print_run
    from tunelab.runs import RunFinished, check_resumable
    from tunelab.train import fit

    if args.recipe is None and args.resume is None:
        print("error: give a RECIPE to train, or --resume RUN_DIR to continue a run", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.resume is not None and not args.print_recipe:
        try:
            check_resumable(Path(args.resume))
        except RunFinished as e:
            print(f"nothing to resume: {e}", file=sys.stderr)
            return 0
    source = args.recipe if args.recipe is not None else Path(args.resume) / "recipe.yaml"
    recipe = load_recipe(source, args.overrides)
    if args.print_recipe:
        # The same resolved form a run writes to DIR/recipe.yaml, so it repeats the run exactly.
        sys.stdout.write(recipe.to_yaml())
        return 0
    if wants_launch(args):
        from tunelab.distributed import Dist, check_batch
        from tunelab.optim import OPTIMIZERS

        # Refused here once rather than by every process.
        full = bool(OPTIMIZERS.get(recipe.optimizer.name).tags.get("full_batch"))
        check_batch(recipe.train.batch_size, Dist(world=args.nproc * args.nnodes), full)
        return launch(args, _worker_command(args))
    if int(os.environ.get("RANK", 0)) > 0:  # under DDP, rank 0 alone prints and writes the report
        args.quiet, args.json, args.report = True, False, False
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    progress = Progress(recipe.train.epochs) if show else None
    try:
        result = fit(
            recipe,
            out=args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            methods=[progress] if progress else [],
        )
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
        if not args.json and int(os.environ.get("RANK", 0)) == 0:
            print(f"error: run {result.status}: {result.message}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0
