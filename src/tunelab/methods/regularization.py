"""Weight penalties added to the loss: L1, L2 and elastic net.

The pure functions compute the penalty of a list of parameters; the adapters add it to the
training loss in the ``loss`` event, once per batch, over the parameters chosen once in setup.

A penalty is a term of the *loss*, so it is distinct from the optimizer's ``weight_decay``:

* Under plain SGD, ``l2_penalty(params, λ)`` (= λ/2·Σw², whose gradient is λ·w) gives exactly
  the same step as ``torch.optim.SGD(weight_decay=λ)`` ("coupled" weight decay).
* Under adaptive optimizers (Adam, RMSprop) the penalty's gradient is rescaled by the
  per-parameter step size like any other gradient, so it is *not* the same as AdamW's
  decoupled decay, which shrinks the weights directly.
* Using both a penalty and ``optimizer.weight_decay`` compounds them; pick one to tune.

The penalty is added to the batch's *mean* loss, so its strength per step does not depend on
the dataset size (unlike a penalty added to a summed loss, which scikit-learn divides by N).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import torch
from torch import Tensor, nn

from tunelab.errors import RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.params import split_decay
from tunelab.schema import Doc, Range

__all__ = ["L1", "L2", "ElasticNet", "elastic_net_penalty", "l1_penalty", "l2_penalty", "soft_threshold_"]


# One fused (differentiable) norm per tensor, as clip_grad_norm_ does, then one sum: a few kernel
# launches per batch on a GPU instead of two per tensor, and no flattened copy of the model.
def _abs_sum(params: list[Tensor]) -> Tensor:
    return torch.stack(torch._foreach_norm(params, 1)).sum()


def _sq_sum(params: list[Tensor]) -> Tensor:
    return torch.stack(torch._foreach_norm(params, 2)).pow(2).sum()


def _as_list(params: Iterable[Tensor]) -> list[Tensor]:
    params = list(params)
    if not params:
        raise ValueError("no parameters to penalize: pass at least one tensor")
    return params


def l1_penalty(params: Iterable[Tensor], weight: float) -> Tensor:
    """L1 (lasso) penalty ``weight · Σ|w|``; its gradient is ``weight · sign(w)``.

    Pushes weights to exactly zero (sparse weights).

    >>> import torch
    >>> round(float(l1_penalty([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])], weight=0.1)), 6)
    0.6
    """
    return weight * _abs_sum(_as_list(params))


def l2_penalty(params: Iterable[Tensor], weight: float) -> Tensor:
    """L2 (ridge) penalty ``weight/2 · Σw²``; its gradient is ``weight · w``.

    The 1/2 makes the gradient ``weight · w``, so under SGD one step with this penalty equals one
    step of ``torch.optim.SGD(weight_decay=weight)`` (the playbook's λ/2·Σθ²).

    >>> import torch
    >>> round(float(l2_penalty([torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])], weight=0.1)), 6)
    0.7
    """
    return (weight / 2) * _sq_sum(_as_list(params))


def elastic_net_penalty(params: Iterable[Tensor], weight: float, l1_ratio: float) -> Tensor:
    """Elastic-net penalty ``weight · (l1_ratio·Σ|w| + (1 − l1_ratio)/2 · Σw²)``.

    This is scikit-learn's ``ElasticNet`` penalty (``alpha`` = weight): ``l1_ratio=1`` is
    ``l1_penalty``, ``l1_ratio=0`` is ``l2_penalty``.

    >>> import torch
    >>> float(elastic_net_penalty([torch.tensor([1.0, -2.0])], weight=1.0, l1_ratio=0.5))
    2.75
    """
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}")
    params = _as_list(params)
    return weight * (l1_ratio * _abs_sum(params) + (1 - l1_ratio) / 2 * _sq_sum(params))


@torch.no_grad()
def soft_threshold_(params: Iterable[Tensor], threshold: float) -> None:
    """In place ``w ← sign(w)·max(|w| − threshold, 0)``: the proximal step of ``threshold·Σ|w|``.

    After a plain gradient step with learning rate η, ``soft_threshold_(params, η·λ)`` is one
    iteration of ISTA (proximal gradient descent on the lasso objective): unlike the subgradient
    of the L1 term, it sets weights to exactly zero.

    >>> import torch
    >>> w = torch.tensor([0.5, -0.05, -2.0])
    >>> soft_threshold_([w], 0.1); [round(v, 4) for v in w.tolist()]  # -0.05 is exactly zero now
    [0.4, -0.0, -1.9]
    """
    for p in params:
        p.copy_(p.sign() * (p.abs() - threshold).clamp_min_(0))


IncludeBiasAndNorm = Annotated[
    bool,
    Doc("also penalize biases and norm parameters (ndim < 2), which only shift activations"),
]


class _Penalty(Method):
    """Adds ``self.penalty(params)`` to the loss; the parameters are chosen once in setup."""

    include_bias_and_norm: bool = False

    def setup(self, state: TrainState) -> None:
        self.params, _ = split_decay(state.model, self.include_bias_and_norm)
        if not self.params:
            # A penalty over nothing would be a silent no-op.
            raise RecipeError(
                f"methods.{self.name}.include_bias_and_norm",
                self.include_bias_and_norm,
                "the model has no trainable weight matrices to penalize; set it to true to penalize "
                "biases and norm parameters, or remove the method",
            )

    def penalty(self, params: list[nn.Parameter]) -> Tensor:
        raise NotImplementedError

    def loss(self, state: TrainState, loss: Tensor, out: Tensor, y: Tensor) -> Tensor:
        return loss + self.penalty(self.params)


@METHODS.register("l1", "L1 (lasso) weight penalty weight·Σ|w| added to the loss; drives weights to zero.")
class L1(_Penalty):
    """L1 penalty in the loss (see ``l1_penalty``)."""

    name = "l1"

    def __init__(
        self,
        *,
        # Smaller than the L2 default: the L1 gradient does not shrink as weights do, so the
        # same weight removes more; 1e-5 is mild on mean losses, tune on a log scale up to 1e-3.
        weight: Annotated[float, Range(ge=0), Doc("penalty strength λ in λ·Σ|w|")] = 1e-5,
        include_bias_and_norm: IncludeBiasAndNorm = False,
        proximal: Annotated[
            bool,
            Doc("soft-threshold after each step (lr·λ) instead of the subgradient: exact zeros"),
        ] = False,
    ) -> None:
        self.weight, self.include_bias_and_norm = weight, include_bias_and_norm
        self.proximal = proximal
        self.skip_hooks = frozenset({"loss"} if proximal else {"after_step"})

    def penalty(self, params: list[nn.Parameter]) -> Tensor:
        return l1_penalty(params, self.weight)

    def setup(self, state: TrainState) -> None:
        super().setup(state)
        # Each parameter is thresholded with the lr of its own optimizer group (layer-wise lr
        # decay gives blocks different lrs).
        chosen = {id(p) for p in self.params}
        groups = [(g, [p for p in g["params"] if id(p) in chosen]) for g in state.optimizer.param_groups]
        self._groups = [(g, ps) for g, ps in groups if ps]

    def after_step(self, state: TrainState) -> None:
        # Only when proximal (else skipped): the L1 term leaves the loss and becomes this step.
        # Exact ISTA under gd/sgd; under adaptive optimizers the threshold uses the group's lr, a
        # common approximation (the per-parameter step size is not the lr there).
        for group, params in self._groups:
            soft_threshold_(params, group["lr"] * self.weight)


@METHODS.register("l2", "L2 (ridge) weight penalty weight/2·Σw² added to the loss (coupled weight decay).")
class L2(_Penalty):
    """L2 penalty in the loss (see ``l2_penalty``)."""

    name = "l2"

    def __init__(
        self,
        *,
        # 1e-4: the classic weight decay of SGD-trained ResNets; mild, rarely hurts, and a
        # starting point for a log-scale search over 1e-5..1e-2.
        weight: Annotated[float, Range(ge=0), Doc("penalty strength λ in λ/2·Σw² (gradient λ·w)")] = 1e-4,
        include_bias_and_norm: IncludeBiasAndNorm = False,
    ) -> None:
        self.weight, self.include_bias_and_norm = weight, include_bias_and_norm

    def penalty(self, params: list[nn.Parameter]) -> Tensor:
        return l2_penalty(params, self.weight)


@METHODS.register(
    "elastic_net", "Elastic-net penalty weight·(l1_ratio·Σ|w| + (1−l1_ratio)/2·Σw²) added to the loss."
)
class ElasticNet(_Penalty):
    """Elastic-net penalty in the loss (see ``elastic_net_penalty``)."""

    name = "elastic_net"

    def __init__(
        self,
        *,
        # Same scale as the L2 default; the L1 half keeps it mild.
        weight: Annotated[float, Range(ge=0), Doc("overall strength (scikit-learn's alpha)")] = 1e-4,
        # 0.5 is scikit-learn's default: an even mix of sparsity (L1) and shrinkage (L2).
        l1_ratio: Annotated[float, Range(ge=0, le=1), Doc("share of L1: 1 = lasso, 0 = ridge")] = 0.5,
        include_bias_and_norm: IncludeBiasAndNorm = False,
    ) -> None:
        self.weight, self.l1_ratio = weight, l1_ratio
        self.include_bias_and_norm = include_bias_and_norm

    def penalty(self, params: list[nn.Parameter]) -> Tensor:
        return elastic_net_penalty(params, self.weight, self.l1_ratio)
