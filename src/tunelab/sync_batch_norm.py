"""Batch norm over the global batch of all DDP processes, on the CPU (gloo) as on any device.

Hand-written because PyTorch lacks it on the CPU: ``nn.SyncBatchNorm`` calls CUDA-only kernels
(``batch_norm_gather_stats_with_counts``), so on the CPU every process normalizes with its own
batch/N samples and 2 processes do not train the model 1 process trains. ``CPUSyncBatchNorm``
computes the statistics of the global batch with one autograd-aware all-reduce per layer and
forward (``_AllReduceSum``: its backward all-reduces the gradients of the sums, so each process's
input gradient is that of the global batch's loss, as ``nn.SyncBatchNorm``'s backward does):

    training, in a process group of N > 1:
        s, q, n = Σ(x − c), Σ(x − c)², count     per channel, over this process's samples (float32)
        S, Q, M = all_reduce_sum(s, q, n)        the global batch (autograd flows through)
        mean = c + S/M;  var = Q/M − (S/M)²      biased variance, as BatchNorm normalizes with
        y = (x − mean) / sqrt(var + eps) · weight + bias
        running stats ← BatchNorm's own update with mean and var · M/(M − 1) (unbiased)
    evaluation, or one process: ``F.batch_norm`` as ``nn.BatchNorm*d``

The shift ``c`` is the running mean (the same on every process): sums about a value near the mean
keep the one-pass variance from cancelling when the mean is large next to the spread. The
statistics are float32 under bf16/fp16 autocast (reduced-precision sums of squares lose the
variance); the output has the input's dtype. ``convert`` swaps a model's BatchNorm layers for it
in place, keeping their Parameter and buffer objects (an optimizer built before stays valid), as
``nn.SyncBatchNorm.convert_sync_batchnorm`` does.

>>> net = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.BatchNorm1d(4))
>>> weight = net[1].weight
>>> convert(net) is net, type(net[1]).__name__, net[1].weight is weight
(True, 'CPUSyncBatchNorm', True)
>>> torch.allclose(net.eval()(torch.ones(2, 1, 5)), net[0](torch.ones(2, 1, 5)) / (1 + 1e-5) ** 0.5)
True
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CPUSyncBatchNorm", "convert"]

# Statistics of these input dtypes are computed in float32 (autocast hands BN bf16 or fp16).
_LOW_PRECISION = (torch.bfloat16, torch.float16)


class _AllReduceSum(torch.autograd.Function):
    """The sum over the processes, differentiable: the backward sums the gradients likewise.

    Hand-written (12 lines) rather than ``torch.distributed.nn.functional.all_reduce``, which is the
    same Function but deprecated in torch 2.13 (a FutureWarning in every DDP run); its suggested
    replacement, ``torch.distributed._functional_collectives.all_reduce``, is private API (and
    tunelab supports torch >= 2.11, where it was not checked).
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """``nn.BatchNorm1d/2d/3d`` whose training-mode statistics are those of every process's batch.

    The state_dict is BatchNorm's (weight, bias, running_mean, running_var, num_batches_tracked), so
    checkpoints load into either. Outside a process group it is plain batch norm.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input [B, C, ...] (got {x.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        factor = self._momentum_now()
        # BatchNorm's rule: batch statistics in training, and in evaluation when it keeps none.
        batch_stats = self.training or self.running_mean is None
        if not (batch_stats and self.training and dist.is_available() and dist.is_initialized()):
            return F.batch_norm(
                x,
                self.running_mean if not self.training or self.track_running_stats else None,
                self.running_var if not self.training or self.track_running_stats else None,
                self.weight,
                self.bias,
                batch_stats,
                factor,
                self.eps,
            )
        return self._synced(x, factor)

    def _momentum_now(self) -> float:
        """The running statistics' update factor for this forward; counts the batch in training."""
        if not (self.training and self.track_running_stats) or self.num_batches_tracked is None:
            return 0.0 if self.momentum is None else self.momentum
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # a cumulative moving average
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _synced(self, x: Tensor, factor: float) -> Tensor:
        """Normalize with the global batch's statistics; update the running ones from them."""
        c = x.size(1)
        x32 = x.float() if x.dtype in _LOW_PRECISION else x
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)  # broadcasts a [C] vector over [B, C, *]
        shift = self.running_mean.detach().to(x32.dtype) if self.running_mean is not None else None
        centred = x32 - shift.view(shape) if shift is not None else x32
        count = torch.full((1,), x32.numel() // c, dtype=x32.dtype, device=x.device)
        local = torch.cat([centred.sum(dims), (centred * centred).sum(dims), count])  # [2C + 1]
        total = _AllReduceSum.apply(local)  # summed over the processes; the backward sums the gradients
        n = total[-1]
        m = float(n.detach())  # the global count (a CPU tensor: reading it costs no device sync)
        if m <= 1:  # what BatchNorm says, on every process alike (they see the same n)
            raise ValueError(
                f"expected more than 1 value per channel when training, got input size {x.size()}"
            )
        mean_shifted = total[:c] / n
        var = (total[c : 2 * c] / n - mean_shifted * mean_shifted).clamp_min(0)  # biased: what normalizes
        mean = mean_shifted + shift if shift is not None else mean_shifted
        invstd = torch.rsqrt(var + self.eps)
        scale = invstd * self.weight.to(x32.dtype) if self.weight is not None else invstd
        offset = -mean * scale
        if self.bias is not None:
            offset = offset + self.bias.to(x32.dtype)
        y = torch.addcmul(offset.view(shape), x32, scale.view(shape))  # x · scale + offset, one pass
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():  # BatchNorm's update: the unbiased variance goes into the running one
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype) * factor)
                unbiased = var.detach().to(self.running_var.dtype) * (m / (m - 1))
                self.running_var.mul_(1 - factor).add_(unbiased * factor)
        return y.to(x.dtype)


def convert(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm*d`` in ``module`` by a ``CPUSyncBatchNorm`` holding the same
    Parameter and buffer objects; the module itself is returned (a new layer when it is a BatchNorm).
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, (CPUSyncBatchNorm, nn.SyncBatchNorm)
    ):
        synced = CPUSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        # The same objects, not copies: an optimizer built before still holds them.
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        if module.track_running_stats:
            synced.running_mean, synced.running_var = module.running_mean, module.running_var
            synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        new = convert(child)
        if new is not child:
            setattr(module, name, new)
    return module
