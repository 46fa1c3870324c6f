import pytest

from tunelab.errors import RecipeError
from tunelab.registry import Registry


def make():
    reg = Registry("widget")

    @reg.register("square", "A square.", aliases=("sq",))
    def square(*, side: float = 1.0) -> float:
        return side * side

    @reg.register("open", "Takes extra keys.", open=True)
    def opened(*, factory: str, **kw):
        return factory, kw

    return reg


def test_register_get_build_and_alias():
    reg = make()
    assert reg.names() == ["open", "square"]
    assert reg.get("sq").build(side=3.0) == 9.0
    assert "sq" in reg and "circle" not in reg
    assert [p.name for p in reg.get("square").params] == ["side"]


def test_unknown_name_did_you_mean():
    with pytest.raises(RecipeError) as e:
        make().get("sqare", "model.name")
    assert "unknown widget; known: open, square" in str(e.value)
    assert 'did you mean "square"?' in str(e.value)


def test_duplicate_registration_fails():
    reg = make()
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("square", "again")(lambda: None)


def test_open_entries_pass_unknown_keys_and_still_check_known_ones():
    entry = make().get("open")
    assert entry.check({"factory": "a:b", "width": 3}, "model") == {"factory": "a:b", "width": 3}
    with pytest.raises(RecipeError, match=r"model\.factory: got 3; must be a string"):
        entry.check({"factory": 3}, "model")
