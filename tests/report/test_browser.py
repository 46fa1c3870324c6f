"""Every kind of report in a real browser: Debian's headless chromium, driven by Playwright.

For each report: no console error, no network request (every request that is not the file itself
is recorded and aborted), every figure drawn (an SVG with marks and a non-empty box), and a
full-page screenshot kept under runs/test-artifacts/ for a person to look at.

One browser serves the whole session. Playwright never downloads a browser here: it launches the
chromium that `make test` installs (`apt-get install chromium`); without it these tests skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tunelab.report import write_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "runs" / "test-artifacts"


def chromium() -> str | None:
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if path and Path(path).is_file():
            return path
    return None


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    exe = chromium()
    if exe is None:
        pytest.skip("no chromium binary: `make chromium` (apt-get install chromium, as root) installs it")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


def open_report(browser, html: Path, name: str) -> dict:
    """Load ``html``; return what the page did: console errors, requests, figures, screenshot."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    own = html.resolve().as_uri()

    def route(r):
        if r.request.url == own:
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(own, wait_until="load")
    figures = page.evaluate(
        """() => [...document.querySelectorAll('figure')].map(f => {
            const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : null;
            return {id: f.id, caption: (f.querySelector('figcaption') || {}).textContent || '',
                    marks: svg ? svg.querySelectorAll('path, use').length : 0,
                    width: box ? box.width : 0, height: box ? box.height : 0};
        })"""
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{name}.png"
    try:
        page.screenshot(path=str(shot), full_page=True)
    except Exception:  # chromium under load sometimes fails a tall capture: once more
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {"errors": errors, "requests": requests, "figures": figures, "screenshot": shot}


def reports(sources, tmp: Path) -> dict[str, Path]:
    run, _ = sources.run()
    reg, _ = sources.regression_run()
    _, out = sources.search(objectives=1)
    _, out2 = sources.search(objectives=2)
    return {
        "run": write_report(run),
        "run-regression": write_report(reg),
        "search": write_report(out, storage=sources.storage),
        "search-pareto": write_report(out2, storage=sources.storage),
        "search-final": write_report(sources.real_search(), storage=sources.storage),
        "ablation": write_report(sources.ablation(), out=tmp / "ablation"),
        "cv": write_report(sources.cv(), out=tmp / "cv"),
        "compress": write_report(sources.compress()),
        "lr-find": write_report(sources.lr_find(), out=tmp / "lr-find"),
        "auto": write_report(sources.auto()),
    }


def test_every_kind_of_report_loads_offline_with_every_figure_drawn(browser, sources, tmp_path):
    for name, html in reports(sources, tmp_path).items():
        seen = open_report(browser, html, name)
        assert seen["errors"] == [], f"{name}: console errors {seen['errors']}"
        assert seen["requests"] == [], f"{name}: the page asked for {seen['requests']}"
        assert seen["figures"], f"{name}: no figure"
        for f in seen["figures"]:
            assert f["marks"] > 10 and f["width"] > 100 and f["height"] > 100, (
                f"{name}: {f['id']} is not drawn: {f}"
            )
            assert len(f["caption"]) > 40, f"{name}: {f['id']} has no caption"
        assert seen["screenshot"].stat().st_size > 10_000


def test_a_page_that_asks_for_the_network_is_caught(browser, tmp_path):
    """The check itself can fail: an image from elsewhere is recorded (and blocked)."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png"><figure></figure></body></html>')
    seen = open_report(browser, page, "selfcheck")
    assert seen["requests"] == ["http://example.invalid/x.png"]
