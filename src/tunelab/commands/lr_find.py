"""tunelab lr-find RECIPE [--set k=v ...] [--steps N] [--start-lr LR] [--end-lr LR] [--json]
[--plot FILE.png] [--apply [PATH]] [--out DIR]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tunelab.commands._common import add_overrides, report_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: ramp the lr on a copy of the model, suggest one",
        description=(
            "Train a copy of the recipe's initial model for --steps steps while the learning rate "
            "grows exponentially from --start-lr to --end-lr; stop when the smoothed loss diverges "
            "(4x its minimum) and suggest the lr at the minimum of the zero-phase smoothed loss / 10."
        ),
    )
    p.add_argument("recipe", help="path of a YAML recipe")
    add_overrides(p)
    p.add_argument("--steps", type=int, default=200, help="optimizer steps of the ramp (default 200)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first lr of the ramp (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr of the ramp (default 10)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: suggested_lr, lrs, losses, ..."
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw loss against lr into this PNG (needs matplotlib)")
    p.add_argument(
        "--apply",
        nargs="?",
        const="",
        metavar="PATH",
        help="write the recipe with the suggested lr to PATH (default: RECIPE-lr.yaml beside the recipe; "
        "give --apply after RECIPE, or it takes RECIPE as its PATH)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write lr_find.json and an HTML report there; in a run directory, the run's report.html "
        "gains the lr-find plot",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tunelab.errors import TunelabError
    from tunelab.io import atomic_write_text
    from tunelab.lr_find import apply_suggestion, lr_find, plot_lr_find
    from tunelab.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    target = None
    if args.apply is not None:  # checked before the run, so a bad path costs nothing
        source = Path(args.recipe)
        target = Path(args.apply) if args.apply else source.with_name(f"{source.stem}-lr.yaml")
        if target.resolve() == source.resolve():
            raise TunelabError(f"--apply {target}: that is the recipe itself; write the new recipe elsewhere")
        if not target.parent.is_dir():
            raise TunelabError(f"--apply {target}: the directory {target.parent} does not exist")
    result = lr_find(recipe, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    out = result.to_dict()
    if args.plot:
        out["plot"] = str(plot_lr_find(result, args.plot))
    if args.out:
        out["report"] = str(_write_report(result, Path(args.out)))
    if target is not None:
        new, path = apply_suggestion(recipe, result.suggested_lr)
        atomic_write_text(target, new.to_yaml())
        out["applied"] = {"path": str(target), "set": path, "value": _get(new, path)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    n = len(result.lrs)
    end = (
        f"stopped at lr {result.diverged_lr:.3g}: the smoothed loss diverged"
        if result.diverged_lr is not None
        else f"reached lr {result.lrs[-1]:.3g} without diverging (a larger --end-lr shows the edge)"
    )
    print(f"{n} steps ({result.steps_per_epoch} per epoch) from lr {result.lrs[0]:.3g}; {end}")
    print(f"loss minimum (trend) {result.min_loss:.4g} at lr {result.min_lr:.3g}")
    print(f"suggested lr {result.suggested_lr:.3g}  ({result.rule})")
    if result.note:
        print(f"note: {result.note}")
    if "plot" in out:
        print(f"plot: {out['plot']}")
    if "report" in out:
        print(report_line(out["report"]))
    if "applied" in out:
        a = out["applied"]
        note = ""
        if recipe.schedule.name in ("onecycle", "cyclic"):
            note = f" (the peak of the {recipe.schedule.name} schedule)"
        print(f"wrote {a['path']} with {a['set']}={a['value']}{note}")
    return 0


def _get(recipe: object, path: str) -> object:
    section, _, key = path.partition(".")
    return getattr(recipe, section).params.get(key)


def _write_report(result: object, out: Path) -> Path:
    """lr_find.json and the report in ``out``; in a run directory, the run's report with the plot."""
    from tunelab.io import atomic_write_text
    from tunelab.report import write_report
    from tunelab.report.pages.run import is_run_dir

    if is_run_dir(out):
        atomic_write_text(out / "lr_find.json", json.dumps(result.to_dict(), indent=2))  # type: ignore[attr-defined]
        return write_report(out)
    return write_report(result, out=out)
