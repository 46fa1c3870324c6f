"""tunelab.report.compress: the table and the JSON hold the numbers of the CompressResult they render
(set here by hand): counts, sizes, timings, quality with its interval, the difference to the dense
row, the Pareto marks and each row's notes."""

from __future__ import annotations

import json

from tunelab.report.compress import compress_json, print_compress
from tunelab.study.compress import CompressResult, CompressRow


def quality(mean: float, half: float, n: int = 3) -> dict:
    return {"n": n, "mean": mean, "std": 0.01, "ci_low": mean - half, "ci_high": mean + half}


def compress_row(name: str, method: str, **changes) -> CompressRow:
    fields = {
        "name": name, "method": method, "sparsity": 0.0, "weight_sparsity": 0.0, "params": 1248,
        "nonzero_params": 1248, "size_bytes": 6144, "sparse_size_bytes": None, "linear_weight_bytes": 4992,
        "flops": 2496, "latency_ms": 0.0412, "latency_p95_ms": 0.0533, "throughput": 123456.7,
        "val": {"accuracy": 0.95}, "test": {"accuracy": 0.9333}, "val_summary": {}, "test_summary": {},
        "seeds": [0], "path": "final.pt",
    }  # fmt: skip
    return CompressRow(**{**fields, **changes})


def result() -> CompressResult:
    dense = compress_row("dense", "dense", pareto=True, notes=["every row is the bare model"])
    pruned = compress_row(
        "unstructured-0.9", "unstructured", sparsity=0.9, weight_sparsity=0.8998, nonzero_params=128,
        sparse_size_bytes=1536, latency_ms=0.0399, latency_p95_ms=0.0461, throughput=98765.4,
        val={"accuracy": 0.9267}, test={"accuracy": 0.9111},
        val_summary={"accuracy": quality(0.9267, 0.0125)}, test_summary={"accuracy": quality(0.9111, 0.0311)},
        seeds=[0, 1, 2], path="compress/unstructured-0.9",
        pareto=True, notes=["FLOPs as counted: dense kernels multiply the zeros too"],
    )  # fmt: skip
    return CompressResult(
        run_dir="runs/iris", metric="accuracy", mode="max", finetune_epochs=4, scope="global",
        schedule="cubic", threads=2, device="cpu", throughput_batch=1024, compiled=False,
        rows=[dense, pruned], seconds=12.3,
    )  # fmt: skip


def test_each_row_holds_its_counts_sizes_timings_and_quality(render):
    text = render(print_compress, result())
    assert "compress · runs/iris · fine-tuning 4 epoch(s) · 3 seed(s) · 2 thread(s) on cpu" in text
    assert "samples/s (b=1024)" in text and "Δ val accuracy" in text
    dense = next(line for line in text.splitlines() if line.startswith("│ dense "))
    cells = ("0.000", "1,248", "6.0 KiB", "2,496", "0.0412 / 0.0533", "123,457", "0.9500", "0.9333", "★")
    for cell in cells:
        assert cell in dense, cell
    pruned = next(line for line in text.splitlines() if line.startswith("│ unstructured-0.9 "))
    cells = (
        "0.900",
        "128",
        "1.5 KiB",
        "0.0399 / 0.0461",
        "98,765",
        "0.9267 ± 0.0125",
        "-0.0233",
        "0.9111 ± 0.0311",
    )
    for cell in cells:
        assert cell in pruned, cell
    assert "unstructured-0.9: FLOPs as counted: dense kernels multiply the zeros too" in text
    assert "dense: every row is the bare model" in text
    assert "models: runs/iris/compress/<row>/seed-<seed>/ · 12 s" in text


def test_json_is_the_results_dict_and_valid_json():
    d = compress_json(result())
    assert d == result().to_dict() and json.loads(json.dumps(d, allow_nan=False)) == d
    assert [r["name"] for r in d["rows"]] == ["dense", "unstructured-0.9"]
    assert d["rows"][1]["val_summary"]["accuracy"]["ci_low"] == 0.9267 - 0.0125
