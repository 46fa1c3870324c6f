"""Shared helpers of the method tests: a TrainState built by hand and a miniature loop.

``mini_fit`` follows the pseudocode of ``tunelab.methods._base`` event by event on fixed batches, so
a method can be exercised without the real loop (``tunelab.train``), data or model registries. Its
training step is the loop's own, ``tunelab.step.TrainStep`` (precision, loss scaling, gradient
accumulation and per-batch schedule from ``state.recipe``), and its best epoch follows the loop's
rule (``BestEpoch``, with ``comparable_since``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.methods import Method, TrainState, hooks_of
from tunelab.methods.early_stopping import BestEpoch
from tunelab.optim import build_schedule
from tunelab.recipe import Recipe
from tunelab.step import TrainStep


def make_state(
    model: nn.Module,
    *,
    task: str = "classification",
    monitor: str = "val.accuracy",
    mode: str = "max",
    steps_per_epoch: int = 1,
    lr: float = 0.1,
) -> TrainState:
    """A TrainState around ``model`` with simple stand-ins for what the methods do not read.

    The schedule is left to ``mini_fit``, which builds ``state.recipe``'s for the optimizer the
    state has then (a test may replace the optimizer or the recipe first).
    """
    return TrainState(
        recipe=Recipe(),
        data=SimpleNamespace(task=task),  # type: ignore[arg-type]
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        schedule=None,  # type: ignore[arg-type]
        criterion=F.cross_entropy,
        device=torch.device("cpu"),
        monitor=monitor,
        mode=mode,
        steps_per_epoch=steps_per_epoch,
    )


def mini_fit(
    state: TrainState,
    methods: list[Method],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    epochs: int,
    val: tuple[torch.Tensor, torch.Tensor],
) -> TrainState:
    """The loop of ``_base``'s pseudocode on fixed batches (``train.grad_accum`` consecutive
    batches per optimizer step); the val record has loss and accuracy, ``state.info["best"]``
    the best epoch and value of the monitor."""
    k = state.recipe.train.grad_accum
    groups = [batches[i : i + k] for i in range(0, len(batches), k)]
    state.steps_per_epoch = len(groups)
    if state.schedule is None:  # built before setup, as tunelab.train.prepare does
        state.schedule = build_schedule(
            state.optimizer, state.recipe.schedule, epochs, len(groups), state.mode
        )
    for hook in hooks_of(methods, "setup"):
        hook(state)
    train_step = TrainStep(state, methods)
    best = BestEpoch(state.mode)  # type: ignore[arg-type]
    for epoch in range(epochs):
        state.epoch = epoch
        for hook in hooks_of(methods, "epoch_start"):
            hook(state)
        state.model.train()
        total, count = torch.zeros(()), 0
        for group in groups:
            n = sum(len(x) for x, _ in group)
            total += train_step(group) * n
            count += n
        net = state.model
        for hook in hooks_of(methods, "eval_model"):
            net = hook(state, net)
        state.eval_net = net
        with torch.no_grad():
            net.eval()
            out = net(val[0])
            net.train()
        state.history.append(
            {
                "epoch": epoch + 1,
                "train": {"loss": float(total) / count},
                "val": {
                    "loss": float(F.cross_entropy(out, val[1])),
                    "accuracy": float((out.argmax(1) == val[1]).float().mean()),
                },
                "lr": state.optimizer.param_groups[0]["lr"],
            }
        )
        best.forget_before(state.comparable_since)
        best.update(state.last(), epoch + 1)
        state.schedule.step_epoch(state.last())
        for hook in hooks_of(methods, "epoch_end"):
            hook(state)
        if state.stop:
            break
    for hook in hooks_of(methods, "fit_end"):
        hook(state)
    state.info["best"] = {"epoch": best.best_epoch, "value": best.best}
    return state


@pytest.fixture
def state_factory() -> Callable[..., TrainState]:
    return make_state


@pytest.fixture
def fit() -> Callable[..., Any]:
    return mini_fit


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""
