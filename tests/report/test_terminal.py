"""tunelab.report.terminal: the run's tables, headline and registry listing hold the numbers of the
objects they render (set here by hand), formatted as documented."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from tunelab.recipe import load_recipe
from tunelab.registry import Registry
from tunelab.report.terminal import (
    fmt,
    fmt_bytes,
    headline,
    preprocess_lines,
    print_registry,
    print_run,
    run_tables,
)
from tunelab.runs import RunResult


def rendered(*renderables) -> str:
    console = Console(record=True, width=200)
    for r in renderables:
        console.print(r)
    return console.export_text()


def row_of(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.strip("│┃ ").startswith(first_cell))


def result(**changes) -> RunResult:
    fields = {
        "status": "completed",
        "recipe": load_recipe({"data": {"name": "iris"}}),
        "epochs": 7,
        "history": [],
        "val": {"accuracy": 0.91234, "loss": 0.30125},
        "test": {"accuracy": 0.875, "loss": 0.4},
        "train_seconds": 1.5,
        "monitor": "val.accuracy",
        "best_epoch": 5,
        "best_value": 0.92,
        "efficiency": {"params": 12345, "size_bytes": 2048, "latency_ms": 0.1234, "throughput": 54321.6},
        "info": {"early_stopping": {"restored": True, "best_epoch": 5}},
        "message": "",
        "run_dir": "runs/iris-1",
    }
    return RunResult(**{**fields, **changes})


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (math.nan, "nan"), (0.123456, "0.1235"), (12345.6, "12,346"), (1234567, "1,234,567"),
     (True, "True"), ("adam", "adam")],
)  # fmt: skip
def test_fmt(value, text):
    assert fmt(value) == text


def test_fmt_bytes_picks_the_unit():
    assert [fmt_bytes(n) for n in (512, 2048, 5 * 1024**2, 3 * 1024**3)] == [
        "512 B",
        "2.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_quality_and_cost_tables_hold_the_results_numbers():
    quality, cost = run_tables(result())
    text = rendered(quality, cost)
    assert row_of(text, "accuracy").split() == ["│", "accuracy", "│", "0.9123", "│", "0.8750", "│"]
    assert row_of(text, "loss").split()[3] == "0.3013" and row_of(text, "loss").split()[5] == "0.4000"
    assert "12,345" in row_of(text, "parameters") and "2.0 KiB" in row_of(text, "size on disk")
    assert "0.1234" in row_of(text, "latency ms (batch 1, median)")
    assert "54,322" in row_of(text, "throughput samples/s")
    assert "FLOPs" not in text and "p95" not in text  # not measured: no row


def test_no_cost_table_without_efficiency_figures():
    assert len(run_tables(result(efficiency={}))) == 1


def test_headline_says_which_weights_were_evaluated():
    assert headline(result()) == (
        "completed · 7 epochs · best val.accuracy 0.9200 at epoch 5 · "
        "evaluated: best-epoch weights (restored)"
    )
    plain = result(info={}, best_epoch=None, best_value=None)
    assert headline(plain).endswith("best val.accuracy - at epoch - · evaluated: weights after epoch 7")
    ema = result(info={"ema": {"evaluate": "ema"}})
    assert headline(ema).endswith("evaluated: EMA of the weights after epoch 7")


def test_print_run_adds_the_message_the_methods_facts_and_the_directory():
    console = Console(record=True, width=200)
    facts = {"early_stopping": {"restored": True, "best_epoch": 5}, "transfer": {"frozen": list("abcdef")}}
    print_run(result(message="stopped early at epoch 7", info=facts), console)
    text = console.export_text()
    assert "stopped early at epoch 7" in text
    assert "early_stopping: restored True, best_epoch 5" in text
    assert "transfer: frozen 6 items" in text  # a long list shows as a count
    assert "run directory: runs/iris-1" in text


def test_registry_listing_shows_each_entry_with_its_parameters(render):
    reg = Registry("shape")

    @reg.register("square", "A square of a given side.", aliases=("sq",))
    def square(*, side: float = 1.5) -> float:
        return side * side

    text = render(print_registry, reg)
    assert "shapes" in text and "square (sq)" in text and "A square of a given side." in text
    assert "side: float (default 1.5)" in text


def test_near_copies_name_their_measure_documents_and_rows_apart():
    near = {"within": {"train": 2, "val": 0}, "across": {"val~train": 1}, "threshold": 0.2}
    docs = {"duplicates": {"action": "dropped", "near": {**near, "measure": "1 - Jaccard of word 3-grams"}}}
    rows = {
        "duplicates": {"action": "kept (preprocess.duplicates: keep)", "near": {**near, "threshold": 0.05}}
    }
    assert preprocess_lines(docs) == [
        "preprocess: near-duplicate documents (1 - Jaccard of word 3-grams <= 0.2): 2 within train, "
        "1 val~train; dropped"
    ]
    assert preprocess_lines(rows) == [
        "preprocess: near-duplicate rows (RMS difference <= 0.05 std): 2 within train, 1 val~train; "
        "kept (preprocess.duplicates: keep)"
    ]
