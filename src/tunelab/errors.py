"""Errors a user can fix. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TunelabError(Exception):
    """Base class of every error caused by input the user can correct."""


class RecipeError(TunelabError):
    """A recipe field is unknown, of the wrong type, or out of range.

    The message always carries the dotted path, the value given and what is allowed.
    """

    def __init__(self, path: str, value: object, allowed: str, hint: str = "") -> None:
        self.path, self.value, self.allowed = path, value, allowed
        msg = f"{path or '<recipe>'}: got {value!r}; {allowed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class DataError(TunelabError):
    """The data cannot be loaded or split as asked."""


class ModelError(TunelabError):
    """The model cannot be built or does not fit the data."""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """'did you mean "x"?' for the closest option, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else ""
