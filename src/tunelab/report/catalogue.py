"""The catalogue as Markdown: every registry entry with its description and parameters.

``docs/catalogue.md`` is this function's output (``tunelab catalogue --out docs/catalogue.md``),
so the documentation is generated from the same registries the recipe is validated against and
cannot drift from them; a test fails when the committed file is out of date.

    >>> from tunelab.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square", "A square.")
    ... def square(*, side: float = 1.0) -> float:
    ...     return side * side
    >>> print(registry_markdown("Shapes", shapes))
    ## Shapes
    <BLANKLINE>
    ### `square`
    <BLANKLINE>
    A square.
    <BLANKLINE>
    | parameter | type | default | what it does |
    |---|---|---|---|
    | `side` | float | `1.0` |  |
    <BLANKLINE>
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from tunelab.recipe import Recipe
from tunelab.registry import Registry
from tunelab.schema import Param, describe_type, field_hints

REGENERATE = "tunelab catalogue --out docs/catalogue.md"

# The recipe sections whose common fields are listed; `params` is where a section's registry
# entry's own parameters go (listed under that entry), so it is not a field of its own.
SECTIONS = ("data", "preprocess", "model", "optimizer", "schedule", "train")


def _value(v: Any) -> str:
    """A default as it is written in a recipe: JSON is valid YAML (null, true, [0.9, 0.999])."""
    if isinstance(v, tuple):
        v = list(v)
    return f"`{json.dumps(v, default=str)}`"


def _cell(text: str) -> str:
    # A '|' inside a cell would end it ("|gradient entry|").
    return text.replace("|", "\\|")


def _param_row(p: Param) -> str:
    default = "required" if p.required else _value(p.default)
    return f"| `{p.name}` | {_cell(describe_type(p.hint))} | {default} | {_cell(p.doc)} |"


def registry_markdown(title: str, registry: Registry) -> str:
    """One ``## title`` section: a ``###`` heading per entry, its description, its parameters."""
    lines = [f"## {title}", ""]
    for e in registry:
        lines += [f"### `{e.name}`", "", e.description, ""]
        if e.aliases:
            lines += ["Also called " + ", ".join(f"`{a}`" for a in e.aliases) + ".", ""]
        if e.params:
            lines += ["| parameter | type | default | what it does |", "|---|---|---|---|"]
            lines += [_param_row(p) for p in e.params]
        else:
            lines.append("No parameters.")
        lines.append("")
    return "\n".join(lines)


def sections_markdown() -> str:
    """The fields every recipe section has, whichever entry it names, with types and defaults."""
    lines = ["## Common fields of each section", ""]
    recipe_hints = field_hints(Recipe)
    for section in SECTIONS:
        spec = recipe_hints[section]
        hints = field_hints(spec)
        lines += [f"### `{section}`", "", "| field | type | default |", "|---|---|---|"]
        for f in dataclasses.fields(spec):
            if f.name == "params":
                continue
            if f.default is not dataclasses.MISSING:
                default = _value(f.default)
            elif f.default_factory is not dataclasses.MISSING:  # a list, e.g. preprocess.categorical
                default = _value(f.default_factory())
            else:
                default = "required"
            lines.append(f"| `{f.name}` | {_cell(describe_type(hints[f.name]))} | {default} |")
        lines.append("")
    return "\n".join(lines)


def catalogue_markdown(registries: Sequence[tuple[str, Registry]]) -> str:
    """The whole catalogue: a header, the sections' common fields, then each registry."""
    header = [
        "# Catalogue",
        "",
        f"<!-- Generated from the registries by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "Everything a recipe can name, with each parameter's type, range and default, generated",
        "from the registries the recipe is validated against (`tunelab methods`, `models`,",
        "`datasets`, `optimizers` and `schedules` print the same on a terminal). A parameter goes",
        "in the entry's section beside `name`, e.g. `optimizer: {name: adamw, lr: 0.003}`, or in",
        "its item of `methods:`. Defaults are written as in YAML.",
        "",
        "Contents: [common fields](#common-fields-of-each-section)",
    ]
    header[-1] += "".join(f" · [{title.lower()}](#{title.lower()})" for title, _ in registries)
    parts = ["\n".join(header) + "\n", sections_markdown()]
    parts += [registry_markdown(title, reg) for title, reg in registries]
    return "\n".join(parts).rstrip("\n") + "\n"
