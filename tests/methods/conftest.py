"""Shared helpers of the method tests: a TrainState built by hand and a miniature loop.

``mini_fit`` follows the pseudocode of ``tunelab.methods._base`` event by event, so a method can be
exercised without the real loop (``tunelab.train``), data or model registries.
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
from tunelab.recipe import Recipe


def make_state(
    model: nn.Module,
    *,
    task: str = "classification",
    monitor: str = "val.accuracy",
    mode: str = "max",
    steps_per_epoch: int = 1,
    lr: float = 0.1,
) -> TrainState:
    """A TrainState around ``model`` with simple stand-ins for what the methods do not read."""
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
    """The loop of ``_base``'s pseudocode, on fixed batches; the val record has loss and accuracy."""
    for hook in hooks_of(methods, "setup"):
        hook(state)
    for epoch in range(epochs):
        state.epoch = epoch
        for hook in hooks_of(methods, "epoch_start"):
            hook(state)
        state.model.train()
        for x, y in batches:
            for hook in hooks_of(methods, "batch"):
                x, y = hook(state, x, y)
            out = state.model(x)
            loss = state.criterion(out, y)
            for hook in hooks_of(methods, "loss"):
                loss = hook(state, loss, out, y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for hook in hooks_of(methods, "after_backward"):
                hook(state)
            state.optimizer.step()
            state.step += 1
            for hook in hooks_of(methods, "after_step"):
                hook(state)
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
                "train": {"loss": float(loss.detach())},
                "val": {
                    "loss": float(F.cross_entropy(out, val[1])),
                    "accuracy": float((out.argmax(1) == val[1]).float().mean()),
                },
                "lr": state.optimizer.param_groups[0]["lr"],
            }
        )
        for hook in hooks_of(methods, "epoch_end"):
            hook(state)
        if state.stop:
            break
    for hook in hooks_of(methods, "fit_end"):
        hook(state)
    return state


@pytest.fixture
def state_factory() -> Callable[..., TrainState]:
    return make_state


@pytest.fixture
def fit() -> Callable[..., Any]:
    return mini_fit


@pytest.fixture(autouse=True)
def _one_thread():
    # These tensors are tiny: intra-op threads bring no speed, only stalls when the machine is
    # busy (3x slower here under load). Restored after each test, so nothing leaks elsewhere.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
