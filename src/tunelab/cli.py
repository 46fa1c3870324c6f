"""The command line: a thin layer over the Python API, one module per command in commands/.

    tunelab train RECIPE [--set k=v ...] [--out DIR] [--json] [--quiet] [--no-report]
    tunelab report PATH [--out report.html] [--open] [--json]
    tunelab methods | models | datasets [--json]

User errors print one line naming what is wrong and how to fix it, and exit with status 2;
a failed (diverged) run exits with 1; Ctrl-C exits with 130 and leaves consistent files.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tunelab.commands._common import EXIT_INTERRUPTED, EXIT_USER_ERROR
from tunelab.errors import TunelabError

# The command modules, in the order `tunelab --help` lists them.
COMMANDS = ("train", "search", "ablate", "cv", "lr_find", "compress", "report", "listing")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunelab", description="Measured, reproducible deep-learning tuning.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tunelab.commands.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except TunelabError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        print(f"\n{e or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
