"""Reports: typed report data (``model``), built from a run or a study (``pages``), rendered to the
terminal (``terminal``, ``search``, ``study``, ``compress``) and to one self-contained HTML file
(``html``, ``svg``). ``write_report(source, out=...)`` writes ``report.html`` and ``report.json``.

    >>> from tunelab.report import write_report
    >>> write_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')

``write_report`` and ``build_report`` are imported on first use (PEP 562): the terminal renderers
that import this package do not pay for matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tunelab.report import write

        return getattr(write, name)
    raise AttributeError(f"module 'tunelab.report' has no attribute {name!r}")
