"""tunelab predict RUN_DIR INPUT [--out predictions.csv] [--batch-size N] [--json] [--variant NAME]

INPUT: a CSV with the training feature columns (``x0 .. x{D-1}`` for built-in signal and image
data: the flattened values), an NPZ with the array ``x``, an image file or a folder of images.
The output has the columns ``row`` (the input's index, its id column, or the image's file name),
``prediction`` and one ``p_<class>`` per class (regression: ``prediction``, or
``prediction_<target>`` per target).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.io import atomic_write_text

# Rows a table on the terminal shows before "... N more".
SHOWN_ROWS = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="apply a trained run to new data (CSV, NPZ, images)")
    p.add_argument("run_dir", help="a run directory written by `tunelab train`")
    p.add_argument("input", help="a CSV with the training feature columns, an NPZ with x, or image(s)")
    p.add_argument("--out", help="write every prediction to this CSV file")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="samples per forward pass")
    p.add_argument(
        "--variant", default=None, metavar="ROW[/seed-S]", help="a model `tunelab compress` wrote, e.g. int8"
    )
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.predict import load_run

    if args.batch_size is not None and args.batch_size < 1:
        raise TunelabError(f"--batch-size: got {args.batch_size}; must be >= 1")
    predictor = load_run(args.run_dir, variant=args.variant, batch_size=args.batch_size)
    table = predictor.table(args.input)
    n = len(table["row"])
    if args.out:
        atomic_write_text(Path(args.out), to_csv(table))
    if args.json:
        rows = [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]
        print(json.dumps({"run_dir": str(predictor.run_dir), "variant": predictor.variant, "rows": rows}))
    elif args.out:
        print(f"wrote {n} predictions to {args.out} (columns: {', '.join(table)})")
    else:
        print(format_table(table))
    return 0


def to_csv(table: dict[str, list[Any]]) -> str:
    """The columns as CSV text; floats written in full (``repr``: they read back exactly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(table))
    writer.writerows(zip(*table.values(), strict=True))
    return buffer.getvalue()


def format_table(table: dict[str, list[Any]], shown: int = SHOWN_ROWS) -> str:
    """The first ``shown`` rows, aligned, probabilities to 3 decimals.

    >>> print(format_table({"row": ["0", "1"], "prediction": ["cat", "dog"], "p_cat": [0.91, 0.2]}))
    row  prediction  p_cat
    0    cat         0.910
    1    dog         0.200
    """
    names = list(table)
    n = len(table["row"])

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [names] + [[cell(table[c][i]) for c in names] for i in range(min(n, shown))]
    widths = [max(len(line[j]) for line in lines) for j in range(len(names))]
    text = ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if n > shown:
        text.append(f"... {n - shown} more rows ({n} in all); --out FILE writes them all")
    return "\n".join(text)
