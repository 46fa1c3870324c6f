from typing import Annotated, Literal

import pytest

from tunelab.errors import RecipeError
from tunelab.schema import Doc, Range, check, check_params, describe_type, signature_params


def test_numbers_are_converted_and_bounded():
    hint = Annotated[float, Range(gt=0)]
    assert check(1, hint, "optimizer.lr") == 1.0
    assert check("1e-3", hint, "optimizer.lr") == pytest.approx(1e-3)
    with pytest.raises(RecipeError) as e:
        check(-0.1, hint, "optimizer.lr")
    assert str(e.value) == "optimizer.lr: got -0.1; must be > 0"


def test_half_open_interval():
    hint = Annotated[float, Range(ge=0, lt=1)]
    assert check(0, hint, "p") == 0.0
    with pytest.raises(RecipeError, match="must be >= 0 and < 1"):
        check(1.0, hint, "model.dropout")


def test_bool_is_not_an_int_and_int_rejects_fraction():
    with pytest.raises(RecipeError, match="must be an integer"):
        check(True, int, "train.epochs")
    with pytest.raises(RecipeError, match="must be an integer"):
        check(2.5, int, "train.epochs")
    assert check(3.0, int, "train.epochs") == 3


def test_literal_suggests_the_closest_choice():
    with pytest.raises(RecipeError) as e:
        check("adma", Literal["adam", "sgd"], "optimizer.name")
    assert 'did you mean "adam"?' in str(e.value)
    assert "one of adam, sgd" in str(e.value)


def test_lists_optional_and_tuples():
    assert check([1, 2], list[int], "x") == [1, 2]
    assert check(None, int | None, "x") is None
    assert check([0.9, 0.99], tuple[float, float], "betas") == (0.9, 0.99)
    with pytest.raises(RecipeError, match=r"x\[1\]: got 'a'; must be an integer"):
        check([1, "a"], list[int], "x")
    with pytest.raises(RecipeError, match="list of 2 items"):
        check([0.9], tuple[float, float], "betas")


def test_signature_params_and_check_params():
    def factory(shape, *, width: Annotated[int, Range(ge=1), Doc("units")] = 8, act: str = "relu"):
        return shape, width, act

    params = signature_params(factory, skip=1)
    assert [p.name for p in params] == ["width", "act"]
    assert params[0].doc == "units" and params[0].default == 8
    assert check_params(params, {"width": 4.0}, "model") == {"width": 4}
    with pytest.raises(RecipeError) as e:
        check_params(params, {"widht": 3}, "model")
    assert str(e.value).startswith("model.widht: got 3; unknown parameter; allowed: width, act")
    assert 'did you mean "width"?' in str(e.value)


def test_required_param_is_reported():
    def f(*, path: str):
        return path

    with pytest.raises(RecipeError, match=r"data\.path: got None; is required"):
        check_params(signature_params(f), {}, "data")


def test_describe_type():
    assert describe_type(Annotated[float, Range(gt=0)]) == "float > 0"
    assert describe_type(list[int] | None) == "list of int or null"
