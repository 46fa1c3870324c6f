"""The command line: a thin layer over the Python API.

    tunelab train RECIPE [--set k=v ...] [--out DIR] [--json] [--quiet]
    tunelab methods | models | datasets [--json]

User errors print one line naming what is wrong and how to fix it, and exit with status 2;
a diverged run exits with 1; Ctrl-C exits with 130 and leaves a consistent run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from tunelab.errors import TunelabError

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunelab",
        description="Measured, reproducible deep-learning performance tuning.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train and evaluate one recipe")
    t.add_argument("recipe", help="path of a YAML recipe")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set optimizer.lr=0.01 (repeatable)",
    )
    t.add_argument("--out", help="run directory (default: runs/<dataset>-<model>-<time>)")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    t.add_argument("--quiet", action="store_true", help="no progress bar and no tables")

    for name, what in (
        ("methods", "training methods"),
        ("models", "model families"),
        ("datasets", "datasets"),
    ):
        s = sub.add_parser(name, help=f"list the {what} with their parameters")
        s.add_argument("--json", action="store_true", help="print JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except TunelabError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        print(f"\n{e or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _train(args: argparse.Namespace) -> int:
    from tunelab.recipe import load_recipe
    from tunelab.report.terminal import Progress, print_run
    from tunelab.train import fit

    recipe = load_recipe(args.recipe, args.overrides)
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


def _registry_command(kind: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from tunelab.report.terminal import print_registry

        reg = _registry(kind)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "name": e.name,
                            "description": e.description,
                            "aliases": list(e.aliases),
                            "params": [
                                {
                                    "name": p.name,
                                    "type": _type_name(p.hint),
                                    "default": None if p.required else p.default,
                                    "required": p.required,
                                    "doc": p.doc,
                                }
                                for p in e.params
                            ],
                        }
                        for e in reg
                    ],
                    indent=2,
                    default=str,
                )
            )
        else:
            print_registry(reg)
        return 0

    return run


def _type_name(hint: Any) -> str:
    from tunelab.schema import describe_type

    return describe_type(hint)


_REGISTRIES = {
    "methods": ("tunelab.methods", "METHODS"),
    "models": ("tunelab.models", "MODELS"),
    "datasets": ("tunelab.data", "DATASETS"),
}


def _registry(kind: str) -> Any:
    import importlib

    module, attr = _REGISTRIES[kind]
    return getattr(importlib.import_module(module), attr)


_COMMANDS = {
    "train": _train,
    **{kind: _registry_command(kind) for kind in _REGISTRIES},
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
