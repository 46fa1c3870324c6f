"""Reading studies back: every study of a storage with its kind and counts; a report with the best
trials, importances that sum to one, and clear errors (no training: trials are made by hand)."""

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tunelab.errors import TunelabError
from tunelab.study.search.studies import list_studies, study_report
from tunelab.study.storage import KIND_ATTR

LR = {"optimizer.lr": FloatDistribution(1e-4, 1.0, log=True), "model.dropout": FloatDistribution(0.0, 0.5)}


def study(url, name, kind, values, state=TrialState.COMPLETE):
    s = optuna.create_study(study_name=name, storage=url, direction="maximize")
    if kind:
        s.set_user_attr(KIND_ATTR, kind)
    for i, v in enumerate(values):
        params = {"optimizer.lr": 10 ** -(1 + i % 3), "model.dropout": 0.1 * (i % 4)}
        s.add_trial(create_trial(state=state, params=params, distributions=LR, value=v))
    return s


def test_every_study_is_listed_with_its_kind_counts_and_best_value(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study(url, "abl", "ablation", [0.8, 0.9])
    study(url, "foreign", None, [])
    study(url, "dead", "search", [None, None], state=TrialState.FAIL)
    info = {s.name: s for s in list_studies(url)}
    assert set(info) == {"abl", "foreign", "dead"}
    assert info["abl"].kind == "ablation" and info["abl"].counts == {"COMPLETE": 2}
    assert info["abl"].best_value == 0.9 and info["abl"].directions == ["maximize"]
    assert info["foreign"].kind == "-" and info["foreign"].counts == {} and info["foreign"].best_value is None
    assert info["dead"].counts == {"FAIL": 2} and info["dead"].best_value is None


def test_a_report_ranks_the_best_and_its_importances_sum_to_one(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    values = [0.70, 0.95, 0.80, 0.72, 0.93, 0.81, 0.71, 0.94]
    study(url, "s", None, values)
    report = study_report("s", url, top=3)
    assert [t.value for t in report.best] == [0.95, 0.94, 0.93]
    assert report.objectives == ["objective 0"] and report.budget is None and report.counts == {"COMPLETE": 8}
    (imp,) = report.importances.values()
    assert set(imp) == {"optimizer.lr", "model.dropout"} and sum(imp.values()) == pytest.approx(1.0)
    d = report.to_dict()
    assert d["best"][0]["value"] == 0.95 and d["importance_note"] == ""


def test_too_few_trials_and_unknown_studies_are_said_plainly(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study(url, "small", None, [0.5, 0.6])
    report = study_report("small", url)
    assert (
        report.importances == {}
        and "need at least 4 complete trials (this study has 2)" in report.importance_note
    )
    with pytest.raises(TunelabError, match=r"study 'smal' is not in .*\(did you mean \"small\"\?\)"):
        study_report("smal", url)
