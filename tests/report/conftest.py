"""What the renderer tests share: the text a renderer prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console


@pytest.fixture
def render() -> Callable[[Callable[..., None], Any], str]:
    """``render(print_fn, obj) -> text``: what ``print_fn(obj, console)`` prints, 250 columns wide
    (wide enough that no table cell wraps)."""

    def run(print_fn: Callable[..., None], obj: Any) -> str:
        console = Console(record=True, width=250)
        print_fn(obj, console)
        return console.export_text()

    return run
