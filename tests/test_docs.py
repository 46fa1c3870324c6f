"""The documentation: README size, links that resolve, and a catalogue generated from the code."""

import importlib.metadata
import re
from pathlib import Path

import pytest

from tunelab.commands.listing import catalogue
from tunelab.report.catalogue import REGENERATE

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short_and_has_the_two_commands():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= 15_000, f"README.md is {len(readme)} bytes; move detail to docs/ (limit 15,000)"
    assert b"make demo" in readme and b"make test" in readme


def test_docs_catalogue_is_current():
    committed = (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8")
    assert committed == catalogue(), f"docs/catalogue.md is out of date; regenerate it: {REGENERATE}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        assert (page.parent / path).exists(), f"{page.name}: link to {target} does not resolve"


def test_license_file_is_the_apache_2_text_that_the_metadata_names():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) == 202  # the full text
    meta = importlib.metadata.metadata("tunelab")
    assert meta["License-Expression"] == "Apache-2.0" and "LICENSE" in meta.get_all("License-File")
