from __future__ import annotations

import time

import pytest

from tunelab.errors import RecipeError
from tunelab.study.auto.budget import SEARCH_MIN_SHARE, STAGES, Budget, parse_budget


@pytest.mark.parametrize("text", ["soon", "0s", "-5m", "10x", "", "m", "1h-30m"])
def test_a_bad_budget_names_the_option_and_the_forms(text):
    with pytest.raises(RecipeError, match=r"--budget.*90s, 30m"):
        parse_budget(text)


def test_budget_forms():
    assert [parse_budget(t) for t in ("90s", "30m", "2h", "1h30m", "45", 12)] == [
        90,
        1800,
        7200,
        5400,
        45,
        12,
    ]


def test_unspent_time_carries_over_and_a_resumed_budget_keeps_what_was_spent():
    b = Budget(100.0)
    b.start("baseline", b.share("baseline"))
    time.sleep(0.05)
    b.stop("baseline")
    spent = b.stages["baseline"].spent_s
    assert 0.04 < spent < 1 and b.planned("baseline") == 10.0
    assert b.left() == pytest.approx(100.0 - spent, abs=1e-6)  # the 10 s planned, not spent, stay
    again = Budget.from_dict(b.to_dict(), total_s=100.0)
    assert again.stages["baseline"].spent_s == pytest.approx(spent, abs=1e-3)
    assert again.left() == pytest.approx(b.left(), abs=1e-3)
    d = again.to_dict()
    assert d["total_s"] == 100.0 and set(d["stages"]) == set(STAGES) and "carries over" in d["rule"]


def test_the_search_gets_what_the_reserve_leaves_but_never_less_than_its_floor():
    b = Budget(100.0)
    assert b.search_plan(30.0) == pytest.approx(70.0, abs=0.1)
    assert b.search_plan(99.0) == pytest.approx(SEARCH_MIN_SHARE * 100.0, abs=0.1)


def test_a_stage_deadline_is_its_plan_from_when_it_opened():
    b = Budget(100.0)
    b.start("search", 20.0)
    assert b.deadline("search") == pytest.approx(time.time() + 20.0, abs=0.5)
    b.stop("search")
