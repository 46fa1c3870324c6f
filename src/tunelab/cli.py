"""The command line: a thin layer over the Python API, one module per command in commands/.

    tunelab train RECIPE [--set k=v ...] [--out DIR [--overwrite]] [--json] [--quiet] [--print-recipe]
                         [--no-report]
    tunelab train --resume RUN_DIR    (continue a killed run from its last.pt)
    tunelab predict RUN_DIR INPUT [--out predictions.csv] [--batch-size N] [--json]
    tunelab export RUN_DIR --format onnx|pt2|safetensors|torchscript [--out FILE]
    tunelab methods | models | datasets | optimizers | schedules [--json]
    tunelab catalogue [--out FILE]
    tunelab cache [--clear] [--json]   (list or clear the cache folder, $TUNELAB_CACHE)
    tunelab report PATH [--out report.html] [--open] [--json] [--compare RUN_DIR ...]
    tunelab --version              (also: python -m tunelab ...)

User errors print one line naming what is wrong and how to fix it, and exit with status 2;
a failed (diverged) run exits with 1; Ctrl-C exits with 130 and leaves consistent files.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from tunelab import __version__
from tunelab.commands._common import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USER_ERROR
from tunelab.errors import TunelabError
from tunelab.redact import redact_text

# The command modules, in the order `tunelab --help` lists them.
COMMANDS = (
    "auto",
    "train",
    "predict",
    "export",
    "search",
    "ablate",
    "cv",
    "lr_find",
    "compress",
    "report",
    "listing",
    "cache",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunelab", description="Measured, reproducible deep-learning tuning.")
    p.add_argument("--version", action="version", version=f"tunelab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tunelab.commands.{name}").register(sub)
    return p


def _quiet_library_logs() -> None:
    """torchao logs a warning for each optional CUDA kernel library it cannot load (every CPU
    machine), and torch's pytree a deprecation for each enum torchao registers; transformers
    imports torchao whenever it is installed. None of it concerns a tunelab user: on the command
    line they are silenced. Python users keep their own logging configuration."""
    logging.getLogger("torchao").addHandler(logging.NullHandler())  # only where no handler is set
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_library_logs()
    # Every message is redacted: a storage URL or a driver's error may carry a password.
    try:
        return args.run(args)
    except TunelabError as e:
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        print(f"\n{redact_text(str(e)) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        # A bug or an unexpected library error: the traceback is printed as Python would print
        # it (exit status 1), with any credentials in the messages masked.
        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return EXIT_RUN_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
