"""Each kind of figure draws into an inline SVG with its points, unique ids and tooltips."""

import re

import pytest

from tunelab.report.model import Figure, Heatmap, Marker, Series
from tunelab.report.svg import render_svg

FIGURES = [
    Figure(
        "xy",
        "xy",
        "t",
        "c",
        x_log=True,
        series=[
            Series("a", [1, 10, 100], [1, 2, None]),
            Series("b", [1, 10], [1, 2], kind="scatter", labels=["p1", "p2"]),
        ],
        markers=[Marker("x", 10, "m")],
    ),
    Figure("heat", "heatmap", "t", "c", heatmap=Heatmap([[5, 1], [0, 7]], ["x", "y"], ["x", "y"])),
    Figure(
        "bars",
        "bars",
        "t",
        "c",
        series=[Series("p", ["a", "b"], [0.5, 0.7]), Series("r", ["a", "b"], [0.2, 0.9])],
    ),
    Figure(
        "forest",
        "intervals",
        "t",
        "c",
        horizontal=True,
        markers=[Marker("x", 0, "zero", "neutral")],
        series=[
            Series(
                "d", ["v1", "v2"], [0.1, -0.2], low=[0.0, -0.3], high=[0.2, -0.1], roles=["helped", "hurt"]
            ),
            Series("seeds", ["v1", "v2"], [0.12, -0.25], kind="scatter"),
        ],
    ),
    Figure(
        "slices",
        "slices",
        "t",
        "c",
        series=[
            Series("lr", [0.001, 0.1], [0.9, 0.8], kind="scatter", log_x=True, labels=["trial 0", "trial 1"]),
            Series("h", ["[16]", "[64]"], [0.9, 0.7], kind="scatter"),
        ],
    ),
]


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.kind)
def test_every_kind_draws_an_svg_with_marks(fig):
    svg = render_svg(fig)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert len(re.findall(r"<path ", svg)) > 5
    ids = re.findall(r'\bid="([^"]+)"', svg)
    assert ids and all(i.startswith(f"{fig.id}-") for i in ids)  # unique within a page of figures
    for ref in re.findall(r'xlink:href="#([^"]+)"', svg):
        assert ref in ids  # every reference points at a prefixed id of the same figure
    assert 'width="100%"' in svg and "max-width:" in svg


def test_labelled_points_get_a_tooltip():
    svg = render_svg(FIGURES[0])
    assert "<title>p1</title>" in svg and "<title>p2</title>" in svg
    assert "<title>trial 1</title>" in render_svg(FIGURES[4])
