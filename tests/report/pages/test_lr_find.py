"""The lr-find report: the loss against the lr, the suggestion and the divergence marked."""

from tunelab.report.pages.lr_find import build_lr_find_report


def test_the_range_test_plot(sources):
    r = sources.lr_find()
    report = build_lr_find_report(r.to_dict())
    fig = report.figure("lr-find")
    assert fig.x_log and fig.series[0].x == r.lrs
    assert [(m.value, m.role) for m in fig.markers] == [(r.suggested_lr, "best"), (r.diverged_lr, "stop")]
    _, high = fig.y_range
    assert high == max(r.trend[0] * 2, r.min_loss * 1.5) < max(r.losses)  # the spike is cut off
