"""Typed validation shared by the recipe and by registry parameters.

A field is described by a plain type hint, optionally wrapped in ``Annotated`` with constraints:

    lr: Annotated[float, Range(gt=0)] = 1e-3
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0

``check(value, hint, path)`` converts and validates one value, raising ``RecipeError`` that names
the dotted path, the value and what is allowed. Written by hand (instead of pydantic) because the
error text is part of the product: one short sentence with "did you mean", not a nested report.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from tunelab.errors import RecipeError, did_you_mean


@dataclass(frozen=True)
class Range:
    """Numeric bounds; any of them may be None."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        parts = []
        if self.ge is not None:
            parts.append(f">= {self.ge}")
        if self.gt is not None:
            parts.append(f"> {self.gt}")
        if self.le is not None:
            parts.append(f"<= {self.le}")
        if self.lt is not None:
            parts.append(f"< {self.lt}")
        return " and ".join(parts)

    def ok(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )


@dataclass(frozen=True)
class Doc:
    """A one-line description attached to a field (shown by `tunelab methods` etc.)."""

    text: str


def describe_type(hint: Any) -> str:
    """A short human name for a type hint: 'float > 0', 'one of adam, sgd', 'list of int'."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        ranges = [m.describe() for m in meta if isinstance(m, Range)]
        return describe_type(base) + (" " + " and ".join(ranges) if ranges else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) if not isinstance(a, str) else a for a in get_args(hint))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        inner = " or ".join(describe_type(a) for a in args)
        return inner + (" or null" if len(args) < len(get_args(hint)) else "")
    if origin in (list, tuple):
        args = get_args(hint)
        return f"list of {describe_type(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if hint is Any:
        return "any value"
    return getattr(hint, "__name__", str(hint))


def check(value: Any, hint: Any, path: str) -> Any:
    """Validate ``value`` against ``hint``; return it converted (int -> float, list -> tuple...).

    >>> check([1, 2], tuple[float, float], "betas")
    (1.0, 2.0)
    """
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        out = check(value, base, path)
        for m in meta:
            if isinstance(m, Range) and out is not None and not m.ok(out):
                raise RecipeError(path, value, f"must be {m.describe()}")
        return out
    if hint is Any:
        return value
    if origin is Literal:
        allowed = get_args(hint)
        if value in allowed and type(value) is type(allowed[allowed.index(value)]):
            return value
        hint_text = did_you_mean(value, [str(a) for a in allowed]) if isinstance(value, str) else ""
        raise RecipeError(path, value, describe_type(hint), hint_text)
    if origin in (Union, types.UnionType):
        return _check_union(value, hint, path)
    if origin in (list, tuple):
        return _check_sequence(value, hint, path)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(path, value, "must be a mapping")
        kt, vt = get_args(hint) or (Any, Any)
        return {check(k, kt, path): check(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    return _check_scalar(value, hint, path)


def _check_union(value: Any, hint: Any, path: str) -> Any:
    """The first member of ``A | B | None`` that accepts ``value``; its error when only one could."""
    args = get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise RecipeError(path, value, f"must be {describe_type(hint)}")
    errors = []
    for a in args:
        if a is type(None):
            continue
        try:
            return check(value, a, path)
        except RecipeError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise RecipeError(path, value, f"must be {describe_type(hint)}")


def _check_sequence(value: Any, hint: Any, path: str) -> list[Any] | tuple[Any, ...]:
    """``list[T]``, ``tuple[T, ...]`` or a fixed ``tuple[A, B]``, each item checked at ``path[i]``."""
    origin = get_origin(hint)
    if not isinstance(value, (list, tuple)):
        raise RecipeError(path, value, f"must be {describe_type(hint)}")
    args = get_args(hint)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise RecipeError(path, value, f"must be a list of {len(args)} items")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(check(v, a, f"{path}[{i}]") for i, (v, a) in pairs)
    item = args[0] if args else Any
    items = [check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _check_scalar(value: Any, hint: Any, path: str) -> Any:
    """bool, int, float (also from "1e-3"), str, or an instance of a plain class."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(path, value, "must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecipeError(path, value, "must be an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-3" as a string; accept it as a number.
            try:
                return float(value)
            except ValueError:
                pass
        raise RecipeError(path, value, "must be a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise RecipeError(path, value, "must be a string")
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise RecipeError(path, value, f"must be {describe_type(hint)}")
    raise TypeError(f"schema: unsupported type hint {hint!r} at {path}")


def field_hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass, Annotated kept."""
    return typing.get_type_hints(cls, include_extras=True)


def build_dataclass(cls: type, value: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking every key; unknown keys fail."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise RecipeError(path, value, "must be a mapping")
    hints = field_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, v in value.items():
        p = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise RecipeError(p, v, "unknown key; allowed: " + ", ".join(names), did_you_mean(key, names))
        kwargs[key] = check(v, hints[key], p)
    return cls(**kwargs)


@dataclass(frozen=True)
class Param:
    """One parameter of a registry entry, read from a function signature."""

    name: str
    hint: Any
    default: Any  # inspect.Parameter.empty when required
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        d = "required" if self.required else f"default {self.default!r}"
        text = f"{self.name}: {describe_type(self.hint)} ({d})"
        return text + (f" - {self.doc}" if self.doc else "")


def signature_params(fn: Callable[..., Any], skip: int = 0) -> list[Param]:
    """Parameters of ``fn`` (a function or a class), skipping the first ``skip`` positional ones.

    Keyword-only parameters with hints and defaults become the recipe parameters of an entry,
    so the function's signature is the single source of their defaults.
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    hints = typing.get_type_hints(target, include_extras=True)
    params = []
    sig = inspect.signature(target)
    items = list(sig.parameters.values())
    if inspect.isclass(fn):
        items = items[1:]  # self
    for p in items[skip:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = hints.get(p.name, Any)
        doc = ""
        if get_origin(hint) is Annotated:
            doc = next((m.text for m in get_args(hint)[1:] if isinstance(m, Doc)), "")
        params.append(Param(p.name, hint, p.default, doc))
    return params


def check_params(params: list[Param], given: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Check ``given`` keyword arguments against ``params``; fill nothing (defaults stay in the signature)."""
    by_name = {p.name: p for p in params}
    out = {}
    for key, v in given.items():
        p = f"{path}.{key}"
        if key not in by_name:
            allowed = ", ".join(by_name) or "no parameters"
            raise RecipeError(p, v, f"unknown parameter; allowed: {allowed}", did_you_mean(key, by_name))
        out[key] = check(v, by_name[key].hint, p)
    for prm in params:
        if prm.required and prm.name not in given:
            raise RecipeError(f"{path}.{prm.name}", None, f"is required ({describe_type(prm.hint)})")
    return out
