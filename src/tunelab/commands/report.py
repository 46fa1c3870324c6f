"""tunelab report PATH [--out report.html] [--open] [--json] [--storage URL]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunelab.commands._common import report_line


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
    p.add_argument("--open", action="store_true", help="open the report in the default web browser")
    p.add_argument("--json", action="store_true", help="print the paths and the report's figures as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.report.write import build_report, save

    report, where = build_report(args.path, storage=args.storage)
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
