"""The catalogue's Markdown: every registry entry and parameter, with type, default and doc."""

import pytest

from tunelab.data import DATASETS
from tunelab.methods import METHODS
from tunelab.models import MODELS
from tunelab.optim import OPTIMIZERS, SCHEDULES
from tunelab.registry import Registry
from tunelab.report.catalogue import catalogue_markdown, registry_markdown, sections_markdown
from tunelab.schema import describe_type

ALL = [("Methods", METHODS), ("Models", MODELS), ("Datasets", DATASETS)]
ALL += [("Optimizers", OPTIMIZERS), ("Schedules", SCHEDULES)]


@pytest.fixture(scope="module")
def text():
    return catalogue_markdown(ALL)


@pytest.mark.parametrize(("title", "reg"), ALL, ids=[t for t, _ in ALL])
def test_every_entry_and_parameter_is_listed(text, title, reg):
    section = text.split(f"\n## {title}\n")[1].split("\n## ")[0]
    for e in reg:
        assert f"### `{e.name}`\n\n{e.description}\n" in section
        block = section.split(f"### `{e.name}`\n")[1].split("\n### ")[0]
        for p in e.params:
            assert f"| `{p.name}` | " in block, f"{title}: {e.name}.{p.name} missing"
        assert len([line for line in block.splitlines() if line.startswith("| `")]) == len(e.params)


def test_a_row_has_name_type_default_and_doc():
    section = registry_markdown("Methods", METHODS)
    l2 = section.split("### `l2`")[1].split("### ")[0]
    weight = METHODS.get("l2").params[0]
    assert weight.name == "weight"
    row = f"| `weight` | {describe_type(weight.hint)} | `{weight.default}` | {weight.doc} |"
    assert row in l2


def test_required_parameters_and_yaml_defaults():
    reg = Registry("thing")

    @reg.register("t", "A thing with | a pipe.")
    def t(*, path: str, shifts: tuple[int, ...] = (1, 2), mode: str | None = None, on: bool = True) -> None:
        pass

    md = registry_markdown("Things", reg)
    assert "| `path` | str | required |" in md
    assert "| `shifts` | list of int | `[1, 2]` |" in md  # tuples are written as YAML lists
    assert "| `mode` | str or null | `null` |" in md and "| `on` | bool | `true` |" in md
    assert "A thing with | a pipe." in md  # outside a table a pipe needs no escape


def test_a_pipe_inside_a_cell_is_escaped():
    md = registry_markdown("Methods", METHODS)
    row = next(line for line in md.splitlines() if line.startswith("| `max_value` |"))
    assert "\\|gradient entry\\|" in row and row.count(" | ") == 3


def test_entries_without_parameters_say_so():
    md = registry_markdown("Datasets", DATASETS)
    iris = md.split("### `iris`")[1].split("### ")[0]
    assert "No parameters." in iris


def test_common_fields_of_each_section():
    md = sections_markdown()
    for section in ("data", "model", "optimizer", "schedule", "train"):
        assert f"### `{section}`" in md
    assert "| `epochs` | int >= 1 | `20` |" in md
    assert '| `precision` | one of fp32, bf16, fp16 | `"fp32"` |' in md
    assert "`params`" not in md  # an entry's own parameters are listed under the entry
