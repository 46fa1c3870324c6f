"""The one training step: micro-batch grouping, accumulation, precision and loss scaling."""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import ConstantLR, LambdaLR

from tunelab.methods import Method, TrainState
from tunelab.optim import Schedule
from tunelab.recipe import load_recipe
from tunelab.step import TrainStep, step_groups


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


def _state(model: nn.Module, *overrides: str, lr: float = 0.1, per_batch: bool = False) -> TrainState:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    if per_batch:  # halves the lr at every scheduler step: the count of steps is visible in the lr
        schedule = Schedule(opt, LambdaLR(opt, lambda k: 0.5**k), per_batch=True)
    else:
        schedule = Schedule(opt, ConstantLR(opt, factor=1.0, total_iters=0), per_batch=False)
    return TrainState(
        recipe=load_recipe({}, list(overrides)),
        data=None,  # type: ignore[arg-type]  # the step never reads the data
        model=model,
        optimizer=opt,
        schedule=schedule,
        criterion=F.cross_entropy,
        device=torch.device("cpu"),
        monitor="val.loss",
        mode="min",
        steps_per_epoch=1,
    )


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def _data(n: int = 36) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()


class Counter(Method):
    """Counts the per-micro-batch and per-step hooks and records what the step hands them."""

    def __init__(self) -> None:
        self.calls = {"batch": 0, "loss": 0, "after_backward": 0, "after_step": 0}
        self.out_dtypes: list[torch.dtype] = []
        self.grads: list[torch.Tensor] = []

    def batch(self, state, x, y):
        self.calls["batch"] += 1
        return x, y

    def loss(self, state, loss, out, y):
        self.calls["loss"] += 1
        self.out_dtypes.append(out.dtype)
        return loss

    def after_backward(self, state):
        self.calls["after_backward"] += 1
        self.grads = [p.grad.clone() for p in state.model.parameters()]

    def after_step(self, state):
        self.calls["after_step"] += 1


def test_step_groups_cover_the_epoch_in_order_and_fold_a_single_sample():
    for n in range(1, 60):
        for batch_size in (1, 2, 5, 16):
            for k in (1, 2, 3):
                groups = step_groups(n, batch_size, k)
                flat = [b for g in groups for b in g]
                assert flat[0][0] == 0 and flat[-1][1] == n
                assert all(a[1] == b[0] for a, b in itertools.pairwise(flat))  # contiguous
                assert all(1 <= len(g) <= k for g in groups) and all(len(g) == k for g in groups[:-1])
                assert all(hi - lo > 1 for lo, hi in flat) or n == 1 or batch_size == 1
    assert step_groups(100, 16, 4)[-1] == [(64, 80), (80, 96), (96, 100)]  # the shorter last step


@pytest.mark.parametrize("sizes", [[12, 12, 12], [16, 16, 4]])
def test_k_micro_batches_give_the_update_of_one_batch_of_their_samples(sizes):
    x, y = _data(sum(sizes))
    whole, split = _net(), _net()
    one = TrainStep(_state(whole), [])
    accumulated = TrainStep(_state(split, f"train.grad_accum={len(sizes)}"), [])
    loss_one = one([(x, y)])
    bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
    micro = [(x[lo:hi], y[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
    loss_acc = accumulated(micro)
    # The uneven case is weighted by sample counts: an unweighted mean of the three micro-batch
    # losses would differ from the mean over all samples.
    assert float(loss_acc) == pytest.approx(float(loss_one), rel=1e-6)
    for a, b in zip(whole.parameters(), split.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(_net().state_dict()["0.weight"], whole.state_dict()["0.weight"])


def test_micro_batch_hooks_run_per_micro_batch_and_step_hooks_once_per_step():
    x, y = _data(30)
    counter = Counter()
    state = _state(_net(), "train.grad_accum=3", per_batch=True)
    step = TrainStep(state, [counter])
    for lo in (0, 15):
        step([(x[i : i + 5], y[i : i + 5]) for i in range(lo, lo + 15, 5)])
    assert counter.calls == {"batch": 6, "loss": 6, "after_backward": 2, "after_step": 2}
    assert state.step == 2
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)  # two schedule steps


def test_the_ddp_seam_holds_back_every_micro_batch_but_the_last():
    # DDP reads its sync flag in the forward pass: the whole micro-batch must run inside no_sync.
    x, y = _data(30)
    inside = [False]
    seen = []

    @contextlib.contextmanager
    def no_sync():
        inside[0] = True
        yield
        inside[0] = False

    class Where(Method):
        def batch(self, state, x, y):
            seen.append(("batch", inside[0]))
            return x, y

        def loss(self, state, loss, out, y):
            seen.append(("loss", inside[0]))
            return loss

    step = TrainStep(_state(_net()), [Where()])
    step.no_sync = no_sync
    step([(x[i : i + 10], y[i : i + 10]) for i in (0, 10, 20)])
    assert seen == [("batch", True), ("loss", True)] * 2 + [("batch", False), ("loss", False)]
    seen.clear()
    step([(x, y)])
    assert seen == [("batch", False), ("loss", False)]  # one micro-batch: nothing to hold back


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_forward_runs_in_the_recipes_precision(precision, dtype):
    x, y = _data()
    counter = Counter()
    TrainStep(_state(_net(), f"train.precision={precision}"), [counter])([(x, y)])
    assert counter.out_dtypes == [dtype]


class Tiny(Method):
    """Shrinks the loss so far that its gradients fall below float16's smallest subnormal."""

    def loss(self, state, loss, out, y):
        return loss * 1e-7


def test_fp16_scales_the_loss_so_tiny_gradients_survive_and_hooks_see_true_values():
    x, y = _data()
    counter = Counter()
    step = TrainStep(_state(_net(), "train.precision=fp16"), [Tiny(), counter])
    step([(x, y)])
    assert counter.out_dtypes == [torch.float16] and step.scaler.is_enabled()
    # The reference: the same step in fp32.
    reference = Counter()
    TrainStep(_state(_net()), [Tiny(), reference])([(x, y)])
    for got, want in zip(counter.grads, reference.grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0.05, atol=1e-11)  # unscaled: fp32's size
    # The control: fp16 without scaling flushes these gradients to zero.
    net = _net()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.cross_entropy(net(x), y) * 1e-7
    loss.backward()
    assert float(net[0].weight.grad.abs().max()) == 0.0 < float(counter.grads[0].abs().max())


class Explode(Method):
    def loss(self, state, loss, out, y):
        return loss * float("inf")


def test_fp16_skips_the_step_when_a_gradient_overflows():
    x, y = _data()
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    state = _state(net, "train.precision=fp16")
    step = TrainStep(state, [Explode()])
    scale = step.scaler.get_scale()
    step([(x, y)])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert step.scaler.get_scale() < scale and state.step == 1


def test_an_empty_step_is_refused():
    with pytest.raises(ValueError, match="at least one micro-batch"):
        TrainStep(_state(_net()), [])([])
