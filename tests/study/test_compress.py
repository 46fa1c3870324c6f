"""compress_run (what `tunelab compress RUN_DIR` runs): rows, saved models, Pareto front, errors."""

from __future__ import annotations

import json

import pytest
import torch

from tunelab import fit
from tunelab.compress.prune import dense_state_dict, weight_sparsity
from tunelab.errors import TunelabError
from tunelab.models import build_model
from tunelab.recipe import load_recipe
from tunelab.study.compress import compress_run, measure_interleaved, pareto_front

RECIPE = {
    "data": {"name": "iris"},
    "model": {"name": "mlp", "hidden": [32, 32], "dropout": 0.0, "init": "kaiming_normal"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 15, "batch_size": 16, "efficiency": False, "tensorboard": False},
    "methods": [{"name": "early_stopping", "patience": 50}],
}
N_WEIGHTS = 4 * 32 + 32 * 32 + 32 * 3  # 1248


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "run"
    torch.set_num_threads(1)
    fit(RECIPE, out=out)
    return out


def _model(run_dir, state_dict):
    recipe = load_recipe(run_dir / "recipe.yaml")
    net = build_model(recipe.model, (4,), 3)
    net.load_state_dict(state_dict)
    return net


def test_unstructured_rows_are_exactly_sparse_saved_and_reported(run_dir):
    res = compress_run(
        run_dir, sparsities=[0.5, 0.9], quantize=True, finetune_epochs=3, seeds=2, budget_s=0.1
    )
    names = ["dense", "unstructured-0.5", "unstructured-0.9", "int8", "int8-weight-only"]
    assert [r.name for r in res.rows] == names
    dense = res.row("dense")
    run_val = json.loads((run_dir / "result.json").read_text())["val"]["accuracy"]
    assert dense.val["accuracy"] == pytest.approx(run_val) and dense.seeds == [0]
    for s in (0.5, 0.9):
        row = res.row(f"unstructured-{s:g}")
        zeros = int(s * N_WEIGHTS + 0.5)
        assert row.weight_sparsity == pytest.approx(zeros / N_WEIGHTS)
        assert row.params == dense.params and row.nonzero_params <= dense.params - zeros
        assert row.seeds == [0, 1] and row.val_summary["accuracy"]["n"] == 2
        lo, hi = row.val_summary["accuracy"]["ci_low"], row.val_summary["accuracy"]["ci_high"]
        assert lo <= row.val["accuracy"] <= hi
        for seed in (0, 1):
            d = run_dir / "compress" / row.name / f"seed-{seed}"
            state = torch.load(d / "model.pt", weights_only=True)  # plain state dict, plain load
            net = _model(run_dir, state)
            assert weight_sparsity(net)["zeros"] == zeros  # held through the fine-tuning
            packed = torch.load(d / "model.sparse.pt", weights_only=True)
            assert all(torch.equal(a, state[k]) for k, a in dense_state_dict(packed).items())
            meta = json.loads((d / "meta.json").read_text())
            assert (
                meta["kind"] == "unstructured" and meta["seed"] == seed and "load_state_dict" in meta["load"]
            )
    assert res.row("unstructured-0.9").sparse_size_bytes < res.row("unstructured-0.9").size_bytes
    for name in ("int8", "int8-weight-only"):
        q = res.row(name)
        assert q.linear_weight_bytes * 3 < dense.linear_weight_bytes
        assert abs(q.val["accuracy"] - dense.val["accuracy"]) <= 0.1
        assert any("int8" in n for n in q.notes)
    # Timings were measured for every row; the Pareto marks agree with the function.
    assert all(r.latency_ms > 0 and r.throughput > 0 for r in res.rows)
    points = [(r.val["accuracy"], r.latency_ms) for r in res.rows]
    assert [r.pareto for r in res.rows] == pareto_front(points) and any(r.pareto for r in res.rows)
    saved = json.loads((run_dir / "compress" / "result.json").read_text())
    assert [r["name"] for r in saved["rows"]] == [r.name for r in res.rows]
    assert saved["threads"] == 1 and saved["finetune_epochs"] == 3


def test_structured_rows_shrink_and_reload_as_modules(run_dir):
    res = compress_run(run_dir, sparsities=[0.5], structured=True, finetune_epochs=2, budget_s=0.1)
    dense, row = res.row("dense"), res.row("structured-0.5")
    # 32 -> 16 neurons in each hidden layer: 4·16 + 16 + 16·16 + 16 + 16·3 + 3 parameters.
    assert row.params == 4 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    assert row.flops == 2 * (4 * 16 + 16 * 16 + 16 * 3) < dense.flops
    assert row.size_bytes < dense.size_bytes and res.schedule == "channels"
    model = torch.load(run_dir / "compress" / "structured-0.5" / "seed-0" / "model.pt", weights_only=False)
    assert sum(p.numel() for p in model.parameters()) == row.params


def test_no_finetuning_evaluates_the_pruned_model_once(run_dir):
    res = compress_run(run_dir, sparsities=[0.8], finetune_epochs=0, seeds=3, schedule="oneshot", save=False)
    row = res.row("unstructured-0.8")
    assert row.seeds == [0]  # nothing random left to repeat
    assert row.weight_sparsity == pytest.approx(int(0.8 * N_WEIGHTS + 0.5) / N_WEIGHTS)


def test_user_errors_say_what_to_do(tmp_path, run_dir):
    with pytest.raises(TunelabError, match=r"no recipe\.yaml"):
        compress_run(tmp_path)
    with pytest.raises(TunelabError, match="--sparsity"):
        compress_run(run_dir, sparsities=[1.5])
    with pytest.raises(TunelabError, match="--seeds"):
        compress_run(run_dir, seeds=0)


def test_pareto_front_hand_made():
    pts = [(0.90, 1.0), (0.92, 1.0), (0.92, 0.8), (0.85, 0.2), (0.85, 0.3)]
    assert pareto_front(pts) == [False, False, True, True, False]
    # Minimized quality (a loss): lower is better.
    assert pareto_front([(0.1, 1.0), (0.2, 0.5), (0.3, 0.6)], mode="min") == [True, True, False]


def test_measure_interleaved_times_every_model():
    nets = {"a": torch.nn.Linear(8, 4), "b": torch.nn.Linear(8, 400)}
    r = measure_interleaved(nets, torch.zeros(1, 8), torch.zeros(256, 8), rounds=2, budget_s=0.05)
    assert set(r) == {"a", "b"}
    # Each round's p95 is at least its median, so the medians over rounds keep that order.
    assert all(0 < v["latency_ms"] <= v["latency_p95_ms"] and v["throughput"] > 0 for v in r.values())


def test_finetune_recipe_keeps_the_trained_weights_and_puts_prune_first(run_dir):
    from tunelab.study.compress import finetune_recipe

    recipe = load_recipe(run_dir / "recipe.yaml")
    assert recipe.model.init == "kaiming_normal"
    ft = finetune_recipe(recipe, 2, 5, 1, {"sparsity": 0.9, "schedule": "oneshot", "begin": 0.0})
    # fit(model=...) would re-initialize a kaiming_normal model: the fine-tuning recipe must not.
    assert ft.model.init == "default" and ft.model.pretrained is None
    assert [m.name for m in ft.methods] == ["prune", "early_stopping"]
    assert (ft.train.epochs, ft.train.seed, ft.train.threads, ft.train.efficiency) == (2, 5, 1, False)
    assert ft.optimizer == recipe.optimizer and ft.data == recipe.data


def test_finetune_recipe_leaves_out_the_runs_compression_and_tta():
    from tunelab.study.compress import finetune_recipe

    recipe = load_recipe(
        {
            "data": {"name": "digits"},
            "methods": ["label_smoothing", "channel_prune", "quantize", "tta"],
        }
    )
    # The model is compressed already; tta would evaluate (and time) 5 views of the pruned rows
    # against a dense row evaluated bare.
    ft = finetune_recipe(recipe, 2, 0, 1, {"sparsity": 0.5})
    assert [m.name for m in ft.methods] == ["prune", "label_smoothing"]
