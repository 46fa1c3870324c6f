"""Print pip requirements that pin every dependency in pyproject.toml at its declared minimum.

``make floors`` installs them in a venv of their own and runs a smoke subset of the tests, so
each floor (``optuna>=4.9``) is a version the code has really run with. Reading the floors from
pyproject here, instead of listing them in the Makefile, keeps the check true when a floor
changes. Every dependency must be written ``name>=X`` (extras allowed); torch is left out: it is
installed first, from the wheel on disk, and pip must never fetch another build of it.

    python .ci/floors.py [--extras dev,plot] [pyproject.toml]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib  # Python >= 3.11, which CI runs; the package itself supports 3.10

EXEMPT = {"torch"}
SELF = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\[([^\]]+)\]\s*$")  # the project's own extras
FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*>=\s*([^\s,;]+)\s*$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def floors(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        sys.exit(f"floors: no extra {', '.join(unknown)} in {pyproject}; known: {', '.join(optional)}")
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += _expanded(optional, extra, _canonical(project["name"]))
    pins: dict[str, str] = {}
    for req in requirements:
        m = FLOOR.match(req)
        if m is None:
            sys.exit(f"floors: cannot read a minimum from {req!r} in {pyproject}; write it as name>=X.Y")
        name, extra, version = m.groups()
        key = _canonical(name)
        if key in EXEMPT:
            continue
        pin = f"{name}{extra or ''}=={version}"
        if pins.setdefault(key, pin) != pin:
            sys.exit(f"floors: {name} has two different floors in {pyproject}: {pins[key]} and {pin}")
    return list(pins.values())


def _expanded(optional: dict[str, list[str]], extra: str, own: str, seen: tuple[str, ...] = ()) -> list[str]:
    """The requirements of ``extra``, with the project's own extras (``tunelab[export]``) inlined."""
    out = []
    for req in optional[extra]:
        m = SELF.match(req)
        if m is not None and _canonical(m.group(1)) == own:
            for inner in m.group(2).split(","):
                inner = inner.strip()
                if inner not in seen and inner != extra:
                    out += _expanded(optional, inner, own, (*seen, extra))
        else:
            out.append(req)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pyproject", nargs="?", default="pyproject.toml", type=Path)
    p.add_argument("--extras", default="", help="comma-separated optional-dependency groups to include")
    args = p.parse_args()
    extras = [e for e in args.extras.split(",") if e]
    print("\n".join(floors(args.pyproject, extras)))


if __name__ == "__main__":
    main()
