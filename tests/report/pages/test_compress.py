"""The compression report plots each row's accuracy against its costs, Pareto rows marked."""

from tunelab.report.pages.compress import build_compress_report


def test_accuracy_against_size_latency_and_nonzero_with_the_pareto_rows(sources):
    d = sources.compress().to_dict()
    report = build_compress_report(d)
    for key in ("size_bytes", "latency_ms", "nonzero_params"):
        fig = report.figure(f"compress-{key}")
        rows = [s for s in fig.series if s.role != "pareto"]
        assert [s.x[0] for s in rows] == [r[key] for r in d["rows"]]
        assert [s.y[0] for s in rows] == [r["val"]["accuracy"] for r in d["rows"]]
        ring = [s for s in fig.series if s.role == "pareto"]
        pareto = [r for r in d["rows"] if r["pareto"]]
        assert pareto and ring[0].x == [r[key] for r in pareto]
    assert [r[0] for r in report.tables()[0].rows] == [r["name"] for r in d["rows"]]
