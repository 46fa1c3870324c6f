"""tunelab methods | models | datasets [--json]: list a registry with descriptions and parameters."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

REGISTRIES = {
    "methods": ("tunelab.methods", "METHODS", "training methods"),
    "models": ("tunelab.models", "MODELS", "model families"),
    "datasets": ("tunelab.data", "DATASETS", "datasets"),
}


def register(sub: argparse._SubParsersAction) -> None:
    for name, (_, _, what) in REGISTRIES.items():
        p = sub.add_parser(name, help=f"list the {what} with their parameters")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(run=run, registry=name)


def registry(kind: str) -> Any:
    module, attr, _ = REGISTRIES[kind]
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
