"""The HTML page: self-contained, no script, no request, a figcaption for every figure."""

import re

from tunelab.report.html import render_html
from tunelab.report.model import Figure, Note, Report, Section, Series, Table


def test_a_page_is_self_contained_and_every_figure_has_a_caption():
    figs = [
        Figure(f"f{i}", "xy", f"title {i}", f"caption {i}", series=[Series("s", [1, 2], [1, 2])], half=True)
        for i in range(3)
    ]
    html = render_html(
        Report(
            "run",
            "a <run>",
            "summary",
            {"run_dir": "x"},
            [Section("s", [*figs, Table("t", ["a", "b"], [[1, 0.5]]), Note("a & b")])],
        )
    )
    assert "default-src 'none'" in html  # the browser refuses any request the page might make
    assert "<script" not in html and "a &lt;run&gt;" in html and "a &amp; b" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no external resource
    assert html.count("<figure") == 3 == html.count("<figcaption>")
    for i in range(3):
        assert f"<b>title {i}.</b> caption {i}</figcaption>" in html
    assert html.count('<div class="row">') == 2  # half-width figures paired: two, then one alone
    assert '<td class="n">0.5000</td>' in html
