"""Optimizers and the parameter groups they step, built on ``torch.optim``.

The ``OPTIMIZERS`` registry backs the recipe's ``optimizer:`` section; each entry's keyword
parameters (type hints and defaults) are the recipe schema. ``build_optimizer`` splits the
parameters into a decayed group (weight matrices and kernels) and a non-decayed one (biases, norm
scales; see ``tunelab.params``); with ``optimizer.layer_decay`` < 1 each of the model's blocks
(``layer_blocks``) gets its own pair of groups and a learning rate scaled by
``layer_decay ** depth`` (discriminative learning rates).

    >>> import torch
    >>> from tunelab.spec import OptimizerSpec
    >>> opt = build_optimizer(torch.nn.Linear(4, 2), OptimizerSpec("sgd", params={"lr": 0.1}))
    >>> [len(g["params"]) for g in opt.param_groups]  # the weight (decayed), the bias (not)
    [1, 1]
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from torch import nn
from torch.optim import Optimizer

from tunelab.errors import ModelError, RecipeError
from tunelab.params import is_decayed
from tunelab.registry import Registry
from tunelab.schema import Doc, Range
from tunelab.spec import OptimizerSpec

__all__ = ["OPTIMIZERS", "build_optimizer", "layer_blocks", "param_groups"]

ParamGroups = list[dict[str, Any]]

OPTIMIZERS = Registry("optimizer")

# --- parameter groups and optimizers ---------------------------------------------------------


# Containers only arrange their children; every other module (a Linear, a residual block, a GRU)
# is one unit whose parameters move together.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def layer_blocks(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The model's blocks from input to output: ``(name, parameter names)`` pairs.

    A block is a child module of the model, with ``nn.Sequential`` / ``ModuleList`` / ``ModuleDict``
    containers opened up into their own children (so a ``features`` Sequential of conv layers gives
    one block per layer, while a residual block or a GRU stays whole). A module holding only 1-D
    parameters (a norm layer) joins the block before it, so a conv and its BatchNorm form one
    block. Parameters held directly by the model (or by an opened container) form a block at
    that position. Modules without parameters are skipped. Blocks are in registration order,
    which is the order of the forward pass in the model families here and in most models.

    ``depth`` = distance from the output: the last block (the head) is depth 0. Discriminative
    learning rates (``param_groups(layer_decay=...)``) and gradual unfreezing
    (``tunelab.methods.transfer``) both use these blocks.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
    ...                           torch.nn.Linear(8, 2))
    >>> layer_blocks(net)
    [('0', ['0.weight', '0.bias', '1.weight', '1.bias']), ('3', ['3.weight', '3.bias'])]
    """
    units: list[tuple[str, list[str]]] = []
    seen: set[int] = set()  # a tied parameter belongs to the first block that holds it

    def take(prefix: str, named: list[tuple[str, nn.Parameter]]) -> list[str]:
        names = []
        for n, p in named:
            if id(p) not in seen:
                seen.add(id(p))
                names.append(f"{prefix}.{n}" if prefix else n)
        return names

    def visit(prefix: str, module: nn.Module, open_up: bool) -> None:
        if not open_up:
            names = take(prefix, list(module.named_parameters()))
            if names:
                units.append((prefix, names))
            return
        direct = take(prefix, list(module.named_parameters(recurse=False)))
        if direct:
            units.append((prefix or "<model>", direct))
        for name, child in module.named_children():
            visit(f"{prefix}.{name}" if prefix else name, child, isinstance(child, _CONTAINERS))

    visit("", model, True)
    params = dict(model.named_parameters())
    blocks: list[tuple[str, list[str]]] = []
    pending: list[str] = []  # 1-D-only units before the first block with a weight matrix
    for name, names in units:
        if blocks and not any(is_decayed(params[n]) for n in names):
            blocks[-1][1].extend(names)
        elif not any(is_decayed(params[n]) for n in names):
            pending.extend(names)
        else:
            blocks.append((name, pending + names))
            pending = []
    if pending:  # no block has a weight matrix (e.g. a lone BatchNorm): one block of everything
        blocks.append((units[0][0], pending))
    return blocks


def param_groups(
    model: nn.Module, decay_bias_and_norm: bool = False, layer_decay: float = 1.0
) -> ParamGroups:
    """The parameters of ``model`` as torch param groups named "decay" and "no_decay".

    The "no_decay" group (biases and norm parameters, unless ``decay_bias_and_norm``) carries
    ``weight_decay=0``; the "decay" group has no ``weight_decay`` key, so it takes the optimizer's
    own value. An empty group is dropped.

    Frozen parameters (``requires_grad=False``) are included: a method may unfreeze them later
    (``gradual_unfreeze``), and until then they get no gradient, which every torch optimizer
    skips (no step, no weight decay, no moment state).

    ``layer_decay`` < 1 gives discriminative learning rates: each block of ``layer_blocks`` gets
    its own "decay" / "no_decay" pair with keys ``depth`` (0 = the output block), ``block`` and
    ``lr_scale = layer_decay ** depth``; ``build_optimizer`` multiplies the lr by ``lr_scale``.
    Groups are ordered from the output block, so ``param_groups[0]`` carries the recipe's lr.

    >>> import torch
    >>> groups = param_groups(torch.nn.Linear(3, 2))
    >>> [(g["name"], len(g["params"]), g.get("weight_decay")) for g in groups]
    [('decay', 1, None), ('no_decay', 1, 0.0)]
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> [(g["block"], g["name"], g["lr_scale"]) for g in param_groups(net, layer_decay=0.5)]
    [('2', 'decay', 1.0), ('2', 'no_decay', 1.0), ('0', 'decay', 0.5), ('0', 'no_decay', 0.5)]
    """
    if not 0 < layer_decay <= 1:
        raise RecipeError("optimizer.layer_decay", layer_decay, "must be > 0 and <= 1")
    params = dict(model.named_parameters())
    if not any(p.requires_grad for p in params.values()):
        # Training would be a silent no-op. The freeze method freezes after the optimizer is built,
        # so a recipe reaches here only with a model that has no parameters or came frozen.
        raise ModelError(
            f"{type(model).__name__} has no trainable parameters (every parameter has "
            "requires_grad=False, or the model has none): there is nothing to optimize; unfreeze "
            "the model (model.requires_grad_(True)) and freeze parts with the freeze method instead"
        )

    def split(names: list[str], extra: dict[str, Any]) -> ParamGroups:
        decayed = [params[n] for n in names if decay_bias_and_norm or is_decayed(params[n])]
        other = [params[n] for n in names if not (decay_bias_and_norm or is_decayed(params[n]))]
        out: ParamGroups = []
        if decayed:
            out.append({"name": "decay", "params": decayed, **extra})
        if other:
            out.append({"name": "no_decay", "params": other, "weight_decay": 0.0, **extra})
        return out

    if layer_decay == 1.0:
        return split(list(params), {})
    blocks = layer_blocks(model)
    groups: ParamGroups = []
    for depth, (block, names) in enumerate(reversed(blocks)):
        groups += split(names, {"block": block, "depth": depth, "lr_scale": layer_decay**depth})
    return groups


def build_optimizer(model: nn.Module, spec: OptimizerSpec) -> Optimizer:
    """The torch optimizer named by ``spec`` over ``model``'s parameters.

    ``spec.params`` is checked against the entry's signature (errors name ``optimizer.<param>``);
    weight decay applies to the "decay" groups only, and ``spec.layer_decay`` scales each block's
    lr (see ``param_groups``). Schedules built afterwards start from these per-group lrs, so
    every schedule keeps the ratios between blocks.

    >>> import torch
    >>> opt = build_optimizer(torch.nn.Linear(3, 2), OptimizerSpec("adamw", params={"lr": 0.01}))
    >>> type(opt).__name__, [(g["name"], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    ('AdamW', [('decay', 0.01, 0.01), ('no_decay', 0.01, 0.0)])
    """
    entry = OPTIMIZERS.get(spec.name, "optimizer.name")
    kwargs = entry.check(spec.params, "optimizer")
    optimizer = entry.build(param_groups(model, spec.decay_bias_and_norm, spec.layer_decay), **kwargs)
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * g.get("lr_scale", 1.0)
    return optimizer


_LR = Annotated[float, Range(gt=0), Doc("learning rate")]
# torch's weight_decay on SGD, Adam and RMSprop is coupled: wd * w is added to the gradient. For
# SGD that equals an L2 penalty wd/2 * |w|^2 in the loss (the `l2` method writes it there
# explicitly); Adam and RMSprop then divide it by their adaptive denominator, which is why
# `adamw` decouples it. 0 by default: regularization is a method the recipe asks for.
_L2_DECAY = Annotated[
    float, Range(ge=0), Doc("coupled L2 decay: weight_decay * w added to the gradient of decayed params")
]
_MOMENTUM = Annotated[float, Range(ge=0, lt=1), Doc("momentum factor (heavy ball)")]
_BETA = Annotated[float, Range(ge=0, lt=1)]
_BETAS = Annotated[tuple[_BETA, _BETA], Doc("decay rates of the gradient and squared-gradient averages")]
_EPS = Annotated[float, Range(gt=0), Doc("added to the denominator for numerical stability")]
_AMSGRAD = Annotated[bool, Doc("use the running maximum of the second moment (AMSGrad)")]


@OPTIMIZERS.register(
    "gd",
    "Full-batch gradient descent: plain SGD on the whole train split as one batch.",
    skip=1,
    full_batch=True,
)
def _gd(
    params: ParamGroups,
    *,
    # The full-batch gradient is exact (no sampling noise), so the largest stable step is the
    # useful one; 0.1 is the customary starting point on standardized inputs.
    lr: _LR = 0.1,
    weight_decay: _L2_DECAY = 0.0,
) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd", "Mini-batch stochastic gradient descent without momentum.", skip=1)
def _sgd(
    params: ParamGroups,
    *,
    # The step is the raw gradient (not normalized as in Adam), so the LR is ~100x Adam's;
    # 0.1 is the customary plain-SGD starting point on standardized inputs.
    lr: _LR = 0.1,
    weight_decay: _L2_DECAY = 0.0,
) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("momentum", "SGD with heavy-ball momentum.", skip=1)
def _momentum(
    params: ParamGroups,
    *,
    # Momentum b multiplies the effective step by 1 / (1 - b) = 10 at b = 0.9, so 0.01 takes
    # the same effective step as sgd's 0.1.
    lr: _LR = 0.01,
    momentum: _MOMENTUM = 0.9,  # the standard value (Sutskever et al. 2013; ResNet recipes)
    weight_decay: _L2_DECAY = 0.0,
) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@OPTIMIZERS.register("nesterov", "SGD with Nesterov momentum.", skip=1)
def _nesterov(
    params: ParamGroups,
    *,
    lr: _LR = 0.01,  # same effective step as sgd's 0.1 at momentum 0.9 (see `momentum`)
    # torch requires momentum > 0 for Nesterov, hence the stricter range than `momentum`'s.
    momentum: Annotated[float, Range(gt=0, lt=1), Doc("momentum factor (Nesterov)")] = 0.9,
    weight_decay: _L2_DECAY = 0.0,
) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@OPTIMIZERS.register("adam", "Adam: adaptive per-coordinate steps from gradient moments.", skip=1)
def _adam(
    params: ParamGroups,
    *,
    # Kingma & Ba's default; the step is normalized per coordinate, so it transfers across
    # models and input scales better than SGD's.
    lr: _LR = 1e-3,
    betas: _BETAS = (0.9, 0.999),  # Kingma & Ba's defaults, also torch's
    eps: _EPS = 1e-8,
    weight_decay: _L2_DECAY = 0.0,
    amsgrad: _AMSGRAD = False,
) -> Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register("adamw", "AdamW: Adam with decoupled weight decay.", skip=1)
def _adamw(
    params: ParamGroups,
    *,
    lr: _LR = 1e-3,  # as adam
    betas: _BETAS = (0.9, 0.999),
    eps: _EPS = 1e-8,
    # Decoupled (Loshchilov & Hutter): each step shrinks decayed weights by lr * weight_decay,
    # independent of the gradient scale. 0.01 is torch's default: at lr 1e-3 weights shrink by
    # 1e-5 per step, a mild pull that does not fight the data.
    weight_decay: Annotated[
        float, Range(ge=0), Doc("decoupled weight decay: w -= lr * weight_decay * w each step")
    ] = 0.01,
    amsgrad: _AMSGRAD = False,
) -> Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register("rmsprop", "RMSprop: steps scaled by a running RMS of the gradient.", skip=1)
def _rmsprop(
    params: ParamGroups,
    *,
    # The step is normalized per coordinate like Adam's, so Adam's scale applies (Keras uses
    # 1e-3 too); torch's 1e-2 takes steps ten times Adam's.
    lr: _LR = 1e-3,
    # torch's default; Hinton's 0.9 forgets faster but is noisier.
    alpha: Annotated[float, Range(ge=0, lt=1), Doc("smoothing of the squared-gradient average")] = 0.99,
    eps: _EPS = 1e-8,
    momentum: _MOMENTUM = 0.0,
    centered: Annotated[bool, Doc("normalize by the gradient's estimated variance, not its RMS")] = False,
    weight_decay: _L2_DECAY = 0.0,
) -> Optimizer:
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered, weight_decay=weight_decay
    )
