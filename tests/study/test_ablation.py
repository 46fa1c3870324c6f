"""Ablation: variants, validation, paired statistics on a scripted objective, resume, test isolation."""

import math

import numpy as np
import optuna
import pytest

from tunelab.errors import RecipeError, TunelabError
from tunelab.recipe import load_recipe
from tunelab.study.ablation import check_ablation, run_ablation, variant_recipe, variants
from tunelab.study.scaffold import RunOutcome, train_run

IRIS = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [8], "dropout": 0.1},
    "optimizer": {"name": "adam", "lr": 0.01},
    # One thread: tiny models train faster without thread hand-offs, and the test machine is shared.
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
    "methods": [{"name": "l2", "weight": 1e-3}],
}


def memory():
    return optuna.storages.InMemoryStorage()


# --- variants and validation ---------------------------------------------------------------------


def test_variants_cover_methods_regularizers_adds_and_values():
    r = load_recipe(
        {
            "model": {"name": "cnn1d", "dropout": 0.2, "batch_norm": True},
            "methods": [{"name": "l2", "weight": 1e-4}, {"name": "grad_clip", "max_norm": 1.0}],
            "ablation": {"add": [{"name": "ema", "decay": 0.99}], "values": {"optimizer.lr": [0.01, 0.1]}},
        }
    )
    vs = variants(r)
    assert [v.name for v in vs] == [
        "base", "-l2", "-grad_clip", "dropout=0", "batch_norm=false", "+ema", "optimizer.lr=0.01",
        "optimizer.lr=0.1",
    ]  # fmt: skip
    by = {v.name: v for v in vs}
    assert by["-l2"].kind == "remove" and by["dropout=0"].kind == "regularizer"
    # Each variant is a valid recipe that differs from the base exactly as named.
    assert variant_recipe(r, by["-l2"]).method("l2") is None
    assert variant_recipe(r, by["+ema"]).method("ema").params["decay"] == 0.99
    assert variant_recipe(r, by["batch_norm=false"]).model.params["batch_norm"] is False
    assert variant_recipe(r, by["optimizer.lr=0.1"]).optimizer.params["lr"] == 0.1


def test_switches_turn_variant_families_off_and_absent_regularizers_give_none():
    r = load_recipe({**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "ablation": {"remove_methods": False}})
    assert [v.name for v in variants(r)] == ["base"]  # no dropout, no batch norm, methods kept
    r = load_recipe({**IRIS, "ablation": {"remove_regularizers": False}})
    assert [v.name for v in variants(r)] == ["base", "-l2"]


def test_the_same_method_added_twice_gets_names_that_tell_them_apart():
    r = load_recipe({"ablation": {"add": [{"name": "ema", "decay": 0.9}, {"name": "ema", "decay": 0.99}]}})
    names = [v.name for v in variants(r)][-2:]
    assert names == ["+ema{decay: 0.9}", "+ema{decay: 0.99}"]


@pytest.mark.parametrize(
    ("ablation", "path", "fragment"),
    [
        ({"add": [{"name": "emma"}]}, "ablation.add[0].name", 'did you mean "ema"?'),
        ({"add": [{"name": "l2"}]}, "ablation.add[0].name", "already one of the recipe's methods"),
        ({"add": [{"name": "ema", "decay": 2.0}]}, "ablation.add[0]", "does not make a valid recipe"),
        ({"values": {"optimizer.lr": [-1]}}, "ablation.values.optimizer.lr", "must be > 0"),
        ({"values": {"optimizer.lr": []}}, "ablation.values.optimizer.lr", "non-empty list"),
        ({"values": {"optimizer.lr": [0.01]}}, "ablation.values.optimizer.lr", "base recipe's own setting"),
        ({"values": {"data.val_fraction": [0.3]}}, "ablation.values.data.val_fraction", "same data split"),
        ({"values": {"train.seed": [3]}}, "ablation.values.train.seed", "same data split and seeds"),
        ({"values": {"train.epoch": [3]}}, "ablation.values.train.epoch", 'did you mean "epochs"?'),
    ],
)
def test_check_ablation_names_the_path_and_the_fix(ablation, path, fragment):
    recipe = load_recipe({**IRIS, "ablation": ablation})  # the section's form is valid
    with pytest.raises(RecipeError) as e:
        check_ablation(recipe)
    assert e.value.path == path
    assert fragment in str(e.value)


def test_a_bad_ablation_section_fails_before_any_run(monkeypatch):
    # run_ablation checks the section against the recipe before it trains anything.
    import tunelab.study.scaffold as scaffold

    def no_run(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(scaffold, "train_run", no_run)
    recipe = load_recipe({**IRIS, "ablation": {"add": [{"name": "emma"}]}})
    with pytest.raises(RecipeError, match='did you mean "ema"'):
        run_ablation(recipe, seeds=2, storage=memory())


def test_nothing_to_ablate_is_a_clear_error():
    r = load_recipe({**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "methods": []})
    with pytest.raises(TunelabError, match="nothing to ablate"):
        run_ablation(r, seeds=2, storage=memory())


# --- statistics on a scripted objective ------------------------------------------------------------

SEEDS = 8
RNG = np.random.default_rng(2024)
SEED_EFFECT = RNG.normal(0, 0.03, size=SEEDS)  # what a seed does to every variant alike
NOISE = {name: RNG.normal(0, 0.004, size=SEEDS) for name in ("base", "-l2", "+ema")}
TRUE_EFFECT = {"base": 0.0, "-l2": 0.0, "+ema": 0.02}  # +ema truly better; -l2 truly equal


class Scripted:
    """A runner with a known truth: no training, val accuracy = 0.8 + seed effect + effect + noise."""

    def __init__(self):
        self.calls = []

    def __call__(self, recipe, bundle, out):
        name = "+ema" if recipe.method("ema") else ("-l2" if recipe.method("l2") is None else "base")
        seed = recipe.train.seed
        value = 0.8 + SEED_EFFECT[seed] + TRUE_EFFECT[name] + NOISE[name][seed]
        selection = bundle.x_test is bundle.x_val  # the selection bundle holds val in its test slot
        self.calls.append((name, seed, selection))
        return RunOutcome("completed", {"accuracy": value, "loss": 1 - value}, {"accuracy": value - 0.01})


@pytest.fixture(scope="module")
def scripted_result():
    runner = Scripted()
    recipe = load_recipe(
        {**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "ablation": {"add": [{"name": "ema"}]}}
    )
    return run_ablation(recipe, seeds=SEEDS, storage=memory(), runner=runner), runner


def test_the_interval_covers_the_true_effect_and_the_equal_variant_is_not_significant(scripted_result):
    result, _ = scripted_result
    better, equal = result.variant("+ema"), result.variant("-l2")
    assert better.difference.ci_low <= 0.02 <= better.difference.ci_high
    assert better.difference.ci_low > 0 and better.p_adjusted <= 0.05
    assert (
        better.verdict == "better" and better.outcome == "helped" and better.effect() == "adding ema helped"
    )
    assert equal.difference.ci_low <= 0.0 <= equal.difference.ci_high
    assert equal.p_adjusted > 0.05 and equal.outcome == "no detectable difference"
    assert result.conclusions() == {"helped": ["adding ema"], "no detectable difference": ["l2"]}


def test_the_numbers_are_the_paired_statistics_of_the_runs(scripted_result):
    from scipy import stats

    result, _ = scripted_result
    base, ema = result.variant("base"), result.variant("+ema")
    assert base.seeds == tuple(range(SEEDS)) and len(ema.values) == SEEDS
    assert ema.summary.mean == pytest.approx(np.mean(ema.values))
    assert ema.summary.std == pytest.approx(np.std(ema.values, ddof=1))
    ref = stats.ttest_rel(ema.values, base.values)
    assert ema.difference.p_value == pytest.approx(ref.pvalue)
    # Holm over the two variants: +ema is found at step 1, so its interval is at 1 - 0.05/2; -l2
    # is tested at step 2, alone, at 95%.
    ci = ref.confidence_interval(0.975)
    assert ema.difference.confidence == 0.975
    assert (ema.difference.ci_low, ema.difference.ci_high) == pytest.approx((ci.low, ci.high))
    l2 = result.variant("-l2")
    ci = stats.ttest_rel(l2.values, base.values).confidence_interval(0.95)
    assert l2.difference.confidence == 0.95
    assert (l2.difference.ci_low, l2.difference.ci_high) == pytest.approx((ci.low, ci.high))
    # The smaller p doubled, the larger kept (or the running max).
    p = sorted([ema.difference.p_value, l2.difference.p_value])
    assert ema.p_adjusted == pytest.approx(min(1, 2 * p[0]))
    assert result.to_dict()["intervals"].startswith("95% Holm step-down")


def test_test_split_is_read_only_by_base_and_best_after_the_choice(scripted_result):
    result, runner = scripted_result
    assert result.best == "+ema"
    selection = [c for c in runner.calls if c[2]]
    final = [c for c in runner.calls if not c[2]]
    assert len(selection) == 3 * SEEDS  # every variant on every seed, none of them saw test
    assert sorted({name for name, _, _ in final}) == ["+ema", "base"]
    assert len(final) == 2 * SEEDS
    # Every final run came after every selection run: the choice was made before test was read.
    assert runner.calls.index(final[0]) == len(selection)
    t = result.test
    assert t.metric == "accuracy" and t.base.n == SEEDS and t.best.n == SEEDS
    assert t.difference.ci_low <= 0.02 <= t.difference.ci_high


def test_json_has_the_documented_keys(scripted_result):
    result, _ = scripted_result
    d = result.to_dict()
    for v in d["variants"]:
        for key in ("name", "mean", "std", "ci_low", "ci_high", "p_value"):
            assert key in v
    base, ema = d["variants"][0], d["variants"][-1]
    assert base["name"] == "base" and base["ci_low"] is None and base["p_value"] is None
    assert ema["ci_low"] < ema["difference"] < ema["ci_high"] and ema["p_value"] <= 0.05
    assert d["best"] == "+ema" and d["test_split"]["best"]["n"] == SEEDS


def test_a_loss_metric_reverses_better_and_worse():
    class Lossy(Scripted):
        def __call__(self, recipe, bundle, out):
            o = super().__call__(recipe, bundle, out)
            return RunOutcome("completed", {"loss": 1 - o.val["accuracy"]}, {"loss": 0.3})

    recipe = load_recipe(
        {**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "ablation": {"add": [{"name": "ema"}]}},
        ["train.monitor=val.loss"],
    )
    result = run_ablation(recipe, seeds=SEEDS, storage=memory(), runner=Lossy())
    ema = result.variant("+ema")
    assert result.mode == "min" and ema.difference.estimate < 0  # a lower loss
    assert ema.verdict == "better" and ema.outcome == "helped" and result.best == "+ema"


def test_diverged_runs_are_reported_and_left_out_of_the_pairs():
    class Diverging(Scripted):
        def __call__(self, recipe, bundle, out):
            o = super().__call__(recipe, bundle, out)
            if recipe.method("ema") and recipe.train.seed == 1:
                return RunOutcome("diverged", {}, message="loss became nan")
            return o

    recipe = load_recipe(
        {**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "ablation": {"add": [{"name": "ema"}]}}
    )
    result = run_ablation(recipe, seeds=4, storage=memory(), runner=Diverging())
    ema = result.variant("+ema")
    assert ema.failed == ((1, "diverged"),) and ema.seeds == (0, 2, 3)
    assert ema.difference.n == 3 and ema.summary.n == 3


# --- resume with real training -------------------------------------------------------------------


class Interrupting:
    """The real runner, with Ctrl-C pressed at the start of run number ``stop_at``."""

    def __init__(self, stop_at=None):
        self.stop_at, self.calls = stop_at, 0

    def __call__(self, recipe, bundle, out):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt("interrupted by the test")
        return train_run(recipe, bundle, out)


def test_an_interrupted_ablation_resumes_without_recomputing_anything(tmp_path):
    recipe = load_recipe(IRIS)  # variants: base, -l2, dropout=0
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    first = Interrupting(stop_at=4)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(recipe, seeds=2, storage=url, study_name="abl", runner=first)
    assert first.calls == 4  # three runs finished, the fourth was cut

    again = Interrupting()
    resumed = run_ablation(recipe, seeds=2, storage=url, study_name="abl", runner=again)
    assert resumed.runs_reused == 3
    assert again.calls == resumed.runs_computed  # only what had not finished was computed
    total = 3 * 2 + (2 if resumed.best == "base" else 4)  # selection runs, then test runs
    assert resumed.runs_computed + resumed.runs_reused == total

    third = Interrupting()
    cached = run_ablation(recipe, seeds=2, storage=url, study_name="abl", runner=third)
    assert third.calls == 0 and cached.runs_reused == total
    assert cached.to_dict()["variants"] == resumed.to_dict()["variants"]

    # The same study run in one go gives the same numbers: resuming changed nothing.
    fresh = run_ablation(recipe, seeds=2, storage=memory(), study_name="abl")
    assert [v.values for v in fresh.variants] == [v.values for v in resumed.variants]
    assert fresh.test.base_values == resumed.test.base_values

    # The interrupted trial is kept as FAIL "interrupted"; finished ones as COMPLETE.
    study = optuna.load_study(study_name="abl", storage=url)
    states = [(t.state.name, t.user_attrs["run"]["status"]) for t in study.trials]
    assert ("FAIL", "interrupted") in states
    assert sum(s == ("COMPLETE", "completed") for s in states) == total


def test_more_seeds_reuse_the_runs_already_stored(tmp_path):
    recipe = load_recipe(IRIS)
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_ablation(recipe, seeds=2, storage=url, study_name="abl")
    counting = Interrupting()
    wider = run_ablation(recipe, seeds=3, storage=url, study_name="abl", runner=counting)
    assert wider.seeds == (0, 1, 2)
    assert all(len(v.values) == 3 for v in wider.variants)
    assert counting.calls == wider.runs_computed and wider.runs_reused >= 3 * 2


def test_a_changed_recipe_is_refused_with_the_fields_that_differ(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_ablation(load_recipe(IRIS), seeds=2, storage=url, study_name="abl", runner=Scripted())
    with pytest.raises(TunelabError, match=r"different recipe \(train.epochs: 2 -> 3\)"):
        run_ablation(load_recipe(IRIS, ["train.epochs=3"]), seeds=2, storage=url, study_name="abl")
    # A setting that changes no metric (TensorBoard) keeps the study.
    run_ablation(load_recipe(IRIS, ["train.tensorboard=false"]), seeds=2, storage=url, study_name="abl",
                 runner=Scripted())  # fmt: skip


def test_final_runs_write_run_directories_when_asked(tmp_path):
    result = run_ablation(load_recipe(IRIS), seeds=2, storage=memory(), out_dir=tmp_path / "runs")
    dirs = sorted(p.relative_to(tmp_path / "runs").as_posix() for p in (tmp_path / "runs").glob("*/seed-*"))
    assert {d.split("/")[0] for d in dirs} == {"base", result.best}
    assert len(dirs) == 2 * (1 if result.best == "base" else 2)
    assert all((tmp_path / "runs" / d / "result.json").is_file() for d in dirs)
    assert math.isfinite(result.test.base.mean)


def test_compression_methods_show_their_price_in_size():
    # What a method costs is reported beside what it is worth: the narrowed or int8 model is
    # smaller, and removing the method gives the size back.
    recipe = {
        **IRIS,
        # Wide enough that int8 data outweighs torchao's per-tensor metadata in the file.
        "model": {"name": "mlp", "hidden": [256, 256]},
        "methods": [{"name": "channel_prune", "ratio": 0.5}, {"name": "quantize"}],
    }
    result = run_ablation(load_recipe(recipe), seeds=2, storage=memory())
    base, unpruned, float_ = (result.variant(n) for n in ("base", "-channel_prune", "-quantize"))
    assert base.size["params"] < unpruned.size["params"] and base.size["params"] == float_.size["params"]
    assert base.size["size_bytes"] < float_.size["size_bytes"]
    assert result.to_dict()["variants"][0]["params"] == base.size["params"]


def test_one_seed_is_allowed_but_decides_nothing():
    result = run_ablation(load_recipe(IRIS), seeds=1, storage=memory(), runner=Scripted())
    assert all(v.verdict in ("base", "needs ≥ 2 seeds") for v in result.variants)
    assert result.variant("-l2").difference.test == "none"
    assert not result.variant("-l2").difference.has_interval


def test_another_base_seed_reuses_the_seeds_both_studies_share():
    storage = memory()
    recipe = load_recipe(
        {**IRIS, "model": {"name": "mlp", "dropout": 0.0}, "ablation": {"add": [{"name": "ema"}]}}
    )
    run_ablation(recipe, seeds=3, storage=storage, study_name="abl", runner=Scripted())
    runner = Scripted()
    shifted = run_ablation(recipe, seeds=3, overrides=["train.seed=2"], storage=storage, study_name="abl",
                           runner=runner)  # fmt: skip
    assert shifted.seeds == (2, 3, 4)
    computed_seeds = sorted({seed for _, seed, selection in runner.calls if selection})
    assert computed_seeds == [3, 4]  # seed 2 was already there for every variant


def test_an_ablation_of_the_preprocessing_runs_each_value_on_its_own_preprocessed_data():
    recipe = {
        **IRIS,
        "methods": [],
        "ablation": {"values": {"preprocess.scaling": ["none", "minmax"]}, "remove_regularizers": False},
    }
    seen = {}

    def runner(r, bundle, out):
        seen[r.preprocess.scaling] = (float(bundle.x_train.min()), float(bundle.x_train.max()))
        return train_run(r, bundle, out)

    result = run_ablation(recipe, seeds=2, storage=memory(), runner=runner)
    names = [v.variant.name for v in result.variants]
    assert names == ["base", "preprocess.scaling=none", "preprocess.scaling=minmax"]
    assert seen["minmax"] == pytest.approx((0.0, 1.0))  # min-max scaled on train
    assert seen["none"][1] > 7  # raw iris: sepal lengths up to 7.9 cm
    assert seen["standard"][0] < -1  # the base: standardized
    assert all(v.verdict for v in result.variants[1:]) and result.variants[1].difference is not None
