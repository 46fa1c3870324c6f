"""The report model: report.json round-trips, NaN becomes null, items are looked up by id."""

import json
import math

import pytest

from tunelab.report.model import Code, Figure, Heatmap, Marker, Note, Report, Section, Series, Table


def full_report():
    fig = Figure(
        "f",
        "xy",
        "t",
        "c",
        series=[Series("s", [1, "a"], [0.5, None], low=[0.1, None], roles=["helped", "hurt"])],
        markers=[Marker("y", 0.0, "zero", "neutral")],
        legend={"helped": "good"},
        half=True,
    )
    heat = Figure("h", "heatmap", "m", "c", heatmap=Heatmap([[1, 2], [3, 4]], ["a", "b"], ["a", "b"]))
    return Report(
        "run",
        "title",
        "summary",
        {"kind": "run", "run_dir": "x"},
        [
            Section(
                "one",
                [
                    fig,
                    heat,
                    Table("t", ["a"], [[1], [None]], "cap", True),
                    Note("n"),
                    Code("c", "x: 1", "yaml"),
                ],
            )
        ],
    )


def test_report_json_round_trips_every_item():
    r = full_report()
    d = json.loads(json.dumps(r.to_dict()))
    assert [i["type"] for i in d["sections"][0]["items"]] == ["figure", "figure", "table", "note", "code"]
    assert Report.from_dict(d) == r


def test_non_finite_numbers_become_null():
    r = Report(
        "run",
        "t",
        sections=[Section("s", [Figure("f", "xy", "t", "c", series=[Series("s", [1], [math.nan])])])],
    )
    assert r.to_dict()["sections"][0]["items"][0]["series"][0]["y"] == [None]
    json.dumps(r.to_dict(), allow_nan=False)  # valid JSON


def test_lookups_name_what_exists():
    r = full_report()
    assert r.figure("h").heatmap.values[1][0] == 3 and r.notes() == ["n"] and len(r.tables()) == 1
    with pytest.raises(KeyError, match="figures: f, h"):
        r.figure("nope")
    with pytest.raises(ValueError, match="unknown item type"):
        Report.from_dict(
            {"kind": "run", "title": "t", "sections": [{"title": "s", "items": [{"type": "gif"}]}]}
        )
