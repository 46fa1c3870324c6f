"""tunelab search RECIPE | worker --study NAME | studies | show STUDY: hyperparameter search.

tunelab search RECIPE [--trials N] [--timeout S] [--sampler tpe|random|cmaes|gp|nsga2]
                      [--pruner none|median|asha|hyperband] [--objective val.accuracy[,latency_ms]]
                      [--storage URL] [--study NAME] [--workers K] [--trial-nproc P]
                      [--final-seeds S] [--out DIR] [--set k=v ...] [--json] [--quiet] [--no-report]
tunelab worker --study NAME [--storage URL] [--threads T] [--timeout S] [--deadline UNIX_TIME] [--out DIR]
               [--trial-nproc P] [--quiet]
tunelab studies [--storage URL] [--json]
tunelab show STUDY [--storage URL] [--top N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tunelab.commands._common import EXIT_RUN_FAILED, add_overrides, add_report_option, report_line

STORAGE_HELP = (
    "SQLAlchemy URL of the study storage (default $TUNELAB_STORAGE, else sqlite:///runs/studies.db; "
    "postgresql://... to scale out; a password in it is never printed)"
)


def register(sub: argparse._SubParsersAction) -> None:
    from tunelab.study.search.options import DEFAULT_FINAL_SEEDS, DEFAULT_OUT, DEFAULT_TRIALS
    from tunelab.study.search.samplers import PRUNERS, SAMPLERS

    p = sub.add_parser(
        "search", help="search the recipe's `search:` space with Optuna, then retrain the best"
    )
    p.add_argument("recipe", help="path of a YAML recipe with a `search:` section")
    p.add_argument(
        "--trials",
        type=int,
        help=f"complete + pruned trials the study ends with (default {DEFAULT_TRIALS}; "
        "a resumed study keeps its own)",
    )
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS.names(), help="Optuna sampler (default tpe)")
    p.add_argument(
        "--pruner",
        default="none",
        choices=PRUNERS.names(),
        help="stop hopeless trials early on the per-epoch val metric (default none)",
    )
    p.add_argument(
        "--objective",
        action="append",
        help="val.<metric> (default: the recipe's monitor) or a cost (latency_ms, params, size_bytes, "
        "flops, train_seconds, throughput); several, comma-separated or repeated, give a Pareto front",
    )
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--study", help="study name (default: the recipe file's name); an existing one resumes")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes, each on its own GPU when there are GPUs (default: one per GPU, else 1; "
        "with --trial-nproc P, one per P GPUs)",
    )
    _add_trial_nproc(p)
    p.add_argument(
        "--final-seeds",
        type=int,
        default=DEFAULT_FINAL_SEEDS,
        help="retrain the best recipe on this many seeds, reading test once each "
        f"(default {DEFAULT_FINAL_SEEDS}; 0 skips)",
    )
    p.add_argument(
        "--out", default=DEFAULT_OUT, help=f"where best.yaml and the final runs go (default {DEFAULT_OUT})"
    )
    add_overrides(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines and no tables")
    add_report_option(p)
    p.set_defaults(run=run_search_command)
    _register_study_commands(sub)


def _register_study_commands(sub: argparse._SubParsersAction) -> None:
    """worker, studies, show: the commands that join or read a study ``search`` started."""
    from tunelab.study.search.options import DEFAULT_OUT

    p = sub.add_parser("worker", help="join a search study as one more worker (from any machine)")
    p.add_argument("--study", required=True, help="name of a study started by `tunelab search`")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--threads", type=int, help="torch threads for this worker (default: torch's)")
    p.add_argument("--seed", type=int, help="seed of this worker's sampler (default: fresh randomness)")
    p.add_argument("--timeout", type=float, help="seconds after which this worker starts no new trial")
    p.add_argument(
        "--deadline",
        type=float,
        help="a Unix time: start no trial that cannot end before it (estimated from the finished ones) "
        "and stop the one training then (set by `tunelab auto` for its workers)",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"where running trials keep their checkpoints, <out>/<study>/trials/ (default {DEFAULT_OUT})",
    )
    _add_trial_nproc(p)
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.set_defaults(run=run_worker_command)

    p = sub.add_parser("studies", help="list the studies in a storage")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_studies_command)

    p = sub.add_parser("show", help="summarize a study: best trials, parameter importances, final runs")
    p.add_argument("study", help="study name (see `tunelab studies`)")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--top", type=int, default=5, help="best trials to list (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_show_command)


def _add_trial_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trial-nproc",
        type=int,
        default=1,
        metavar="P",
        help="train each trial on P data-parallel processes (DDP through torch's elastic launcher: "
        "each worker's own P GPUs, or sharing the CPU's cores without GPUs; default 1). "
        "Needs a storage the processes can open (not sqlite:///:memory:)",
    )


def _print_trial(trial: Any, objectives: list[str]) -> None:
    from tunelab.report.search import trial_line

    print(trial_line(trial, objectives), file=sys.stderr, flush=True)


def run_search_command(args: argparse.Namespace) -> int:
    from tunelab.report.search import print_search
    from tunelab.study.search.run import run_search

    objective = ",".join(args.objective) if args.objective else None
    quiet = args.quiet or args.json
    result = run_search(
        args.recipe,
        trials=args.trials,
        timeout=args.timeout,
        sampler=args.sampler,
        pruner=args.pruner,
        objectives=objective,
        storage=args.storage,
        study_name=args.study,
        workers=args.workers,
        final_seeds=args.final_seeds,
        out_dir=args.out,
        overrides=args.overrides,
        quiet=quiet,
        on_trial=None if quiet else _print_trial,
        trial_nproc=args.trial_nproc,
    )
    report = None
    if args.report:
        from tunelab.report import write_report

        report = write_report(result, storage=args.storage)  # <out>/<study>/report.html
    if args.json:
        print(json.dumps({**result.to_dict(), "report": str(report) if report else None}, indent=2))
    elif not args.quiet:
        print_search(result)
        if report:
            print(report_line(report))
    if result.best is None:
        if not args.json:
            print(
                f"error: study {result.study}: no trial completed ({result.counts()}); "
                f"`tunelab show {result.study}` lists why",
                file=sys.stderr,
            )
        return EXIT_RUN_FAILED
    return 0


def run_worker_command(args: argparse.Namespace) -> int:
    from tunelab.study.search.workers import run_worker

    if args.threads is not None and args.threads < 1:
        from tunelab.errors import RecipeError

        raise RecipeError("--threads", args.threads, "must be >= 1")
    ran = run_worker(
        args.study,
        args.storage,
        threads=args.threads,
        seed=args.seed,
        timeout=args.timeout,
        deadline=args.deadline,
        on_trial=None if args.quiet else _print_trial,
        out_dir=args.out,
        trial_nproc=args.trial_nproc,
    )
    if not args.quiet:
        print(f"worker done: ran {ran} trial(s) of study {args.study}", file=sys.stderr)
    return 0


def run_studies_command(args: argparse.Namespace) -> int:
    from tunelab.report.search import print_studies
    from tunelab.study.search.studies import list_studies

    studies = list_studies(args.storage)
    if args.json:
        print(json.dumps([s.to_dict() for s in studies], indent=2))
    else:
        print_studies(studies)
    return 0


def run_show_command(args: argparse.Namespace) -> int:
    from tunelab.report.search import print_study
    from tunelab.study.search.studies import study_report

    report = study_report(args.study, args.storage, top=args.top)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_study(report)
    return 0
