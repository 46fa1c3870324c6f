"""What several report builders share: number formatting, plural words, intervals."""

from __future__ import annotations

import math
from typing import Any


def num(v: Any, digits: int = 4) -> str:
    """A number as a report shows it: ``num(0.91234) == "0.9123"``, ``num(135274) == "135,274"``.

    >>> num(0.91234), num(135274), num(None), num(2.0e-5)
    ('0.9123', '135,274', '-', '2e-05')
    """
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v != 0 and abs(v) < 10 ** -(digits - 1):
            return f"{v:.{max(1, digits - 3)}g}"
        return f"{v:.{digits}f}" if abs(v) < 1e3 else f"{v:,.0f}"
    return str(v)


def plural(n: int, word: str) -> str:
    """``plural(1, "seed") == "1 seed"``, ``plural(3, "seed") == "3 seeds"``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def interval_text(low: float | None, high: float | None, signed: bool = False) -> str:
    """``[low, high]`` with four decimals (signed for a difference), or "no interval".

    >>> interval_text(0.1, 0.2), interval_text(-0.00096, 5e-05, signed=True), interval_text(None, 0.2)
    ('[0.1000, 0.2000]', '[-0.0010, +0.0001]', 'no interval')
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if max(abs(low), abs(high)) >= 1e3:
        return f"[{num(low)}, {num(high)}]"
    f = "{:+.4f}" if signed else "{:.4f}"
    return f"[{f.format(low)}, {f.format(high)}]"
