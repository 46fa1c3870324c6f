"""tunelab methods | models | datasets | optimizers | schedules [--json]: list a registry with
descriptions and parameters; tunelab catalogue [--out FILE]: all of them as Markdown."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

# command -> (module, attribute, what it lists, title in the catalogue)
REGISTRIES = {
    "methods": ("tunelab.methods", "METHODS", "training methods", "Methods"),
    "models": ("tunelab.models", "MODELS", "model families", "Models"),
    "datasets": ("tunelab.data", "DATASETS", "datasets", "Datasets"),
    "optimizers": ("tunelab.optim", "OPTIMIZERS", "optimizers", "Optimizers"),
    "schedules": ("tunelab.optim", "SCHEDULES", "learning-rate schedules", "Schedules"),
}


def register(sub: argparse._SubParsersAction) -> None:
    for name, (_, _, what, _) in REGISTRIES.items():
        p = sub.add_parser(name, help=f"list the {what} with their parameters")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(run=run, registry=name)
    p = sub.add_parser("catalogue", help="every registry as Markdown (the source of docs/catalogue.md)")
    p.add_argument("--out", help="write to this file instead of printing")
    p.set_defaults(run=run_catalogue)


def registry(kind: str) -> Any:
    module, attr, _, _ = REGISTRIES[kind]
    return getattr(importlib.import_module(module), attr)


def run(args: argparse.Namespace) -> int:
    from tunelab.report.terminal import print_registry
    from tunelab.schema import describe_type

    reg = registry(args.registry)
    if args.json:
        entries = [
            {
                "name": e.name,
                "description": e.description,
                "aliases": list(e.aliases),
                "params": [
                    {
                        "name": p.name,
                        "type": describe_type(p.hint),
                        "default": None if p.required else p.default,
                        "required": p.required,
                        "doc": p.doc,
                    }
                    for p in e.params
                ],
            }
            for e in reg
        ]
        print(json.dumps(entries, indent=2, default=str))
    else:
        print_registry(reg)
    return 0


def catalogue() -> str:
    """The Markdown of docs/catalogue.md, generated from the registries now."""
    from tunelab.report.catalogue import catalogue_markdown

    return catalogue_markdown([(title, registry(kind)) for kind, (*_, title) in REGISTRIES.items()])


def run_catalogue(args: argparse.Namespace) -> int:
    from tunelab.errors import TunelabError

    text = catalogue()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as e:
        raise TunelabError(f"--out {args.out}: cannot write ({e.strerror}); choose a writable path") from None
    print(f"wrote {args.out}")
    return 0
