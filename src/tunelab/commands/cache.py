"""tunelab cache [--clear] [--json]: list what tunelab's cache folder holds, or clear it.

The cache (``$TUNELAB_CACHE``, else ``~/.cache/tunelab``) holds what can be rebuilt: MNIST-1D,
decoded image folders, the streaming copies of CSV and ``.npz`` files, frozen text features.
``--clear`` removes it all but the temporary folders of builds still running.
"""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list tunelab's cache folder ($TUNELAB_CACHE), or clear it")
    p.add_argument("--clear", action="store_true", help="remove every entry but the builds still running")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


def run(args: argparse.Namespace) -> int:
    from tunelab import cache
    from tunelab.io import cache_dir

    folder = cache_dir()
    listed = cache.clear(folder) if args.clear else cache.entries(folder)
    if args.json:
        key = "removed" if args.clear else "entries"
        print(json.dumps({"folder": str(folder), key: [e.to_dict() for e in listed]}))
        return 0
    total = _size(sum(e.bytes for e in listed))
    if args.clear:
        print(f"removed {len(listed)} entries ({total}) from {folder}")
        return 0
    print(f"{folder}: {len(listed)} entries, {total}")
    for e in listed:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.modified))
        state = "" if e.state == "ready" else f"  ({e.state})"
        print(f"  {_size(e.bytes):>10}  {when}  {e.name}{state}")
    return 0
