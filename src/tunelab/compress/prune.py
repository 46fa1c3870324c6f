"""Unstructured magnitude pruning: pure functions on lists of weight tensors.

``magnitude_masks`` decides which weights survive (exactly ``round(sparsity · N)`` zeros, globally
or per layer), ``apply_masks_`` zeroes the others, ``sparsity_schedule`` is the gradual schedule of
Zhu & Gupta (2017), and ``weight_sparsity`` measures the result. The ``prune`` method
(``tunelab.methods.pruning``) hooks them into the training loop; ``prune_magnitude_`` is the
one-shot version for a trained model.

Why masks live outside the model (and not ``torch.nn.utils.prune``): that module swaps each
``weight`` for a ``weight_orig`` parameter plus a ``weight_mask`` buffer and recomputes
``weight = weight_orig * mask`` in a forward pre-hook. Every checkpoint written while training
(``best.pt`` of each improving epoch) would then hold ``weight_orig``/``weight_mask`` keys that do
not load into the plain architecture, ``prune.remove`` creates new parameter objects that the
optimizer (built before the methods' setup) does not hold, and each forward pays the extra
multiply. Keeping the masks beside the model and re-applying them after each optimizer step gives
the same forward pass with a model whose ``state_dict`` never changes shape or keys.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from tunelab.errors import ModelError, TunelabError
from tunelab.metrics.efficiency import count_parameters, dense_values

__all__ = [
    "PRUNABLE",
    "apply_masks_",
    "count_nonzero_params",
    "dense_state_dict",
    "dense_values",
    "magnitude_masks",
    "prunable_weights",
    "prune_magnitude_",
    "sparse_state_dict",
    "sparsity_schedule",
    "weight_sparsity",
]

Scope = Literal["global", "layerwise"]
Schedule = Literal["oneshot", "linear", "cubic"]

# The layers whose weight matrices / kernels are pruned. Biases and normalization parameters are
# a tiny share of any model and shift activations rather than mix them: pruning them saves
# nothing and costs accuracy, as in Zhu & Gupta (2017) and the lottery-ticket papers.
PRUNABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, weight)`` of every Linear and Conv layer of ``model``, each parameter once.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [name for name, _ in prunable_weights(net)]
    ['0.weight', '2.weight']
    """
    out, seen = [], set()
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if isinstance(module, PRUNABLE) and isinstance(w, nn.Parameter) and id(w) not in seen:
            seen.add(id(w))
            out.append((f"{name}.weight" if name else "weight", w))
    return out


def _count(fraction: float, n: int) -> int:
    # Round half up: Python's round() rounds half to even, which would make 0.5 of 5 weights 2.
    return min(n, math.floor(fraction * n + 0.5))


def _check_sparsity(sparsity: float) -> None:
    if not (isinstance(sparsity, (int, float)) and 0.0 <= sparsity < 1.0):
        raise TunelabError(
            f"sparsity must be in [0, 1) (the fraction of weights set to zero); got {sparsity!r}"
        )


@torch.no_grad()
def magnitude_masks(
    weights: Sequence[Tensor],
    sparsity: float,
    scope: Scope = "global",
    previous: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """Boolean keep-masks that zero the smallest-magnitude weights: exactly ``round(s·N)`` of them.

    ``scope="global"`` ranks all weights together (N = all entries; layers with more redundancy
    lose more); ``"layerwise"`` removes ``round(s·n)`` from each tensor of n entries. Ties are
    broken by position (a stable sort), so the count is exact and the result deterministic.
    Weights pruned in ``previous`` masks rank below every surviving weight, so a schedule of
    growing sparsity never revives a pruned weight (even one that is now exactly zero).

    >>> w = [torch.tensor([[0.1, -3.0], [0.2, 0.0]]), torch.tensor([5.0, -0.05, 1.0])]
    >>> [m.tolist() for m in magnitude_masks(w, 0.5, "global")]  # 4 of 7 weights: round(3.5)
    [[[False, True], [False, False]], [True, False, True]]
    >>> [int((~m).sum()) for m in magnitude_masks(w, 0.5, "layerwise")]  # round(2.0), round(1.5)
    [2, 2]
    """
    _check_sparsity(sparsity)
    if scope not in ("global", "layerwise"):
        raise TunelabError(f"scope must be 'global' or 'layerwise'; got {scope!r}")
    weights = list(weights)
    if not weights:
        raise ModelError("no weights to prune: pass at least one tensor")
    scores = [w.detach().abs().flatten().float() for w in weights]
    if previous is not None:
        if len(previous) != len(weights):
            raise TunelabError(f"previous has {len(previous)} masks for {len(weights)} weights")
        # -1 is below any magnitude: already pruned weights are chosen first.
        scores = [torch.where(m.flatten().bool(), s, -1.0) for s, m in zip(scores, previous, strict=True)]

    def keep(score: Tensor) -> Tensor:  # [n] -> [n] bool, exactly round(s·n) False
        k = _count(sparsity, score.numel())
        mask = torch.ones_like(score, dtype=torch.bool)
        mask[torch.argsort(score, stable=True)[:k]] = False
        return mask

    if scope == "global":
        flat = keep(torch.cat(scores))
        masks = list(flat.split([s.numel() for s in scores]))
    else:
        masks = [keep(s) for s in scores]
    return [m.view(w.shape).to(w.device) for m, w in zip(masks, weights, strict=True)]


@torch.no_grad()
def apply_masks_(weights: Sequence[Tensor], masks: Sequence[Tensor]) -> None:
    """In place, ``w ← w · mask`` for each pair (masks are bool or 0/1 of any float dtype).

    >>> w = [torch.tensor([1.0, 2.0, 3.0])]
    >>> apply_masks_(w, [torch.tensor([True, False, True])]); w[0]
    tensor([1., 0., 3.])
    """
    weights, masks = list(weights), list(masks)
    if len(weights) != len(masks):
        raise TunelabError(f"{len(weights)} weights but {len(masks)} masks")
    if not weights:
        return
    same = all(m.dtype == w.dtype for w, m in zip(weights, masks, strict=True))
    if same:
        torch._foreach_mul_(weights, masks)  # one fused call: this runs after every optimizer step
    else:
        for w, m in zip(weights, masks, strict=True):
            w.mul_(m.to(w.dtype))


def sparsity_schedule(progress: float, final: float, kind: Schedule = "cubic", initial: float = 0.0) -> float:
    """Sparsity at ``progress`` ∈ [0, 1] of the pruning phase.

    ``cubic`` is Zhu & Gupta's gradual schedule ``s_f + (s_i − s_f)·(1 − progress)³``: it prunes
    fast while many redundant weights remain and slowly near the end, where each weight counts.
    ``linear`` interpolates; ``oneshot`` is ``final`` at once.

    >>> [round(sparsity_schedule(p, 0.8), 4) for p in (0.0, 0.25, 0.5, 1.0)]
    [0.0, 0.4625, 0.7, 0.8]
    >>> sparsity_schedule(0.5, 0.8, "linear"), sparsity_schedule(0.1, 0.8, "oneshot")
    (0.4, 0.8)
    """
    p = min(1.0, max(0.0, float(progress)))
    if kind == "cubic":
        return final + (initial - final) * (1.0 - p) ** 3
    if kind == "linear":
        return initial + (final - initial) * p
    if kind == "oneshot":
        return final
    raise TunelabError(f"schedule must be oneshot, linear or cubic; got {kind!r}")


def count_nonzero_params(model: nn.Module) -> dict[str, int]:
    """``params`` and ``nonzero`` entries of ``model``'s parameters (shared ones once), quantized too.

    >>> count_nonzero_params(nn.Linear(3, 2, bias=False))["params"]
    6
    """
    counts = count_parameters(model)
    return {"params": counts["params"], "nonzero": counts["nonzero"]}


def weight_sparsity(model: nn.Module) -> dict[str, Any]:
    """Zeros among the prunable weights (Linear and Conv): ``weights``, ``zeros``, ``sparsity``.

    >>> net = nn.Linear(4, 2, bias=False)
    >>> _ = net.weight.data.copy_(torch.tensor([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 4.0]]))
    >>> weight_sparsity(net)
    {'weights': 8, 'zeros': 4, 'sparsity': 0.5}
    """
    ws = [w for _, w in prunable_weights(model)]
    n = sum(w.numel() for w in ws)
    zeros = sum(int(w.numel() - torch.count_nonzero(dense_values(w))) for w in ws)
    return {"weights": n, "zeros": zeros, "sparsity": zeros / n if n else 0.0}


def prune_magnitude_(model: nn.Module, sparsity: float, scope: Scope = "global") -> dict[str, Tensor]:
    """One-shot magnitude pruning of ``model``'s Linear and Conv weights, in place.

    Returns the keep-masks by parameter name (to hold them fixed while fine-tuning, see the
    ``prune`` method). Nothing is added to the model: its ``state_dict`` keeps its keys.

    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))
    >>> masks = prune_magnitude_(net, 0.9)
    >>> weight_sparsity(net)["zeros"], sorted(net.state_dict())
    (108, ['0.bias', '0.weight', '1.bias', '1.weight'])
    """
    named = prunable_weights(model)
    if not named:
        raise ModelError(f"{type(model).__name__} has no Linear or Conv weights to prune")
    weights = [w for _, w in named]
    masks = magnitude_masks(weights, sparsity, scope)
    apply_masks_(weights, masks)
    return {name: m for (name, _), m in zip(named, masks, strict=True)}


# --- storage of sparse weights ---------------------------------------------------------------


def _csr(t: Tensor) -> Tensor:
    """``t`` viewed as [rows, -1] in CSR with int32 indices (half the bytes of the default int64)."""
    with warnings.catch_warnings():
        # "Sparse CSR tensor support is in beta state": storing and densifying it is stable.
        warnings.simplefilter("ignore", UserWarning)
        c = t.detach().reshape(t.shape[0], -1).to_sparse_csr()
        return torch.sparse_csr_tensor(
            c.crow_indices().int(), c.col_indices().int(), c.values(), c.shape, dtype=t.dtype
        )


def sparse_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """A ``state_dict`` whose sparse weight tensors are stored in CSR, for a smaller file.

    A floating tensor of 2 or more dimensions goes to CSR (viewed as [rows, -1], int32 indices,
    about 8 bytes per nonzero instead of 4 bytes per entry) when that is smaller: above roughly
    50% zeros. Returns ``{"state_dict": ..., "shapes": {name: shape}}``; ``dense_state_dict``
    turns it back, and so does plain torch::

        sd = {k: v.to_dense().reshape(shapes[k]) if v.layout == torch.sparse_csr else v
              for k, v in saved["state_dict"].items()}

    >>> sd = {"w": torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 64), "b": torch.zeros(4)}
    >>> packed = sparse_state_dict(sd)
    >>> packed["state_dict"]["w"].layout, torch.equal(dense_state_dict(packed)["w"], sd["w"])
    (torch.sparse_csr, True)
    """
    out: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        out[k] = v
        if v.is_floating_point() and v.dim() >= 2 and v.layout == torch.strided:
            csr = _csr(v)
            nnz = csr.values().numel()
            # values + column indices + row pointers versus the dense entries
            sparse_bytes = nnz * (v.element_size() + 4) + (csr.shape[0] + 1) * 4
            if sparse_bytes < v.numel() * v.element_size():
                out[k] = csr
    return {"state_dict": out, "shapes": {k: list(v.shape) for k, v in state_dict.items()}}


def dense_state_dict(packed: dict[str, Any]) -> dict[str, Tensor]:
    """The plain ``state_dict`` back from ``sparse_state_dict``'s output (see there)."""
    shapes = packed["shapes"]
    return {
        k: v.to_dense().reshape(shapes[k]) if v.layout == torch.sparse_csr else v
        for k, v in packed["state_dict"].items()
    }
