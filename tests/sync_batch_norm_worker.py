"""One of 2 gloo processes for tests/test_sync_batch_norm.py: ``python sync_batch_norm_worker.py RANK
INIT_FILE``. Each process holds its shard (rank 0: samples 0-4, rank 1: samples 5-7, uneven on
purpose) of a batch that both draw alike; ``CPUSyncBatchNorm`` on the shards is checked against
``nn.BatchNorm*d`` on the whole batch: outputs, input and weight gradients, running statistics
and the batch counter, over 3 training steps and then in evaluation. A mismatch raises (exit 1).
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.distributed as dist
from torch import nn

from tunelab.sync_batch_norm import CPUSyncBatchNorm, convert

WORLD = 2
SHARDS = [(0, 5), (5, 8)]  # of a batch of 8
TOL = {"rtol": 1e-5, "atol": 2e-6}
CASES = [  # (BatchNorm class, per-sample shape, BatchNorm keywords)
    (nn.BatchNorm1d, (4,), {}),
    (nn.BatchNorm1d, (4, 6), {"momentum": None}),  # a cumulative average of the batch statistics
    (nn.BatchNorm2d, (3, 5, 5), {}),
    (nn.BatchNorm2d, (3, 4, 4), {"affine": False, "momentum": 0.3}),
    (nn.BatchNorm3d, (2, 3, 3, 3), {}),
    (nn.BatchNorm1d, (4, 6), {"track_running_stats": False}),  # batch statistics in evaluation too
]


def _close(name: str, mine: torch.Tensor, ref: torch.Tensor, **tol: float) -> None:
    if not torch.allclose(mine, ref, **(tol or TOL)):
        err = (mine.double() - ref.double()).abs().max().item()
        raise AssertionError(f"{name}: differs from BatchNorm on the whole batch by up to {err:.3g}")


def check(cls: type[nn.Module], shape: tuple[int, ...], kwargs: dict, rank: int) -> None:
    torch.manual_seed(0)  # the same layer and batches in both processes
    ref = cls(shape[0], **kwargs)
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    mine = convert(copy.deepcopy(ref))
    assert type(mine) is CPUSyncBatchNorm, type(mine)
    lo, hi = SHARDS[rank]
    label = f"{cls.__name__}{shape} {kwargs}"
    for step in range(3):
        x = (torch.randn(8, *shape) * 3 + 2).requires_grad_()  # a mean far from 0: the shift matters
        w = torch.randn(8, *shape)
        expected = ref(x)
        (expected * w).sum().backward()
        mine_x = x.detach()[lo:hi].clone().requires_grad_()
        out = mine(mine_x)
        (out * w[lo:hi]).sum().backward()  # this shard's part of the same loss
        _close(f"{label} step {step} output", out, expected.detach()[lo:hi])
        _close(f"{label} step {step} input gradient", mine_x.grad, x.grad[lo:hi])
        if ref.affine:
            for p_name in ("weight", "bias"):
                grad = getattr(mine, p_name).grad.clone()
                dist.all_reduce(grad)  # each process holds its shard's share; DDP sums (averages) them
                _close(f"{label} step {step} {p_name} gradient", grad, getattr(ref, p_name).grad)
                getattr(mine, p_name).grad = None
                getattr(ref, p_name).grad = None
        if ref.track_running_stats:
            _close(f"{label} step {step} running mean", mine.running_mean, ref.running_mean)
            _close(f"{label} step {step} running var", mine.running_var, ref.running_var)
            assert int(mine.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
    mine.eval(), ref.eval()
    x = torch.randn(8, *shape) * 3 + 2
    _close(f"{label} evaluation", mine(x[lo:hi]), ref(x[lo:hi]))


def check_bf16(rank: int) -> None:
    """Under bf16 autocast the statistics are float32: the running statistics match BatchNorm's on
    the same (bf16-rounded) values in float32, and the output is bf16."""
    torch.manual_seed(1)
    ref = nn.BatchNorm1d(4)
    mine = convert(copy.deepcopy(ref))
    x = (torch.randn(8, 4, 16) * 3 + 2).bfloat16()
    lo, hi = SHARDS[rank]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mine(x[lo:hi])
    assert out.dtype == torch.bfloat16, out.dtype
    expected = ref(x.float())
    _close("bf16 running mean", mine.running_mean, ref.running_mean)
    _close("bf16 running var", mine.running_var, ref.running_var)
    _close("bf16 output", out.float(), expected[lo:hi].detach(), rtol=1e-2, atol=1e-2)  # bf16 rounding


def main(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for cls, shape, kwargs in CASES:
            check(cls, shape, kwargs, rank)
        check_bf16(rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
