"""Structured pruning: physically remove channels and neurons with Torch-Pruning's dependency graph.

Removing output channel c of a conv also removes its BatchNorm entry and input channel c of every
layer that reads it (through pooling, flattening, residual additions): Torch-Pruning's
``DependencyGraph`` finds these coupled groups, so the pruned model is an ordinary, narrower
``nn.Module`` whose weight tensors are smaller. Nothing of tunelab or Torch-Pruning is needed to
run it; ``torch.save(model)`` (as Torch-Pruning recommends) reloads with ``torch.load(path,
weights_only=False)`` wherever the model's own class is importable, and ``torch.export`` gives a
file that needs torch alone (see ``tunelab.compress.artifacts``).

Channels are ranked by the L2 norm of each coupled group's weights (Torch-Pruning's
``GroupMagnitudeImportance``); the model's last Linear/Conv layer keeps its outputs (the classes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from tunelab.compress.prune import PRUNABLE
from tunelab.errors import ModelError, TunelabError

__all__ = [
    "ChannelPruning",
    "apply_channel_plan",
    "input_masks",
    "mask_removed_inputs_",
    "output_layer",
    "prune_channels",
    "resize_to_state_dict",
]


@dataclass
class ChannelPruning:
    """What ``prune_channels`` removed.

    ``removed_out`` / ``removed_in``: per module name (as in ``named_modules`` of the model before
    pruning), the output (resp. input) channel indices that were deleted. Zeroing the
    ``removed_in`` columns of the dense model gives exactly the pruned model's function (the
    removed channels are still computed there, but nothing reads them).
    """

    ratio: float
    scope: str
    params_before: int
    params_after: int
    removed_out: dict[str, list[int]] = field(default_factory=dict)
    removed_in: dict[str, list[int]] = field(default_factory=dict)
    widths: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (in, out) after
    # The pruning itself, replayable on a copy of the dense model (``apply_channel_plan``): the
    # root layer of each coupled group, in the order pruned, and its output channels removed.
    groups: list[tuple[str, list[int]]] = field(default_factory=list)


def output_layer(model: nn.Module) -> nn.Module:
    """The last Linear/Conv module registered in ``model``: the one that produces its outputs.

    >>> output_layer(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    Linear(in_features=8, out_features=3, bias=True)
    """
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    if not layers:
        raise ModelError(f"{type(model).__name__} has no Linear or Conv layer to prune")
    return layers[-1]


@contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    # Tracing runs a forward pass: in eval mode BatchNorm's running statistics do not move.
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, f in flags:
            m.training = f


def _width(m: nn.Module) -> tuple[int, int]:
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    return m.in_channels, m.out_channels  # type: ignore[return-value]


def prune_channels(
    model: nn.Module,
    example_inputs: Tensor,
    ratio: float,
    *,
    scope: Literal["layerwise", "global"] = "layerwise",
    ignored_layers: Sequence[nn.Module] | None = None,
    round_to: int | None = None,
) -> ChannelPruning:
    """Remove the fraction ``ratio`` of channels (conv) and neurons (Linear) of ``model``, in place.

    ``scope="layerwise"`` removes ``ratio`` of each prunable layer's outputs; ``"global"`` ranks
    all groups together (Torch-Pruning's ``global_pruning``; layers may lose more or less).
    ``ignored_layers`` defaults to the output layer. ``example_inputs`` is a batch the model
    accepts (its values do not matter); a parameter replaced here is a new ``nn.Parameter``, so
    build any optimizer afterwards.

    >>> net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> r = prune_channels(net, torch.zeros(2, 8), 0.5)
    >>> net[0].weight.shape, net[2].weight.shape, net[4].weight.shape, r.params_after < r.params_before
    (torch.Size([16, 8]), torch.Size([16, 16]), torch.Size([3, 16]), True)
    """
    import torch_pruning as tp

    if not 0.0 <= ratio < 1.0:
        raise TunelabError(f"channel ratio must be in [0, 1) (the fraction of channels removed); got {ratio}")
    if scope not in ("layerwise", "global"):
        raise TunelabError(f"scope must be 'layerwise' or 'global'; got {scope!r}")
    ignored = list(ignored_layers) if ignored_layers is not None else [output_layer(model)]
    names = {id(m): n for n, m in model.named_modules()}
    before = sum(p.numel() for p in model.parameters())
    result = ChannelPruning(ratio, scope, before, before)
    if ratio == 0.0:
        return result
    with _eval(model), warnings.catch_warnings():
        # Torch-Pruning warns about layers it leaves alone (the ignored output layer): expected.
        warnings.simplefilter("ignore", UserWarning)
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            global_pruning=scope == "global",
            pruning_ratio=ratio,
            ignored_layers=ignored,
            round_to=round_to,
        )
        for group in pruner.step(interactive=True):
            root = group[0].dep.target.module
            if "out" not in group[0].dep.handler.__name__ or id(root) not in names:
                raise ModelError(f"structured pruning: unexpected group root {group[0].dep} (not outputs)")
            result.groups.append((names[id(root)], [int(i) for i in group[0].idxs]))
            for dep, idxs in group:
                module = dep.target.module
                name = names.get(id(module))
                if name is None or not isinstance(module, PRUNABLE):
                    continue
                # The handler says which side of the layer loses channels: its outputs or inputs.
                side = result.removed_out if "out" in dep.handler.__name__ else result.removed_in
                side.setdefault(name, []).extend(int(i) for i in idxs)
            group.prune()
    result.params_after = sum(p.numel() for p in model.parameters())
    result.widths = {n: _width(m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    if result.params_after == before:
        raise ModelError(
            f"structured pruning removed nothing from {type(model).__name__}: no prunable channel "
            "outside the output layer; use unstructured pruning instead"
        )
    return result


@torch.no_grad()
def mask_removed_inputs_(model: nn.Module, pruning: ChannelPruning) -> None:
    """Zero, in the *dense* model, the input columns that ``prune_channels`` removed.

    The result computes exactly what the pruned model computes: a check of the pruning (and the
    masked twin that structured pruning is compared against in the tests).
    """
    modules = dict(model.named_modules())
    for name, idxs in pruning.removed_in.items():
        w = modules[name].weight  # Linear [out, in]; Conv [out, in, *k]
        w[:, sorted(set(idxs))] = 0


def apply_channel_plan(model: nn.Module, example_inputs: Tensor, pruning: ChannelPruning) -> nn.Module:
    """Remove from ``model`` (in place) exactly the channels ``pruning`` removed from its twin.

    ``model`` has the architecture ``prune_channels`` saw (e.g. a copy of the dense model taken
    later in training): the groups are replayed in order, by index, whatever the weights are now,
    so the result has the same widths and computes what the masked dense model computes.

    >>> import copy
    >>> net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> plan = prune_channels(copy.deepcopy(net), torch.zeros(2, 8), 0.25)
    >>> apply_channel_plan(net, torch.zeros(2, 8), plan)[0].weight.shape
    torch.Size([24, 8])
    """
    import torch_pruning as tp

    modules = dict(model.named_modules())
    with _eval(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        for name, idxs in pruning.groups:
            module = modules.get(name)
            if module is None:
                raise ModelError(f"channel plan: the model has no layer {name!r}; it is another architecture")
            fn = graph.get_pruner_of_module(module).prune_out_channels
            graph.get_pruning_group(module, fn, idxs).prune()
    return model


def input_masks(model: nn.Module, pruning: ChannelPruning) -> dict[str, Tensor]:
    """Per layer name, a 0/1 mask shaped like its weight that zeroes the input columns pruned away.

    Multiplying the dense model's weights by these masks makes it compute what the structurally
    pruned model computes (``mask_removed_inputs_`` does it once): nothing reads a removed channel.
    """
    modules = dict(model.named_modules())
    masks: dict[str, Tensor] = {}
    for name, idxs in pruning.removed_in.items():
        w = modules[name].weight
        mask = torch.ones_like(w)
        mask[:, sorted(set(idxs))] = 0
        masks[name] = mask
    return masks


# Torch-Pruning's own loader (tp.load_state_dict) needs the checkpoint in its format (attributes
# saved beside the weights); tunelab's checkpoints are plain state_dicts, so the few width
# attributes of the standard layers are set here from the tensor shapes instead.
_WIDTH_ATTRS: dict[type[nn.Module], tuple[tuple[str, int, int], ...]] = {
    # (attribute, weight dim it follows, multiplier of groups) per layer type
    nn.Linear: (("out_features", 0, 0), ("in_features", 1, 0)),
    nn.Conv1d: (("out_channels", 0, 0), ("in_channels", 1, 1)),
    nn.Conv2d: (("out_channels", 0, 0), ("in_channels", 1, 1)),
}


@torch.no_grad()
def resize_to_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], keep_outputs: nn.Module | None = None
) -> nn.Module:
    """Narrow ``model``'s Linear, Conv and BatchNorm layers (in place) to the shapes in ``state``.

    How a structurally pruned checkpoint loads into the architecture its recipe builds: every
    tensor whose shape differs is replaced by an empty one of the checkpoint's shape (filled by
    the ``load_state_dict`` that follows) and the layer's width attributes follow. Other layer
    types, or a tensor of another rank, are an error (the checkpoint is another architecture).
    ``keep_outputs`` (an output layer: a new head for another task) follows the checkpoint's
    input width only, keeping its own number of outputs.

    >>> net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> small = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 3))
    >>> resize_to_state_dict(net, small.state_dict())[2]
    Linear(in_features=20, out_features=3, bias=True)
    """
    for mname, module in model.named_modules():
        own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        changed = False
        for pname, tensor in own:
            key = f"{mname}.{pname}" if mname else pname
            new = state.get(key)
            if new is not None and module is keep_outputs:
                # Only the inputs follow the checkpoint: weight [out, in, ...] keeps its out.
                shape = (tensor.shape[0], *new.shape[1:]) if pname == "weight" else tensor.shape
                new = torch.empty(shape) if new.dim() == tensor.dim() else new
            if new is None or tuple(new.shape) == tuple(tensor.shape):
                continue
            resizable = isinstance(module, (*_WIDTH_ATTRS, nn.modules.batchnorm._BatchNorm))
            if new.dim() != tensor.dim() or not resizable:
                raise ModelError(
                    f"{key}: the checkpoint has shape {tuple(new.shape)}, the model {tuple(tensor.shape)}; "
                    "only the widths of Linear, Conv and BatchNorm layers can be narrowed to fit"
                )
            empty = torch.empty(new.shape, dtype=tensor.dtype, device=tensor.device)
            if isinstance(tensor, nn.Parameter):
                setattr(module, pname, nn.Parameter(empty, requires_grad=tensor.requires_grad))
            else:
                setattr(module, pname, empty)
            changed = True
        if not changed:
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            ref = module.weight if module.weight is not None else module.running_mean
            module.num_features = ref.shape[0]  # type: ignore[union-attr]
        else:
            attrs = next(v for k, v in _WIDTH_ATTRS.items() if isinstance(module, k))
            for attr, dim, by_groups in attrs:
                groups = getattr(module, "groups", 1) if by_groups else 1
                setattr(module, attr, module.weight.shape[dim] * groups)
    return model
