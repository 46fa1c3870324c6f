"""What several commands share: exit codes and the --set option."""

from __future__ import annotations

import argparse

EXIT_RUN_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set optimizer.lr=0.01 (repeatable)",
    )


def add_report_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write report.html and report.json (an HTML report of figures, written by default)",
    )


def report_line(path: object) -> str:
    """The line the terminal shows for a written report."""
    return f"report: {path}"
