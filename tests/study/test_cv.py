"""Cross-validation: folds, per-fold standardization, the one-SE rule, the final retrain, resume."""

import numpy as np
import optuna
import pytest
import torch
from scipy import stats

from tunelab.data import load_data
from tunelab.data.preprocess import Preprocessing
from tunelab.errors import DataError, RecipeError, TunelabError
from tunelab.recipe import load_recipe
from tunelab.study.cv import CVValue, fold_bundle, fold_indices, parse_param, run_cv, select_value
from tunelab.study.scaffold import RunOutcome, train_run
from tunelab.study.stats import summarize

IRIS = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8], "dropout": 0.0},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
}


def memory():
    return optuna.storages.InMemoryStorage()


# --- folds -----------------------------------------------------------------------------------------


def test_stratified_folds_partition_the_data_and_keep_class_proportions():
    y = np.repeat([0, 1, 2], [30, 20, 10])
    folds = fold_indices(y, 5, seed=0, stratify=True)
    held = np.concatenate([v for _, v in folds])
    assert sorted(held.tolist()) == list(range(60))  # every sample held out exactly once
    for train, val in folds:
        assert not set(train) & set(val)
        assert np.bincount(y[val]).tolist() == [6, 4, 2]
    assert [v.tolist() for _, v in fold_indices(y, 5, seed=0, stratify=True)] == [
        v.tolist() for _, v in folds
    ]
    other = fold_indices(y, 5, seed=1, stratify=True)
    assert [v.tolist() for _, v in other] != [v.tolist() for _, v in folds]  # the seed shuffles


def test_a_class_with_fewer_samples_than_folds_is_a_clear_error():
    y = np.array([0] * 20 + [1] * 20 + [2] * 3)
    with pytest.raises(DataError) as e:
        fold_indices(y, 5, seed=0, stratify=True, class_names=["a", "b", "rare"])
    msg = str(e.value)
    assert "class 'rare' has only 3 samples" in msg and "fewer than the 5 folds" in msg
    assert "--folds 3 or fewer" in msg


def test_too_few_folds_or_too_many_are_refused():
    with pytest.raises(TunelabError, match="at least 2 folds"):
        fold_indices(np.arange(10) % 2, 1, seed=0, stratify=True)
    with pytest.raises(DataError, match="at most 10 folds"):
        fold_indices(np.arange(10, dtype=float), 11, seed=0, stratify=False)


def test_regression_folds_are_plain_kfold():
    folds = fold_indices(np.linspace(0, 1, 23), 4, seed=0, stratify=False)
    assert sorted(len(v) for _, v in folds) == [5, 6, 6, 6]


def test_each_fold_fits_standardization_on_its_own_training_part_only():
    recipe = load_recipe(IRIS)
    pool = load_data(recipe.data, recipe.preprocess, keep_raw=True)
    x, y = pool.raw.x.astype(np.float64), pool.raw.y
    assert len(y) == len(pool.x_train) + len(pool.x_val)  # train + val, the test split left out
    train, held = fold_indices(y, 4, seed=0, stratify=True)[0]
    b = fold_bundle(pool, train, held)
    assert b.x_train.mean(0).abs().max() < 1e-5  # centred with its own statistics
    assert b.x_train.std(0, unbiased=False) == pytest.approx(torch.ones(4), abs=1e-5)
    assert b.preprocessing.table.scaler["center"] == pytest.approx(x[train].mean(0).tolist())
    # The very statistics make_bundle would fit on these train samples: one Preprocessing.fit.
    fit_here = Preprocessing.fit(
        pool.raw.x[train], y[train], spec=recipe.preprocess, names=pool.feature_names
    )
    assert b.preprocessing == fit_here
    # The held-out fold is scaled with the training part's statistics, not its own.
    expected = (x[held] - x[train].mean(0)) / x[train].std(0)
    assert b.x_val.numpy() == pytest.approx(expected, abs=1e-5)
    assert b.x_test is b.x_val and len(b.x_val) == len(held)  # no test split inside a fold
    raw_recipe = load_recipe(IRIS, ["preprocess.scaling=none"])
    raw_pool = load_data(raw_recipe.data, raw_recipe.preprocess, keep_raw=True)
    raw = fold_bundle(raw_pool, train, held)
    assert raw.x_train.numpy() == pytest.approx(x[train])


def test_each_fold_fits_imputation_and_categories_on_its_own_training_part(tmp_path):
    # A category that only the held-out rows have is unseen for the fold: all zeros, not a column.
    path = tmp_path / "t.csv"
    rows = [f"{'rare' if i >= 30 else 'ab'[i % 2]},{'' if i % 5 == 0 else i},{i % 2}" for i in range(40)]
    path.write_text("c,v,y\n" + "\n".join(rows) + "\n")
    recipe = load_recipe({"data": {"name": "csv", "path": str(path), "target": "y", "test_fraction": 0.1}})
    pool = load_data(recipe.data, recipe.preprocess, keep_raw=True)
    rare = np.array([r[0] == "rare" for r in pool.raw.x])
    train, held = np.flatnonzero(~rare), np.flatnonzero(rare)
    fold = fold_bundle(pool, train, held)
    table = fold.preprocessing.table
    assert table.categories == [["a", "b"]]  # "rare" was never in this fold's training part
    values = np.array([float(v) if v is not None else np.nan for v in pool.raw.x[train, 1]])
    assert table.fill == [pytest.approx(np.nanmedian(values))]
    assert fold.x_val[:, 1:].abs().sum() == 0  # the unseen category: all zeros


# --- the choice ------------------------------------------------------------------------------------


def _value(v, scores):
    return CVValue(v, str(v), (), tuple(scores), (), summarize(scores))


def test_one_se_rule_takes_the_first_listed_value_within_one_standard_error():
    values = [
        _value(1.0, [0.80, 0.82, 0.84, 0.82]),  # strongest penalty: mean 0.82
        _value(0.1, [0.87, 0.89, 0.90, 0.88]),  # mean 0.885: within one SE (0.0082) of the best
        _value(0.01, [0.87, 0.89, 0.91, 0.89]),  # best mean 0.89
        _value(0.0, [0.85, 0.87, 0.89, 0.87]),
    ]
    c = select_value(values, "max")
    se = np.std([0.87, 0.89, 0.91, 0.89], ddof=1) / 2
    assert c.best.value == 0.01 and c.threshold == pytest.approx(0.89 - se)
    assert c.one_se.value == 0.1 and c.chosen is c.best
    assert select_value(values, "max", "1se").chosen.value == 0.1


def test_one_se_rule_for_a_loss_looks_the_other_way_and_ties_go_to_the_first():
    values = [
        _value("a", [0.30, 0.32, 0.34]),
        _value("b", [0.20, 0.22, 0.24]),
        _value("c", [0.20, 0.22, 0.24]),
    ]
    c = select_value(values, "min")
    assert c.best.value == "b" and c.one_se.value == "b"  # "a" is above best + SE; "b" ties "c"


def test_a_value_that_failed_on_a_fold_cannot_be_chosen():
    good = _value("ok", [0.7, 0.72, 0.74])
    broken = CVValue("lr=1", "lr=1", (), (0.99, 0.99), ((2, "diverged"),), summarize([0.99, 0.99]))
    c = select_value([broken, good], "max", "1se")
    assert c.best is good and c.one_se is good and not broken.eligible
    with pytest.raises(TunelabError, match="no value finished every fold"):
        select_value([broken], "max")


def test_parse_param():
    assert parse_param("methods.l2.weight=0.1,0.01,0") == ("methods.l2.weight", [0.1, 0.01, 0])
    assert parse_param("optimizer.name=adam,sgd") == ("optimizer.name", ["adam", "sgd"])
    assert parse_param("model.hidden=[[8],[16,16]]") == ("model.hidden", [[8], [16, 16]])
    for bad in ("methods.l2.weight", "=1,2", "a..b=1", "x=[1"):
        with pytest.raises(RecipeError, match="path=v1,v2"):
            parse_param(bad)


# --- running ---------------------------------------------------------------------------------------


class Recording:
    """The real runner, recording which bundles it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, recipe, bundle, out):
        self.calls.append((recipe.optimizer.params["lr"], bundle.x_test is bundle.x_val, len(bundle.x_test)))
        return train_run(recipe, bundle, out)


@pytest.fixture(scope="module")
def iris_cv(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('cv') / 'studies.db'}"
    runner = Recording()
    result = run_cv(IRIS, folds=3, param=("optimizer.lr", [0.05, 0.001]), storage=url, study_name="cv",
                    runner=runner)  # fmt: skip
    return result, runner, url


def test_cv_scores_every_value_on_every_fold_and_summarizes_them(iris_cv):
    result, _, _ = iris_cv
    assert result.k == 3 and result.param == "optimizer.lr" and result.metric == "accuracy"
    assert len(result.folds) == 6 and [v.value for v in result.values] == [0.05, 0.001]
    for v in result.values:
        scores = [f.score for f in result.folds if f.label == v.label]
        assert v.scores == tuple(scores) and len(scores) == 3
        assert v.summary.mean == pytest.approx(np.mean(scores))
        ref = stats.t.interval(0.95, 2, loc=np.mean(scores), scale=stats.sem(scores))
        assert (v.summary.ci_low, v.summary.ci_high) == pytest.approx(ref)
    # 120 samples of train+val in three folds of 40.
    assert {(f.n_train, f.n_val) for f in result.folds} == {(80, 40)}
    best = max(result.values, key=lambda v: v.summary.mean)
    assert result.choice.best is best and result.chosen is best


def test_cv_never_reads_the_test_split_until_the_one_final_run(iris_cv):
    result, runner, _ = iris_cv
    folds, final = runner.calls[:-1], runner.calls[-1]
    assert len(folds) == 6 and all(in_val for _, in_val, _ in folds)
    lr, in_val, n_test = final
    assert not in_val and n_test == 30 and lr == result.chosen.value
    assert result.final.status == "completed"


def test_cv_chooses_the_value_that_wins_every_fold_and_retrains_exactly_that_recipe(iris_cv):
    import tunelab

    result, _, _ = iris_cv
    fast, slow = result.values  # lr 0.05 and 0.001: two epochs at 0.001 barely move the weights
    assert all(a > b + 0.2 for a, b in zip(fast.scores, slow.scores, strict=True))
    assert result.choice.best is fast and result.choice.one_se is fast and result.chosen is fast
    # The final retrain is the chosen recipe trained on the recipe's own split: the same numbers
    # as tunelab.fit gives for it (training on the CPU is deterministic).
    ref = tunelab.fit(load_recipe(IRIS, ["optimizer.lr=0.05"]), save=False)
    for split, got in (("val", result.final.val), ("test", result.final.test)):
        want = getattr(ref, split)
        assert got["accuracy"] == want["accuracy"] and got["loss"] == pytest.approx(want["loss"], rel=1e-12)


def test_cv_json_has_folds_values_and_chosen(iris_cv):
    d = iris_cv[0].to_dict()
    assert len(d["folds"]) == 6 and {"value", "fold", "score"} <= d["folds"][0].keys()
    for v in d["values"]:
        assert v["ci"] == [v["ci_low"], v["ci_high"]] and v["mean"] is not None
    assert d["chosen"]["rule"] == "best" and d["chosen"]["value"] in (0.05, 0.001)
    assert "test" in d["final"]


def test_cv_resumes_from_the_storage(iris_cv):
    first, _, url = iris_cv
    runner = Recording()
    again = run_cv(IRIS, folds=3, param=("optimizer.lr", [0.05, 0.001]), storage=url, study_name="cv",
                   runner=runner)  # fmt: skip
    assert runner.calls == [] and again.runs_computed == 0 and again.runs_reused == 7
    assert again.to_dict()["values"] == first.to_dict()["values"]
    # Another K is another set of folds: nothing of K=3 is reused for them, but the final is.
    runner = Recording()
    four = run_cv(IRIS, folds=4, param=("optimizer.lr", [0.05, 0.001]), storage=url, study_name="cv",
                  runner=runner, choose="1se")  # fmt: skip
    assert len(runner.calls) == four.runs_computed and four.k == 4 and len(four.folds) == 8


def test_cv_of_the_recipe_alone_and_of_a_regression():
    res = run_cv(IRIS, folds=2, storage=memory())
    assert [v.label for v in res.values] == ["recipe"] and res.param is None and len(res.folds) == 2
    reg = run_cv(
        {"data": {"name": "diabetes"}, "model": {"name": "linear"}, "train": {"epochs": 2, "threads": 1}},
        folds=2, storage=memory(),
    )  # fmt: skip
    assert reg.metric == "mse" and reg.mode == "min" and not reg.stratified
    assert reg.values[0].summary.mean > 0 and "data's units" in reg.notes[0]


def test_cv_errors_name_what_is_wrong():
    x = np.random.default_rng(0).normal(size=(60, 3)).astype("float32")
    y = np.array([0] * 28 + [1] * 28 + [2] * 4)
    with pytest.raises(
        DataError, match=r"class '2' has only \d samples in train\+val, fewer than the 5 folds"
    ):
        run_cv(IRIS, folds=5, data=(x, y), storage=memory(), runner=lambda *a: RunOutcome("completed", {}))
    with pytest.raises(RecipeError, match=r"--param optimizer\.lr"):
        run_cv(IRIS, folds=3, param=("optimizer.lr", [-1.0]), storage=memory())
    with pytest.raises(RecipeError, match="the folds are cut from the data"):
        run_cv(IRIS, folds=3, param=("data.val_fraction", [0.1, 0.3]), storage=memory())
    with pytest.raises(RecipeError, match="not a DataBundle"):
        run_cv(IRIS, folds=3, data=load_data(load_recipe(IRIS).data), storage=memory())


def test_streamed_data_is_refused_with_what_to_do(tmp_path):
    recipe = {**IRIS, "data": {"name": "iris", "stream": True}}
    with pytest.raises(RecipeError, match=r"data\.stream: false"):
        run_cv(
            recipe, folds=3, storage=f"sqlite:///{tmp_path / 's.db'}", study_name="cv", out=tmp_path / "cv"
        )
