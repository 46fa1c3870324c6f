"""What tests/test_distributed.py runs under torchrun (2 gloo processes): ``python -m
torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py MODE OUT.json [TEXT.csv]``.

MODE ``methods``: one tiny fit per registered method in one process group (joined here once, so
``fit`` uses it as it is); rank 0 writes, per method, whether every rank ended with the same
trained and evaluated weights, or the refusal. MODE ``error``: rank 1 raises in epoch 2; the
test checks that rank 0 does not hang.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import torch
import torch.distributed as dist

from tunelab import distributed
from tunelab.errors import RecipeError
from tunelab.methods import METHODS, Method
from tunelab.train import fit

SMALL_CNN2D = {"name": "cnn2d", "channels": [4], "hidden": [8]}
SMALL_CNN1D = {"name": "cnn1d", "channels": [4], "hidden": [8]}
# Data of the kind each method needs; the others train an MLP with batch norm and dropout on iris.
DATA = {
    "image_augment": ({"name": "digits", "train_fraction": 0.2}, SMALL_CNN2D),
    "tta": ({"name": "digits", "train_fraction": 0.2}, SMALL_CNN2D),
    "cutmix": ({"name": "digits", "train_fraction": 0.2}, SMALL_CNN2D),
    "signal_augment": ({"name": "mnist1d", "train_fraction": 0.05}, SMALL_CNN1D),
}
PARAMS = {
    "text_augment": {"synonyms": "vocabulary", "crop": 0.1},
    "early_stopping": {"patience": 1},
    "prune": {"begin": 0.0, "end": 0.75, "cycles": 2},
    "channel_prune": {"at": 0.5},
}


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            if type(value) is not torch.Tensor:  # an int8 tensor subclass (quantize): its float values
                value = value.dequantize()
            h.update(value.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


class Digests(Method):
    """Records, at the end, a digest of the trained model and of the evaluated one."""

    def fit_end(self, state: Any) -> None:
        self.model = digest(state.model)
        self.eval = digest(state.eval_net if state.eval_net is not None else state.model)


TEXT_CSV = ""  # a tiny generated corpus (tests/conftest.py's text_csv), for text_augment


def recipe_for(name: str) -> dict[str, Any]:
    data, model = DATA.get(name, ({"name": "iris"}, {"name": "mlp", "hidden": [8], "dropout": 0.1}))
    recipe = {
        "data": data,
        "model": {**model, "batch_norm": True},
        "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "efficiency": False},
        "methods": [{"name": name, **PARAMS.get(name, {})}],
    }
    if name == "text_augment":  # token ids, as the contract test of tests/methods trains them
        recipe["data"] = {"name": "text_csv", "path": TEXT_CSV}
        recipe["preprocess"] = {"max_length": 24}
        recipe["model"] = {"name": "embedding_bag", "embed_dim": 8}
    return recipe


def count_all_reduces() -> dict[str, int]:
    """A fit with grad_accum 2, counting DDP's gradient all-reduces (one per step with no_sync)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    calls: list[int] = []
    original = distributed.wrap_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        net = original(*args, **kwargs)
        net.register_comm_hook(None, lambda group, bucket: calls.append(1) or allreduce_hook(group, bucket))
        return net

    distributed.wrap_model = counting
    try:
        recipe = recipe_for("l2") | {
            "train": {"epochs": 1, "batch_size": 16, "grad_accum": 2, "device": "cpu"}
        }
        r = fit(recipe, save=False, evaluate_test=False)
    finally:
        distributed.wrap_model = original
    return {"all_reduces": len(calls), "steps": r.history[-1]["steps"]}


def run_methods() -> dict[str, Any]:
    results: dict[str, Any] = {"no_sync": count_all_reduces()}
    for name in METHODS.names():
        digests = Digests()
        try:
            r = fit(recipe_for(name), save=False, methods=[digests], evaluate_test=False)
        except RecipeError as e:
            results[name] = {"refused": str(e)}
            continue
        mine = {
            "model": digests.model,
            "eval": digests.eval,
            "val": r.val.get("accuracy"),
            "status": r.status,
        }
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, mine)
        results[name] = {"ranks": every}
    results["sync_batch_norm"] = synced_batch_norm()
    results["random_streams"] = random_streams()
    return results


def synced_batch_norm() -> dict[str, Any]:
    """A fit with ``train.sync_batch_norm`` on the CPU (tunelab's CPUSyncBatchNorm): both ranks end
    with the same weights and running statistics (which BufferSync no longer averages)."""
    digests = Digests()
    recipe = {
        **recipe_for("l2"),
        "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "sync_batch_norm": True},
    }
    r = fit(recipe, save=False, methods=[digests], evaluate_test=False)
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, {"model": digests.model, "eval": digests.eval, "status": r.status})
    return {"ranks": every}


class Draws(Method):
    """Records the model at setup (initialized alike on every rank) and a draw of torch's global
    generator at the first batch (each rank's own stream, distributed.seed_rank)."""

    def setup(self, state: Any) -> None:
        self.init = digest(state.model)

    def batch(self, state: Any, x: Any, y: Any) -> tuple[Any, Any]:
        if not hasattr(self, "draw"):
            self.draw = torch.rand(4).tolist()
        return x, y


def random_streams() -> dict[str, Any]:
    draws = Draws()
    fit({**recipe_for("l2"), "train": {"epochs": 1, "device": "cpu"}}, save=False, methods=[draws])
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, {"init": draws.init, "draw": draws.draw})
    return {"ranks": every}


class FailOnRank1(Method):
    def epoch_start(self, state: Any) -> None:
        if state.epoch == 1 and dist.get_rank() == 1:
            raise RuntimeError("rank 1 fails on purpose")


def main(mode: str, out: str, text_csv: str = "") -> None:
    global TEXT_CSV
    TEXT_CSV = text_csv
    if mode == "error":
        fit(recipe_for("l2") | {"train": {"epochs": 3, "device": "cpu"}}, save=False, methods=[FailOnRank1()])
        return
    # fit's own way in and out of the group (its teardown waits for gloo: tunelab.distributed).
    # With a bare barrier + destroy_process_group here, 1 of 13 launches aborted at exit ("terminate
    # called without an active exception") after writing its results; 0 of 12 through session.
    with distributed.session("cpu"):
        results = run_methods()
        if dist.get_rank() == 0:
            with open(out, "w") as f:
                json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
