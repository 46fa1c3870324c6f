"""Shared by the optimizer and schedule tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tunelab.errors import RecipeError


@pytest.fixture
def raises_at() -> Callable[[str, Callable[[], object]], RecipeError]:
    """``raises_at(path, fn)``: ``fn()`` raises a RecipeError at the recipe path ``path``, named in
    its message; returns the error."""

    def check(path: str, fn: Callable[[], object]) -> RecipeError:
        with pytest.raises(RecipeError) as info:
            fn()
        assert info.value.path == path, str(info.value)
        assert path in str(info.value)
        return info.value

    return check
