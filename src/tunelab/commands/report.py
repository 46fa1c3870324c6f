"""tunelab report PATH [--out report.html] [--open] [--json] [--storage URL] [--compare RUN_DIR ...]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.commands._common import report_line

if TYPE_CHECKING:
    from tunelab.report.model import Report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report of a run, a search, an ablation, a CV or a compression",
        description=(
            "Build the report of PATH and write report.html (one file that works offline: every figure "
            "inline, no network request) and report.json (the figures' data). PATH is a run directory, "
            "the output directory of search / ablate / cv (runs/studies/<study>) or compress "
            "(RUN_DIR/compress), a directory written by `lr-find --out`, or a study name (with --storage)."
        ),
    )
    p.add_argument(
        "path", metavar="PATH", help="a run directory, a study's output directory, or a study name"
    )
    p.add_argument(
        "--out", help="the HTML file to write (default: report.html in the run's or study's directory)"
    )
    p.add_argument("--storage", help="Optuna storage URL of the study (default sqlite:///runs/studies.db)")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN_DIR",
        help="other runs to overlay on this run's loss curves, with their final val figures and the "
        "recipe fields that differ (e.g. the same recipe on 1 and 2 processes)",
    )
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.add_argument("--json", action="store_true", help="print the paths and the report's figures as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.report.write import build_report, save

    report, where = build_report(args.path, storage=args.storage)
    if args.compare:
        _add_comparison(report, args.path, args.compare)
    html = Path(args.out) if args.out else where / "report.html"
    if html.suffix.lower() not in (".html", ".htm"):
        html = html / "report.html"
    path = save(report, html)
    if args.json:
        out = {
            "report": str(path),
            "report_json": str(path.with_suffix(".json")),
            "kind": report.kind,
            "title": report.title,
            "figures": [f.id for f in report.figures()],
            "notes": report.notes(),
        }
        print(json.dumps(out, indent=2))
    else:
        print(report_line(path))
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def _add_comparison(report: Report, path: str, others: list[str]) -> None:
    """Put the compared runs' section right after the run's own training curves."""
    from tunelab.errors import TunelabError
    from tunelab.report.pages.compare import compare_section
    from tunelab.report.pages.run import read_run_dir

    if report.kind != "run":
        raise TunelabError(f"--compare: {path} is a {report.kind} report; --compare overlays run directories")
    report.sections.insert(1, compare_section([read_run_dir(p) for p in [path, *others]]))
