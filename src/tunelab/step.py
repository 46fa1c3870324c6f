"""One training step, shared by ``fit``, ``lr_find`` and the method tests' miniature loop.

A step is one optimizer update over ``train.grad_accum`` = K micro-batches::

    zero the gradients
    for each micro-batch (x, y) of the step:          DDP: all but the last inside no_sync()
        x, y = batch(state, x, y)                      every micro-batch
        with autocast(precision): out = model(x); loss = criterion(out, y)
        loss = loss(state, loss, out, y)               every micro-batch
        backward(scale(loss * n_i / N))                n_i / N: its share of the step's samples
    unscale the gradients                              fp16: true values for the hooks
    after_backward(state)                              once per step (gradient clipping)
    scaler.step(optimizer); scaler.update()            fp16: skipped when a gradient overflowed
    schedule.step_batch(); state.step += 1
    DDP: average the buffers over the processes        batch norm's running statistics
    after_step(state)                                  once per step (EMA, pruning masks)

Micro-batch i of n_i samples in a step of N samples is weighted n_i / N. The criterion is a mean
over its micro-batch, so the accumulated gradient is that of the mean over all N samples: K
micro-batches of B give the update of one batch of K*B (up to float rounding; batch norm, whose
statistics are per micro-batch, and random draws of dropout or augmentation differ). The last step
of an epoch may hold fewer or shorter micro-batches: the weights follow its real counts, so it
equals the shorter last batch of a K*B run. A penalty a ``loss`` hook adds (L2) is added to every
micro-batch's loss; the weights sum to 1, so it counts once per step.

One code path serves every precision: the autocast context is a no-op in fp32, and
``GradScaler(enabled=...)`` is one in fp32 and bf16 (which keeps fp32's range).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from tunelab.methods import Method, TrainState, hooks_of

__all__ = ["AMP_DTYPES", "TrainStep", "step_groups"]

# train.precision -> the autocast dtype; fp32 has none (autocast disabled).
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def step_groups(
    n: int, batch_size: int, grad_accum: int = 1, min_last: int = 2
) -> list[list[tuple[int, int]]]:
    """The [lo, hi) ranges of the micro-batches of each optimizer step of an epoch of ``n`` samples.

    Micro-batches of ``batch_size`` (the last takes the remainder) in groups of ``grad_accum``;
    the last group may be shorter. A final micro-batch of fewer than ``min_last`` samples is folded
    into the previous one: a single sample breaks batch norm in training mode (under DDP, where N
    processes share each micro-batch, ``min_last`` is 2N).

    >>> step_groups(10, 3)
    [[(0, 3)], [(3, 6)], [(6, 10)]]
    >>> step_groups(11, 3, grad_accum=2)
    [[(0, 3), (3, 6)], [(6, 9), (9, 11)]]
    """
    micro = n // batch_size if 0 < n % batch_size < min_last else -(-n // batch_size)
    micro = max(1, micro)
    bounds = [(i * batch_size, min(n, (i + 1) * batch_size)) for i in range(micro)]
    bounds[-1] = (bounds[-1][0], n)
    return [bounds[i : i + grad_accum] for i in range(0, micro, grad_accum)]


class TrainStep:
    """The training step (see the module docstring), built once per run.

    The methods' hooks are resolved here, once (``hooks_of``), and the per-batch schedule is taken
    from ``state.schedule`` as it is now: build the step after ``setup`` and after any change of
    the schedule. Calling it with a step's micro-batches ``[(x, y), ...]`` trains one optimizer
    step and returns the step's loss (the weighted mean over its micro-batches, after the ``loss``
    hooks), detached and still on the device: reading it is the caller's choice of a host sync.

    >>> from tunelab.optim import Schedule
    >>> from tunelab.recipe import Recipe
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> sched = Schedule(opt, torch.optim.lr_scheduler.ConstantLR(opt, 1.0, 0), per_batch=False)
    >>> state = TrainState(Recipe(), None, net, opt, sched, torch.nn.functional.mse_loss,
    ...                    torch.device("cpu"), "val.loss", "min", steps_per_epoch=1)
    >>> step = TrainStep(state, methods=[])
    >>> x, y = torch.ones(4, 2), torch.zeros(4, 1)
    >>> loss = step([(x[:2], y[:2]), (x[2:], y[2:])])  # one optimizer step on two micro-batches
    >>> state.step, loss.shape
    (1, torch.Size([]))
    """

    def __init__(self, state: TrainState, methods: Sequence[Method]) -> None:
        methods = list(methods)
        t = state.recipe.train
        self.state = state
        self.batch_hooks = hooks_of(methods, "batch")
        self.loss_hooks = hooks_of(methods, "loss")
        self.after_backward = hooks_of(methods, "after_backward")
        self.after_step = hooks_of(methods, "after_step")
        amp_dtype = AMP_DTYPES.get(t.precision)
        # One context object, entered once per micro-batch (autocast saves and restores the
        # previous state on each entry, so sequential reuse is safe): no construction per batch.
        # fp32 enters a nullcontext rather than autocast(enabled=False): on the CPU a disabled
        # autocast still cost ~10 us per entry (measured: 3% of a 0.4 ms step of a small MLP).
        self.autocast: AbstractContextManager[Any] = (
            torch.autocast(state.device.type, dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        )
        # fp16 needs loss scaling so small gradients do not flush to zero.
        self.scaler = torch.amp.GradScaler(state.device.type, enabled=t.precision == "fp16")
        schedule = state.schedule
        self.step_batch: Callable[[], None] | None = schedule.step_batch if schedule.per_batch else None
        # The seam for DDP: a DistributedDataParallel model must not all-reduce the gradients of a
        # step's micro-batches before the last one; the DDP setup sets this to ``model.no_sync``.
        self.no_sync: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext
        # Under DDP: the DistributedDataParallel wrapper the forward goes through (None: state.model)
        # and the number of processes, whose mean gradient DDP computes.
        self.net: torch.nn.Module | None = None
        self.world = 1
        # Under DDP: makes the model's buffers (batch norm's running statistics) the same on every
        # process after each step, before after_step hooks read them (EMA averages them).
        self.sync_buffers: Callable[[], None] | None = None

    def __call__(self, micro_batches: Sequence[tuple[Tensor, Tensor]], samples: int | None = None) -> Tensor:
        """Train one optimizer step on ``micro_batches``; return its loss (detached, on device).

        ``samples``: under DDP, the step's samples over all processes. Each micro-batch is then
        weighted by ``n_i * world / samples``: DDP averages the gradients over the ``world``
        processes, so the update is that of the mean over all the step's samples, even when they
        do not split evenly.
        """
        state, scaler, optimizer = self.state, self.scaler, self.state.optimizer
        last = len(micro_batches) - 1
        if last < 0:
            raise ValueError("a training step needs at least one micro-batch")
        # The common case, one micro-batch, is weighted by nothing: not even a multiply by 1.
        sizes = [len(x) for x, _ in micro_batches] if last or samples is not None else None
        total_n = samples / self.world if samples is not None else sum(sizes) if sizes else 1
        optimizer.zero_grad(set_to_none=True)
        step_loss: Tensor | None = None
        for i, (x, y) in enumerate(micro_batches):
            weight = sizes[i] / total_n if sizes is not None else None
            if i < last:
                # DDP reads its sync flag in the forward pass: forward and backward both go inside.
                with self.no_sync():
                    loss = self._forward_backward(x, y, weight)
            else:
                loss = self._forward_backward(x, y, weight)
            step_loss = loss if step_loss is None else step_loss + loss
        scaler.unscale_(optimizer)  # clipping and other hooks see the true gradients
        for hook in self.after_backward:
            hook(state)
        scaler.step(optimizer)  # skipped when a gradient overflowed; the scale then drops
        scaler.update()
        if self.step_batch is not None:
            self.step_batch()
        state.step += 1
        if self.sync_buffers is not None:
            self.sync_buffers()
        for hook in self.after_step:
            hook(state)
        return step_loss  # type: ignore[return-value]  # set by the first micro-batch

    def _forward_backward(self, x: Tensor, y: Tensor, weight: float | None) -> Tensor:
        """One micro-batch: its hooks, forward, loss and backward; its weighted loss, detached."""
        state = self.state
        for hook in self.batch_hooks:
            x, y = hook(state, x, y)
        with self.autocast:
            out = (self.net if self.net is not None else state.model)(x)
            loss = state.criterion(out, y)
        for hook in self.loss_hooks:
            loss = hook(state, loss, out, y)
        if weight is not None:
            loss = loss * weight
        self.scaler.scale(loss).backward()
        return loss.detach()
