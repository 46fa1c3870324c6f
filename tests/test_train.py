"""End-to-end tests of the loop: learning, determinism, events, divergence, interruption."""

import json

import pytest
import torch
from torch import nn

from tunelab import DataBundle, Method, fit, load_recipe
from tunelab.data import load_data
from tunelab.errors import TunelabError
from tunelab.methods import METHODS
from tunelab.models import MODELS

IRIS = {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3}}


@pytest.fixture(scope="module")
def iris() -> DataBundle:
    return load_data(load_recipe(IRIS).data)


def test_mnist1d_cnn_learns_well_above_chance():
    r = fit(
        {
            "data": {"name": "mnist1d"},
            "model": {"name": "cnn1d", "channels": [16, 32], "hidden": [64]},
            "optimizer": {"name": "adam", "lr": 0.003},
            "train": {"epochs": 4, "batch_size": 128, "efficiency": False},
        },
        save=False,
    )
    assert r.status == "completed" and r.epochs == 4
    assert r.val["accuracy"] > 0.5  # chance is 0.1
    assert r.test["accuracy"] > 0.5
    assert len(r.test["confusion_matrix"]) == 10


def test_same_seed_same_metrics_and_other_seed_differs(iris):
    a = fit(IRIS, data=iris, save=False, overrides=["train.efficiency=false"])
    b = fit(IRIS, data=iris, save=False, overrides=["train.efficiency=false"])
    c = fit(IRIS, data=iris, save=False, overrides=["train.efficiency=false", "train.seed=1"])
    assert [h["train"]["loss"] for h in a.history] == [h["train"]["loss"] for h in b.history]
    assert a.val == b.val and a.test == b.test
    assert [h["train"]["loss"] for h in a.history] != [h["train"]["loss"] for h in c.history]


def test_run_directory_is_complete_and_repeatable(tmp_path, iris):
    out = tmp_path / "run"
    r = fit(IRIS, out=out, overrides=["methods.early_stopping={patience: 2}"])
    for name in ("recipe.yaml", "env.json", "metrics.jsonl", "best.pt", "final.pt", "result.json"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == r.epochs and json.loads(lines[0])["epoch"] == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == r.status and result["val"]["accuracy"] == pytest.approx(r.val["accuracy"])
    env = json.loads((out / "env.json").read_text())
    assert env["seed"] == 0 and env["torch"] == torch.__version__
    # The saved weights load without tunelab and reproduce the reported val accuracy.
    state = torch.load(out / "final.pt", weights_only=True)
    model = MODELS.get("mlp").build((4,), 3, hidden=[16])
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        acc = (model(iris.x_val).argmax(1) == iris.y_val).float().mean().item()
    assert acc == pytest.approx(r.val["accuracy"])
    # The resolved recipe repeats the run exactly.
    again = fit(out / "recipe.yaml", save=False)
    assert again.val == r.val and again.test == r.test


def test_reusing_an_out_directory_needs_overwrite_and_then_replaces_the_run(tmp_path):
    out = tmp_path / "run"
    fit(IRIS, out=out, overrides=["train.epochs=2", "train.efficiency=false"])
    with pytest.raises(TunelabError, match="holds a run already"):
        fit(IRIS, out=out, overrides=["train.epochs=1"])  # refused before the data loads
    fit(IRIS, out=out, overwrite=True, overrides=["train.epochs=1", "train.efficiency=false"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_out_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="not a tunelab run"):
        fit(IRIS, out=tmp_path, save=True)


class Recorder(Method):
    """Records the order in which the loop fires events."""

    name = "recorder"

    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def setup(self, state):
        self.log.append((self.tag, "setup"))

    def batch(self, state, x, y):
        if state.step == 0:
            self.log.append((self.tag, "batch"))
        return x, y

    def after_step(self, state):
        if state.step == 1:
            self.log.append((self.tag, "after_step"))

    def epoch_end(self, state):
        self.log.append((self.tag, "epoch_end"))

    def fit_end(self, state):
        self.log.append((self.tag, "fit_end"))


def test_events_fire_in_order_and_after_hooks_reverse(iris):
    log = []
    fit(
        IRIS,
        data=iris,
        save=False,
        overrides=["train.epochs=1", "train.efficiency=false"],
        methods=[Recorder(log, "a"), Recorder(log, "b")],
    )
    assert log == [
        ("a", "setup"),
        ("b", "setup"),
        ("a", "batch"),
        ("b", "batch"),
        ("b", "after_step"),
        ("a", "after_step"),
        ("b", "epoch_end"),
        ("a", "epoch_end"),
        ("b", "fit_end"),
        ("a", "fit_end"),
    ]


def test_divergence_ends_the_run_with_a_clear_status(tmp_path):
    r = fit(
        {
            "data": {"name": "diabetes"},
            "model": {"name": "linear"},
            "optimizer": {"name": "sgd", "lr": 50.0},
            "train": {"epochs": 30},
        },
        out=tmp_path / "d",
    )
    assert r.status == "diverged"
    assert "lower optimizer.lr" in r.message
    assert r.test == {}  # nothing is reported on test for a failed run
    assert json.loads((tmp_path / "d" / "result.json").read_text())["status"] == "diverged"


class Interrupt(Method):
    name = "interrupt"

    def epoch_end(self, state):
        if state.epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_a_consistent_directory(tmp_path, iris):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(IRIS, data=iris, out=out, overrides=["train.epochs=5"], methods=[Interrupt()])
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["epochs"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 2 never finished
    torch.load(out / "best.pt", weights_only=True)
    assert not list(out.glob(".*.tmp*")) and not list(out.glob(".best.pt.*"))


def test_fit_accepts_a_module_and_tensors():
    torch.manual_seed(0)
    x = torch.randn(300, 5)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    r = fit(
        {"train": {"epochs": 15, "efficiency": False}, "optimizer": {"lr": 0.01}},
        model=model,
        data=(x, y),
        save=False,
    )
    assert r.status == "completed" and r.val["accuracy"] > 0.85
    assert r.model is model


def test_regression_reports_metrics_in_data_units():
    r = fit(
        {
            "data": {"name": "diabetes"},
            "model": {"name": "linear"},
            "optimizer": {"name": "gd", "lr": 0.1},
            "train": {"epochs": 200, "efficiency": False},
        },
        save=False,
    )
    assert r.monitor == "val.loss"
    assert 0.3 < r.val["r2"] < 0.7
    assert r.val["mse"] > 1000  # diabetes targets are in the tens to hundreds, not standardized units


def test_gd_takes_one_step_per_epoch(iris):
    r = fit(
        IRIS, data=iris, save=False, overrides=["optimizer.name=gd", "train.efficiency=false"], methods=[]
    )
    assert r.status == "completed"
    # No method reports; the data's own facts: iris holds a row that is also in its test split.
    assert set(r.info) == {"preprocess"} and r.info["preprocess"]["duplicates"]["across"]["test~train"] == 1


def test_bf16_autocast_trains_like_fp32(iris):
    common = ["train.epochs=40", "train.efficiency=false", "optimizer.lr=0.01"]
    fp32 = fit(IRIS, data=iris, save=False, overrides=common)
    bf16 = fit(IRIS, data=iris, save=False, overrides=[*common, "train.precision=bf16"])
    assert bf16.status == "completed" and fp32.val["accuracy"] > 0.85
    assert bf16.val["accuracy"] >= fp32.val["accuracy"] - 0.1
    assert bf16.history[0]["train"]["loss"] != fp32.history[0]["train"]["loss"]  # autocast really ran


def test_compile_gives_the_same_kind_of_result(iris):
    pytest.importorskip("torch._inductor")
    r = fit(IRIS, data=iris, save=False, overrides=["train.compile=true", "train.efficiency=false"])
    assert r.status == "completed"
    assert not any(k.startswith("_orig_mod") for k in r.model.state_dict())


def test_efficiency_is_measured(iris):
    r = fit(IRIS, data=iris, save=False, overrides=["train.epochs=1"])
    e = r.efficiency
    assert e["params"] == 4 * 16 + 16 + 16 * 3 + 3
    assert e["latency_ms"] > 0 and e["throughput"] > 0 and e["size_bytes"] > e["params"] * 4


def test_regression_monitor_must_fit_the_task():
    from tunelab.errors import RecipeError

    with pytest.raises(RecipeError, match=r"train\.monitor"):
        fit({"data": {"name": "diabetes"}, "train": {"monitor": "val.accuracy"}}, save=False)


# --- contract tests over every registered model and method -------------------------------------

SHAPES = {
    "embedding_bag": "text_csv",
    "textcnn": "text_csv",
    "transformer": "tiny_bert",
    "linear": "iris",
    "mlp": "iris",
    "cnn1d": "mnist1d",
    "cnn2d": "digits",
    "resnet": "digits",
    "gru": "mnist1d",
}


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n != "custom"])
def test_every_model_trains_a_step_serializes_and_is_deterministic(name, tmp_path, request):
    assert name in SHAPES, f"add {name} to SHAPES"
    recipe = {
        "data": {"name": SHAPES[name]},
        "model": {"name": name},
        "train": {"epochs": 1, "efficiency": False, "batch_size": 256},
    }
    if SHAPES[name] == "text_csv":  # a tiny corpus written by tests/conftest.py
        recipe["data"] = {"name": "text_csv", "path": str(request.getfixturevalue("text_csv"))}
    if SHAPES[name] == "tiny_bert":  # a tiny random BERT in Hugging Face's layout, as MiniLM ships
        bert = str(request.getfixturevalue("tiny_bert"))
        recipe["data"] = {"name": "text_csv", "path": str(request.getfixturevalue("text_csv"))}
        recipe["preprocess"] = {"tokenizer": bert, "max_length": 32}
        recipe["model"] = {"name": name, "encoder": bert, "pretrained": bert}
    a = fit(recipe, out=tmp_path / "a")
    b = fit(recipe, save=False)
    assert a.status == "completed" and a.val == b.val
    state = torch.load(tmp_path / "a" / "final.pt", weights_only=True)
    assert state.keys() == a.model.state_dict().keys()


METHOD_PARAMS = {"early_stopping": {"patience": 1}}
# Methods for one kind of input run on a dataset of that kind (they refuse the others).
SMALL_CNN2D = {"name": "cnn2d", "channels": [8], "hidden": [16]}
METHOD_RECIPES = {
    "image_augment": {"data": {"name": "digits"}, "model": SMALL_CNN2D},
    "tta": {"data": {"name": "digits"}, "model": SMALL_CNN2D},
    "signal_augment": {
        "data": {"name": "mnist1d"},
        "model": {"name": "cnn1d", "channels": [8], "hidden": [16]},
    },
    "text_augment": {"model": {"name": "embedding_bag", "embed_dim": 8}},
}


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_runs_in_the_loop_and_is_deterministic(name, iris, tmp_path, request):
    base = {**IRIS, **METHOD_RECIPES.get(name, {})}
    data = iris if name not in METHOD_RECIPES else None
    if name == "text_augment":  # token ids: the tiny corpus of tests/conftest.py
        base["data"] = {"name": "text_csv", "path": str(request.getfixturevalue("text_csv"))}
        base["preprocess"] = {"max_length": 24}
    recipe = load_recipe(
        base,
        [
            f"methods.{name}={json.dumps(METHOD_PARAMS.get(name, {}))}",
            "train.efficiency=false",
            "train.epochs=2",
        ],
    )
    a = fit(recipe, data=data, out=tmp_path / "a")
    b = fit(recipe, data=data, save=False)
    assert a.status in ("completed", "stopped_early")
    assert [h["train"]["loss"] for h in a.history] == [h["train"]["loss"] for h in b.history]
    assert a.val == b.val
    torch.load(tmp_path / "a" / "final.pt", weights_only=True)


def test_custom_factory_model_through_the_recipe(monkeypatch, iris, tmp_path):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "models"))
    recipe = {**IRIS, "model": {"name": "custom", "factory": "_model_factories:make_net", "width": 12}}
    r = fit(recipe, data=iris, out=tmp_path / "run", overrides=["train.efficiency=false"])
    assert r.status == "completed"
    assert "width: 12" in (tmp_path / "run" / "recipe.yaml").read_text()
    assert sum(p.numel() for p in r.model.parameters()) == 4 * 12 + 12 + 12 * 3 + 3


def test_fp16_autocast_with_loss_scaling_trains(iris):
    common = [
        "train.epochs=40",
        "train.efficiency=false",
        "optimizer.lr=0.01",
        "methods.grad_clip={max_norm: 1.0}",
    ]
    fp32 = fit(IRIS, data=iris, save=False, overrides=common)
    fp16 = fit(IRIS, data=iris, save=False, overrides=[*common, "train.precision=fp16"])
    assert fp16.status == "completed"
    assert fp16.val["accuracy"] >= fp32.val["accuracy"] - 0.1
    # Clipping saw unscaled gradients: its reported norms are of the same size as in fp32.
    ratio = fp16.history[0]["grad_clip"]["norm_mean"] / fp32.history[0]["grad_clip"]["norm_mean"]
    assert 0.5 < ratio < 2


class StepCounter(Method):
    """Counts micro-batches and optimizer steps; records the lr after each step."""

    name = "step_counter"

    def setup(self, state):
        self.steps_per_epoch, self.micro, self.lrs = state.steps_per_epoch, 0, []

    def batch(self, state, x, y):
        self.micro += 1
        return x, y

    def after_step(self, state):
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


# No dropout (random masks differ between the runs) and no batch norm (its statistics are per
# micro-batch): a model whose gradient over K micro-batches is that of the K*B batch.
ACCUM = {
    **IRIS,
    "model": {"name": "mlp", "hidden": [16], "dropout": 0.0},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "schedule": {"name": "onecycle"},  # per batch: it must see the optimizer steps, not micro-batches
    "train": {"epochs": 3, "efficiency": False},
}


def _assert_same_training(a, b) -> None:
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert [h["train"]["loss"] for h in a.history] == pytest.approx([h["train"]["loss"] for h in b.history])
    assert a.val["loss"] == pytest.approx(b.val["loss"])


def test_grad_accum_of_k_batches_of_b_trains_like_batches_of_k_times_b(iris):
    # 96 training samples: batches of 60 are [60, 36]; micro-batches of 20 in threes are
    # [20, 20, 20] and [20, 16], the shorter last step weighted by its sample counts.
    assert len(iris.x_train) == 96
    big, small = StepCounter(), StepCounter()
    a = fit(ACCUM, data=iris, save=False, overrides=["train.batch_size=60"], methods=[big])
    b = fit(
        ACCUM, data=iris, save=False, overrides=["train.batch_size=20", "train.grad_accum=3"], methods=[small]
    )
    assert big.steps_per_epoch == small.steps_per_epoch == 2
    assert (big.micro, small.micro) == (6, 15) and len(small.lrs) == 6
    assert small.lrs == pytest.approx(big.lrs) and len(set(big.lrs)) == 6  # the schedule moved per step
    _assert_same_training(a, b)


def test_the_history_records_the_lr_of_every_optimizer_step_of_a_per_batch_schedule(iris):
    # The report draws the lr per step: `lr_steps` is the lr each optimizer step used (not each
    # micro-batch), `steps` the optimizer steps so far; an epoch schedule records neither list.
    counter = StepCounter()
    overrides = ["train.batch_size=20", "train.grad_accum=3"]
    r = fit(ACCUM, data=iris, save=False, overrides=overrides, methods=[counter])
    assert [h["steps"] for h in r.history] == [2, 4, 6]
    used = [lr for h in r.history for lr in h["lr_steps"]]
    first = r.history[0]["lr_steps"][0]
    assert used == pytest.approx([first, *counter.lrs[:-1]])  # the lr after a step is the next one's
    assert first == pytest.approx(0.1 / 25)  # onecycle starts at max_lr / div_factor
    stepped = fit({**ACCUM, "schedule": {"name": "step", "step_size": 1}}, data=iris, save=False)
    assert all("lr_steps" not in h for h in stepped.history) and stepped.history[-1]["steps"] == 6


def test_gd_with_grad_accum_takes_its_full_batch_step_in_micro_batches(iris):
    recipe = {**ACCUM, "optimizer": {"name": "gd", "lr": 0.5}}
    counter = StepCounter()
    a = fit(recipe, data=iris, save=False)
    b = fit(recipe, data=iris, save=False, overrides=["train.grad_accum=4"], methods=[counter])
    assert counter.steps_per_epoch == 1 and (counter.micro, len(counter.lrs)) == (12, 3)
    _assert_same_training(a, b)


def test_channels_last_on_images_and_refused_elsewhere():
    from tunelab.errors import RecipeError

    recipe = {
        "data": {"name": "digits"},
        "model": {"name": "cnn2d", "channels": [8]},
        "train": {"epochs": 1, "efficiency": False, "batch_size": 256},
    }
    a = fit(recipe, save=False)
    b = fit(recipe, save=False, overrides=["train.channels_last=true"])
    assert b.status == "completed"
    assert b.val["accuracy"] == pytest.approx(a.val["accuracy"], abs=0.02)
    with pytest.raises(RecipeError, match="image data"):
        fit(IRIS, save=False, overrides=["train.channels_last=true"])
