"""``custom``: the user's "package.module:function" factory, checked at validation, called at build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models import MODELS, build_model
from tunelab.models.custom import load_factory
from tunelab.recipe import _named_section
from tunelab.spec import ModelSpec

ENTRY = MODELS.get("custom")


@pytest.fixture(autouse=True)
def factories_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make tests/models/_model_factories.py importable, as a user's module on PYTHONPATH would be."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def _check(**params: Any) -> dict[str, Any]:
    return ENTRY.check(params, "model")


def _recipe_error(**params: Any) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        _check(**params)
    return info.value


def test_factory_gets_recipe_kwargs_and_the_shapes_it_names() -> None:
    params = _check(factory="_model_factories:make_net", width=16)
    assert params == {"factory": "_model_factories:make_net", "width": 16}
    model = ENTRY.build((2, 5), 3, **params)
    assert model[1].in_features == 10 and model[1].out_features == 16
    assert model(torch.zeros(4, 2, 5)).shape == (4, 3)


def test_factory_without_shape_parameters_gets_only_its_kwargs() -> None:
    model = ENTRY.build((4,), 2, **_check(factory="_model_factories:fixed_net", width=6))
    assert model[0].out_features == 6


def test_a_class_is_a_factory() -> None:
    model = ENTRY.build((4,), 2, **_check(factory="_model_factories:TinyNet", scale=2.0))
    assert model.scale == 2.0 and model(torch.zeros(1, 4)).shape == (1, 2)


def test_var_keyword_factory_accepts_any_key_and_is_not_given_the_shapes() -> None:
    model = ENTRY.build((4,), 2, **_check(factory="_model_factories:any_kwargs", colour="red"))
    assert model.received == {"colour": "red"}


def test_recipe_section_and_build_model_with_init() -> None:
    raw = {"name": "custom", "init": "xavier_normal", "factory": "_model_factories:make_net", "width": 12}
    spec = _named_section(ModelSpec, MODELS, raw, "model")
    assert spec.params == {"factory": "_model_factories:make_net", "width": 12}
    model = build_model(spec, (3,), 2)
    assert model(torch.zeros(5, 3)).shape == (5, 2)
    assert bool((model[1].bias == 0).all())  # the init applied to the user's layers too


@pytest.mark.parametrize(
    "ref", ["_model_factories.make_net", "a:b:c", ":make_net", "_model_factories:", "x-y:f"]
)
def test_bad_reference_format(ref: str) -> None:
    err = _recipe_error(factory=ref)
    assert err.path == "model.factory"
    assert 'must look like "package.module:function"' in str(err)


def test_factory_must_be_a_string() -> None:
    err = _recipe_error(factory=3)
    assert err.path == "model.factory" and err.allowed == "must be a string"


def test_missing_factory_key() -> None:
    err = _recipe_error(width=3)
    assert err.path == "model.factory" and "is required" in str(err)


def test_module_not_importable_is_named() -> None:
    err = _recipe_error(factory="no_such_pkg_for_tunelab.nets:make")
    assert err.path == "model.factory"
    assert "module 'no_such_pkg_for_tunelab.nets' cannot be imported" in str(err)
    assert "PYTHONPATH" in str(err)


def test_module_with_a_missing_dependency_names_the_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tl_needs_dep.py").write_text("import tl_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _recipe_error(factory="tl_needs_dep:make")
    assert "it imports 'tl_absent_dependency', which is missing" in str(err)


def test_module_that_fails_on_import_reports_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tl_broken_module.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _recipe_error(factory="tl_broken_module:make")
    assert "importing module 'tl_broken_module' failed: RuntimeError: boom" in str(err)


def test_missing_attribute_suggests_the_closest_name() -> None:
    err = _recipe_error(factory="_model_factories:make_nett")
    assert err.path == "model.factory"
    assert "has no attribute 'make_nett'" in str(err) and 'did you mean "make_net"' in str(err)


def test_attribute_not_callable() -> None:
    err = _recipe_error(factory="_model_factories:NOT_CALLABLE")
    assert "'NOT_CALLABLE' is not callable (type int)" in str(err)


def test_unknown_kwarg_names_the_key_and_suggests() -> None:
    err = _recipe_error(factory="_model_factories:make_net", widht=3)
    assert err.path == "model.widht"
    assert "has no parameter 'widht'; allowed: width" in str(err) and 'did you mean "width"' in str(err)


def test_missing_required_kwarg() -> None:
    err = _recipe_error(factory="_model_factories:needs_depth")
    assert err.path == "model.depth" and "is required by _model_factories:needs_depth" in str(err)
    assert _check(factory="_model_factories:needs_depth", depth=2)["depth"] == 2


def test_shapes_come_from_the_data_not_the_recipe() -> None:
    err = _recipe_error(factory="_model_factories:make_net", num_outputs=4)
    assert err.path == "model.num_outputs" and "passed by tunelab" in str(err)


def test_positional_only_factory_is_rejected() -> None:
    err = _recipe_error(factory="_model_factories:positional_only")
    assert "positional-only" in str(err)


def test_factory_returning_a_non_module_fails_at_build() -> None:
    params = _check(factory="_model_factories:not_a_module")
    with pytest.raises(ModelError, match=r"returned a list, not a torch\.nn\.Module"):
        ENTRY.build((4,), 2, **params)


def test_load_factory_resolves_installed_callables() -> None:
    assert load_factory("torch.nn:Linear") is nn.Linear
