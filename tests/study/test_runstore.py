"""tunelab.study.runstore: each key is computed once and read back, also by a new process; Ctrl-C
loses nothing finished; a study of another recipe or kind is refused with what differs."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from tunelab.errors import TunelabError
from tunelab.study.runstore import RunStore, canonical, recipe_changes

RECIPE = {"train": {"epochs": 3, "seed": 0}, "model": {"name": "mlp"}}


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'studies.db'}"


def store(url, **changes):
    kwargs = {"kind": "ablation", "recipe": RECIPE, "direction": "maximize", **changes}
    return RunStore(url, "abl", **kwargs)


def test_a_key_is_computed_once_and_read_back_by_a_new_store(url):
    calls = []

    def compute():
        calls.append(1)
        return "completed", 0.9, {"val": {"accuracy": 0.9}, "seconds": 1.5}

    first = store(url).run({"seed": 0, "phase": "select"}, compute)
    assert not first.cached and first.ok and first.value == 0.9 and first.attrs["seconds"] == 1.5
    again = store(url).run({"phase": "select", "seed": 0}, compute)  # the same key, another order
    assert again.cached and again.value == 0.9 and again.attrs["val"] == {"accuracy": 0.9}
    assert calls == [1]
    other = store(url).run({"seed": 1, "phase": "select"}, compute)
    assert not other.cached and calls == [1, 1]


def test_a_diverged_run_is_kept_and_not_rerun_but_counts_no_value(url):
    s = store(url)
    run = s.run({"seed": 0}, lambda: ("diverged", float("nan"), {"message": "loss became nan"}))
    assert run.value is None and not run.ok
    back = store(url).run({"seed": 0}, lambda: pytest.fail("a diverged run is a result: not rerun"))
    assert back.cached and back.status == "diverged" and back.attrs["message"] == "loss became nan"
    (trial,) = s.study.get_trials()
    assert trial.state == TrialState.FAIL


def test_ctrl_c_marks_the_run_interrupted_and_the_next_call_computes_it(url):
    s = store(url)
    s.run({"seed": 0}, lambda: ("completed", 0.8, {}))

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.run({"seed": 1}, interrupted)
    states = [(t.user_attrs["run"]["status"], t.state) for t in s.study.get_trials()]
    assert states == [("completed", TrialState.COMPLETE), ("interrupted", TrialState.FAIL)]
    resumed = store(url)
    assert resumed.get({"seed": 0}).value == 0.8 and resumed.get({"seed": 1}) is None
    assert not resumed.run({"seed": 1}, lambda: ("completed", 0.85, {})).cached


def test_another_recipe_or_kind_is_refused_with_what_differs(url):
    store(url).run({"seed": 0}, lambda: ("completed", 0.9, {}))
    changed = {**RECIPE, "train": {"epochs": 5, "seed": 0}}
    with pytest.raises(TunelabError, match=r"holds runs of a different recipe \(train\.epochs: 3 -> 5\)"):
        store(url, recipe=changed)
    with pytest.raises(TunelabError, match="is of kind ablation, not cv; choose another name with --study"):
        store(url, kind="cv")


def test_recipe_changes_and_canonical_text():
    old = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    new = {"a": {"b": 2, "c": [1, 2]}, "e": True}
    assert recipe_changes(old, new) == ["a.b: 1 -> 2", "d: x -> (absent)", "e: (absent) -> True"]
    many = recipe_changes({f"k{i}": i for i in range(8)}, {})
    assert len(many) == 6 and many[-1] == "... and 3 more"
    assert canonical({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
