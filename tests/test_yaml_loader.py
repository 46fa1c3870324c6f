"""load_yaml: a key written twice in any mapping is refused with its dotted path and both lines;
everything else loads exactly as yaml.safe_load loads it."""

import pytest
import yaml

from tunelab.yaml_loader import DuplicateKeyError, load_yaml

CASES = [
    ("top level", "data: {name: iris}\ntrain: {epochs: 2}\ndata: {name: digits}\n", "data", (1, 3)),
    ("nested", "optimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.01\n", "optimizer.lr", (3, 5)),
    ("deeper", "search:\n  optimizer.lr:\n    type: loguniform\n    low: 1.0e-4\n    low: 1.0e-3\n",
     "search.optimizer.lr.low", (4, 5)),
    ("flow mapping", "model: {name: mlp, hidden: [8], hidden: [16]}\n", "model.hidden", (1, 1)),
    ("method in a flow list", "methods: [{name: l2, weight: 1, weight: 2}]\n", "methods.l2.weight", (1, 1)),
    ("method in a block list", "methods:\n  - name: ema\n  - name: l2\n    weight: 1\n    weight: 2\n",
     "methods.l2.weight", (4, 5)),
    ("list item without a name", "ablation:\n  add:\n    - {p: 1}\n    - {q: 1, q: 2}\n",
     "ablation.add[1].q", (4, 4)),
    ("a name written twice", "methods:\n  - name: l2\n    name: l1\n", "methods[0].name", (2, 3)),
    ("equal after parsing", "train:\n  epochs: 2\n  'epochs': 3\n", "train.epochs", (2, 3)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "lines"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_key_written_twice_is_named_with_both_lines(text, key, lines):
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml(text)
    assert (info.value.key, info.value.lines) == (key, lines)
    assert f"key {key} is written twice" in str(info.value) and str(info.value).endswith("keep one")
    assert yaml.safe_load(text) is not None  # PyYAML alone accepts it: the last one silently wins


def test_the_message_gives_both_line_numbers():
    with pytest.raises(
        DuplicateKeyError, match=r"^key optimizer\.lr is written twice \(lines 3 and 5\); keep one$"
    ):
        load_yaml("optimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.01\n")


@pytest.mark.parametrize(
    "text",
    [
        "data: {name: iris}\nmodel: {name: mlp, hidden: [8, 8]}\nmethods: [{name: l2, weight: 1.0e-4}]\n",
        "base: &b {lr: 0.1, momentum: 0.9}\noptimizer:\n  <<: *b\n  lr: 0.01\n",  # a merge key overrides
        "a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 2}]\n",  # the same key in different mappings
        "loop: &l [1, *l]\n",  # an alias that refers to itself
        "",
        "- 1\n- 2\n",
    ],
)
def test_everything_else_loads_as_safe_load_does(text):
    assert repr(load_yaml(text)) == repr(yaml.safe_load(text))


def test_it_stays_safe():
    with pytest.raises(yaml.constructor.ConstructorError):
        load_yaml("!!python/object/apply:os.system ['true']")


def test_inline_names_the_key_under_the_command_line_path_without_lines():
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml("{weight: 1, weight: 2}")
    assert info.value.inline("methods.l2") == "key methods.l2.weight is written twice; keep one"
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml("[[8], {a: 1, a: 2}]")
    assert info.value.inline("model.hidden") == "key model.hidden[1].a is written twice; keep one"
