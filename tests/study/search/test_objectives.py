"""Objectives: val metrics and costs, each with its direction; the test split is never one."""

import pytest

from tunelab.errors import RecipeError
from tunelab.study.search.objectives import Objective, parse_objectives


def test_objectives_are_parsed_with_directions():
    assert parse_objectives(None, "val.loss") == [Objective("val.loss", "minimize")]
    objs = parse_objectives("val.f1, throughput,train_seconds", "val.accuracy")
    assert [(o.name, o.direction) for o in objs] == [
        ("val.f1", "maximize"),
        ("throughput", "maximize"),
        ("train_seconds", "minimize"),
    ]
    with pytest.raises(RecipeError, match="never selects on the test split"):
        parse_objectives("test.accuracy", "val.accuracy")
    with pytest.raises(RecipeError, match="each objective may appear once"):
        parse_objectives("val.loss,val.loss", "val.accuracy")
