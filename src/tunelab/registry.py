"""One small registry: name -> entry (callable, one-line description, parameters).

Entries are data: ``tunelab methods`` / ``models`` / ``datasets`` list them, and an unknown name
gets "did you mean". The parameters come from the callable's signature (keyword parameters after
the ``skip`` positional ones that tunelab itself passes), so each default lives in one place.

    >>> from tunelab.registry import Registry
    >>> shapes = Registry("shape")
    >>> @shapes.register("square", "A square of a given side.")
    ... def square(*, side: float = 1.0) -> float:
    ...     return side * side
    >>> shapes.get("square").build(side=3.0)
    9.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunelab.errors import RecipeError, did_you_mean
from tunelab.schema import Param, check_params, signature_params


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Callable[..., Any]
    description: str
    params: list[Param]
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"full_batch": True}

    def check(self, given: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Validate recipe parameters for this entry (unknown key, type, range).

        An entry tagged ``open=True`` (a user's own model factory) passes unknown keys through;
        an entry tagged ``validate=fn`` gets ``fn(params, path)`` to check them further.
        """
        if self.tags.get("open"):
            known = {p.name for p in self.params}
            checked = check_params(self.params, {k: v for k, v in given.items() if k in known}, path)
            checked.update({k: v for k, v in given.items() if k not in known})
        else:
            checked = check_params(self.params, given, path)
        validate = self.tags.get("validate")
        if validate is not None:
            validate(checked, path)
        return checked

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.obj(*args, **kwargs)


class Registry:
    """A named collection of entries of one kind (model, method, dataset, optimizer, schedule)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        description: str,
        *,
        skip: int = 0,
        aliases: tuple[str, ...] = (),
        **tags: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``obj`` under ``name``.

        ``skip``: number of leading positional parameters that tunelab passes itself (for example
        ``input_shape, num_outputs`` of a model factory); the rest are recipe parameters.
        """

        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            entry = Entry(name, obj, description, signature_params(obj, skip), aliases, dict(tags))
            self._entries[name] = entry
            for a in aliases:
                self._aliases[a] = name
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def get(self, name: str, path: str = "") -> Entry:
        """The entry for ``name`` (or an alias); a RecipeError with "did you mean" otherwise."""
        name = self._aliases.get(name, name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            options = self.names() + sorted(self._aliases)
            raise RecipeError(
                path or self.kind,
                name,
                f"unknown {self.kind}; known: {', '.join(self.names())}",
                did_you_mean(str(name), options),
            ) from None
