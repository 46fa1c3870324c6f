"""The cross-validation report shows each value's fold mean and interval, and marks both choices."""

from tunelab.report.pages.cv import build_cv_report


def test_scores_intervals_and_the_one_se_choice(sources):
    d = sources.cv().to_dict()
    report = build_cv_report(d)
    fig = report.figure("cv-scores")
    means, folds = fig.series
    assert means.x == [v["label"] for v in d["values"]]
    assert means.y == [v["mean"] for v in d["values"]]
    assert means.low == [v["ci_low"] for v in d["values"]] and means.high == [
        v["ci_high"] for v in d["values"]
    ]
    one_se = next(v["label"] for v in d["values"] if v["value"] == d["chosen"]["one_se"])
    assert means.roles[means.x.index(one_se)] == "chosen"
    assert len(folds.y) == d["k"] * len(d["values"])  # every fold's score beside its value
    assert fig.markers[0].value == d["chosen"]["one_se_threshold"]
    assert "4 folds" in fig.caption
