"""``custom``: a model from the user's own factory, named in the recipe as "package.module:function".

    model:
      name: custom
      factory: mypkg.nets:make_net   # any callable returning an nn.Module (a function or a class)
      width: 64                      # every other key is passed to it as a keyword argument

The factory also receives ``input_shape=`` and ``num_outputs=`` when its signature names them.
Everything is checked when the recipe is validated, before anything runs: the reference's format,
that the module imports, that the attribute exists and is callable, and that each extra key is one
of its parameters (with "did you mean") and each of its required parameters is given.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from torch import nn

from tunelab.errors import ModelError, RecipeError, did_you_mean
from tunelab.models._base import MODELS
from tunelab.schema import Doc

# Arguments tunelab passes itself when the factory's signature names them.
PASSED = ("input_shape", "num_outputs")
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def load_factory(reference: str, path: str = "model.factory") -> Callable[..., Any]:
    """Import the callable named by ``"package.module:function"``; RecipeError at ``path`` otherwise.

    >>> load_factory("torch.nn:Linear")
    <class 'torch.nn.modules.linear.Linear'>
    """
    if not isinstance(reference, str) or not _REFERENCE.match(reference):
        raise RecipeError(
            path, reference, 'must look like "package.module:function", e.g. "mypkg.nets:make_net"'
        )
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or module_name
        where = "" if missing == module_name else f" (it imports {missing!r}, which is missing)"
        raise RecipeError(
            path,
            reference,
            f"module {module_name!r} cannot be imported{where}",
            "install it, or add its folder to PYTHONPATH",
        ) from None
    except Exception as e:  # an error inside the user's module: say which, and what it was
        raise RecipeError(
            path, reference, f"importing module {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise RecipeError(
            path, reference, f"module {module_name!r} has no attribute {attr!r}", did_you_mean(attr, public)
        )
    factory = getattr(module, attr)
    if not callable(factory):
        raise RecipeError(
            path,
            reference,
            f"{attr!r} is not callable (type {type(factory).__name__}); name a function or class "
            "that returns an nn.Module",
        )
    return factory


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: nothing to check
        return None


def validate_custom(params: Mapping[str, Any], path: str) -> None:
    """``validate=`` hook: the factory imports and the recipe's extra keys bind to its signature."""
    reference = params.get("factory")
    factory = load_factory(reference, f"{path}.factory")
    kwargs = {k: v for k, v in params.items() if k != "factory"}
    for key in PASSED:
        if key in kwargs:
            raise RecipeError(f"{path}.{key}", kwargs[key], "is passed by tunelab from the data; remove it")
    sig = _signature(factory)
    if sig is None:
        return
    ps = sig.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in ps.values())
    by_name = [
        n for n, p in ps.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in PASSED
    ]
    if not takes_any:
        for key, value in kwargs.items():
            if key not in by_name:
                allowed = ", ".join(by_name) or "no keyword arguments"
                raise RecipeError(
                    f"{path}.{key}",
                    value,
                    f"{reference} has no parameter {key!r}; allowed: {allowed}",
                    did_you_mean(key, by_name),
                )
    for name, p in ps.items():
        required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if required and name not in PASSED and name not in kwargs:
            raise RecipeError(
                f"{path}.{name}", None, f"is required by {reference}; add it to the model section"
            )
        if p.kind is p.POSITIONAL_ONLY and p.default is p.empty:
            raise RecipeError(
                f"{path}.factory",
                reference,
                f"parameter {name!r} is positional-only; tunelab passes keywords only",
            )


@MODELS.register(
    "custom",
    'Your own model: factory "package.module:function" called with the other keys.',
    skip=2,
    open=True,
    validate=validate_custom,
)
def custom(
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    factory: Annotated[str, Doc('"package.module:function" returning an nn.Module')],
    **kwargs: Any,
) -> nn.Module:
    """Call the user's factory with ``kwargs`` (plus ``input_shape``/``num_outputs`` if it names them).

    >>> custom((4,), 2, factory="torch.nn:Linear", in_features=4, out_features=2)
    Linear(in_features=4, out_features=2, bias=True)
    """
    fn = load_factory(factory)
    sig = _signature(fn)
    if sig is not None:
        passed = {"input_shape": tuple(input_shape), "num_outputs": num_outputs}
        kwargs.update({k: v for k, v in passed.items() if k in sig.parameters})
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"custom factory {factory} returned a {type(model).__name__}, not a torch.nn.Module; "
            "make it return the model"
        )
    return model
