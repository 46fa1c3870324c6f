"""Transfer learning: freeze parts of a (pretrained) model, unfreeze them gradually, reset a head.

``model.pretrained`` loads the weights (``tunelab.models.pretrained``) and
``optimizer.layer_decay`` gives each block a smaller learning rate the closer it is to the input
(``tunelab.optim.param_groups``); the methods here edit which parameters train:

* ``freeze`` sets ``requires_grad=False`` on the parameters whose name, or the name of a module
  holding them, matches one of its fnmatch patterns (``features.*``, ``head.0``); by default it
  freezes every block but the output one. A pattern that matches no parameter is an error.
* ``gradual_unfreeze`` unfreezes the frozen blocks one at a time from the output side towards
  the input (ULMFiT's schedule, Howard & Ruder 2018): the first at the start of ``start_epoch``,
  then one more every ``every`` epochs. Alone (nothing frozen before it), it first freezes all
  but the output block itself.
* ``reinit`` re-initializes modules (by default the output block): a pretrained head whose shape
  fits the new task (5 classes before and after) is still the old task's head.

Blocks are those of ``tunelab.optim.layer_blocks``: child modules, with Sequential containers
opened up, and a norm layer joined to the layer before it (a ``cnn2d`` has blocks
``features.0``, ``features.4``, ``features.8``, ``head.0``, ``head.4``; ``head.4`` is depth 0).

The optimizer is built before the methods' ``setup`` and holds every parameter, frozen or not:
a frozen parameter gets no gradient, and torch optimizers skip such parameters (no step, no
weight decay, no moment state), so it trains from the moment it is unfrozen.

Frozen means no gradient: batch-norm layers inside frozen blocks still update their running
statistics on the new data in training mode (they are buffers, not parameters), which adapts the
normalization to the target data.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> freeze_parameters(net, ["0"])
    ['0.weight', '0.bias']
    >>> [n for n, p in net.named_parameters() if p.requires_grad]
    ['2.weight', '2.bias']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError, did_you_mean
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.models.init import init_weights
from tunelab.optim import layer_blocks
from tunelab.schema import Doc, Range

__all__ = [
    "Freeze",
    "GradualUnfreeze",
    "Reinit",
    "freeze_parameters",
    "match_parameters",
    "output_block_patterns",
    "reinit_modules",
    "unfreeze_epochs",
]

_FREEZE_PATH = "methods.freeze.patterns"


def _owners(name: str) -> list[str]:
    """A parameter's name and the names of the modules holding it: 'a.b.w' -> ['a', 'a.b', 'a.b.w']."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def match_parameters(model: nn.Module, patterns: Sequence[str]) -> dict[str, list[str]]:
    """For each pattern, the parameters whose name or holding module's name it matches (fnmatch).

    ``features`` and ``features.*`` both match every parameter of the module ``features``;
    ``*.bias`` matches every bias. Matching is case-sensitive.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> match_parameters(net, ["0", "*.bias", "1"])
    {'0': ['0.weight', '0.bias'], '*.bias': ['0.bias', '2.bias'], '1': []}
    """
    names = [n for n, _ in model.named_parameters()]
    return {
        pat: [n for n in names if any(fnmatch.fnmatchcase(o, pat) for o in _owners(n))] for pat in patterns
    }


def output_block_patterns(model: nn.Module) -> list[str]:
    """The parameter names of the model's output block (depth 0 of ``layer_blocks``).

    >>> import torch
    >>> output_block_patterns(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)))
    ['1.weight', '1.bias']
    """
    blocks = layer_blocks(model)
    if not blocks:
        raise ModelError(f"{type(model).__name__} has no parameters: it has no output block")
    return list(blocks[-1][1])


def _unmatched_error(model: nn.Module, pattern: str, path: str) -> RecipeError:
    modules = [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    params = [n for n, _ in model.named_parameters()]
    shown = ", ".join(modules[:12]) + (", ..." if len(modules) > 12 else "")
    return RecipeError(
        path,
        pattern,
        f"matches no parameter of the model; fnmatch patterns over module or parameter names, "
        f"e.g. 'features.*'; modules with parameters: {shown}",
        did_you_mean(pattern, modules + params),
    )


def freeze_parameters(model: nn.Module, patterns: Sequence[str], *, path: str = _FREEZE_PATH) -> list[str]:
    """Set ``requires_grad=False`` on the parameters ``patterns`` match; return their names.

    Every pattern must match at least one parameter (a RecipeError at ``path`` lists the
    model's modules otherwise): a freeze that freezes nothing is a mistake, never a no-op.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> freeze_parameters(net, ["2.*"])
    ['2.weight', '2.bias']
    >>> try:
    ...     freeze_parameters(net, ["head"])
    ... except RecipeError as e:
    ...     print(e.path, e.value)
    methods.freeze.patterns head
    """
    if not patterns:
        raise RecipeError(path, list(patterns), "must list at least one pattern, e.g. ['features.*']")
    matched = match_parameters(model, patterns)
    for pat, names in matched.items():
        if not names:
            raise _unmatched_error(model, pat, path)
    chosen = {n for names in matched.values() for n in names}
    frozen = []
    for name, p in model.named_parameters():
        if name in chosen:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def unfreeze_epochs(n_blocks: int, start_epoch: int, every: int) -> list[int]:
    """The 1-based epoch at whose start each frozen block is unfrozen, output-side block first.

    >>> unfreeze_epochs(3, start_epoch=2, every=2)
    [2, 4, 6]
    """
    if n_blocks < 0 or start_epoch < 1 or every < 1:
        raise ValueError(
            f"need n_blocks >= 0, start_epoch >= 1, every >= 1; got {n_blocks, start_epoch, every}"
        )
    return [start_epoch + k * every for k in range(n_blocks)]


@torch.no_grad()
def reinit_modules(model: nn.Module, names: Sequence[str], init: str = "default") -> list[str]:
    """Re-initialize the modules holding the parameters ``names``; return the tensors reset.

    Each module holding one of the parameters gets its ``reset_parameters()`` (PyTorch's own
    initialization) and then the init scheme ``init`` (``tunelab.models.init``), as at build time.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    >>> _ = net[1].weight.data.fill_(7.0)
    >>> reinit_modules(net, ["1.weight"]), bool((net[1].weight == 7.0).any())
    (['1.weight', '1.bias'], False)
    """
    wanted = set(names)
    modules = [
        (mname, m)
        for mname, m in model.named_modules()
        if any((f"{mname}.{p}" if mname else p) in wanted for p, _ in m.named_parameters(recurse=False))
    ]
    reset = []
    for mname, m in modules:
        if not hasattr(m, "reset_parameters"):
            raise ModelError(
                f"reinit: module {mname!r} ({type(m).__name__}) has no reset_parameters(); pick modules "
                "made of torch layers (Linear, Conv, norm layers)"
            )
        m.reset_parameters()
        init_weights(m, init)
        reset += [f"{mname}.{p}" if mname else p for p, _ in m.named_parameters(recurse=False)]
    return reset


def _freeze_all_but_output(model: nn.Module, path: str) -> list[str]:
    head = set(output_block_patterns(model))
    frozen = [n for n, _ in model.named_parameters() if n not in head]
    if not frozen:
        raise RecipeError(
            path,
            None,
            "the model is a single block, so freezing all but its output block freezes nothing; "
            "name the parameters to freeze with the freeze method",
        )
    for n, p in model.named_parameters():
        if n not in head:
            p.requires_grad_(False)
    return frozen


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@METHODS.register("freeze", "Freeze parameters by module-name patterns (default: all but the output block).")
class Freeze(Method):
    """``requires_grad=False`` on matching parameters in ``setup`` (see ``freeze_parameters``).

    Reports ``info["freeze"]``: the patterns, the number of frozen tensors and parameters, and
    the parameters left to train. Freezing every parameter is an error unless
    ``gradual_unfreeze`` follows in the recipe.
    """

    name = "freeze"

    def __init__(
        self,
        *,
        # null freezes all but the output block: the usual first step of fine-tuning (train the
        # new head on frozen features), and it fits every model family without naming layers.
        patterns: Annotated[
            list[str] | None,
            Doc("fnmatch patterns of module or parameter names; null: all but the output block"),
        ] = None,
    ) -> None:
        if patterns is not None and not patterns:
            raise RecipeError(_FREEZE_PATH, patterns, "must list at least one pattern, or be null")
        self.patterns = list(patterns) if patterns is not None else None

    def setup(self, state: TrainState) -> None:
        model = state.model
        if self.patterns is None:
            frozen = _freeze_all_but_output(model, _FREEZE_PATH)
        else:
            frozen = freeze_parameters(model, self.patterns)
        unfreezes = any(m.name == "gradual_unfreeze" for m in state.recipe.methods)
        if _trainable(model) == 0 and not unfreezes:
            raise RecipeError(
                _FREEZE_PATH,
                self.patterns,
                "freezes every parameter, so nothing would train; leave the head out of the patterns "
                "or add gradual_unfreeze",
            )
        by_name = dict(model.named_parameters())
        state.info["freeze"] = {
            "patterns": self.patterns if self.patterns is not None else "all but the output block",
            "frozen_tensors": len(frozen),
            "frozen_parameters": sum(by_name[n].numel() for n in frozen),
            "trainable_parameters": _trainable(model),
        }


def _check_order(recipe: Any, spec: Any) -> None:
    names = [m.name for m in recipe.methods]
    if "freeze" in names and names.index("freeze") > names.index(spec.name):
        raise RecipeError(
            "methods",
            names,
            "freeze must come before gradual_unfreeze: setup hooks run in recipe order, and "
            "gradual_unfreeze schedules the blocks frozen when its setup runs",
        )


@METHODS.register(
    "gradual_unfreeze", "Unfreeze frozen blocks one at a time from the output towards the input."
)
class GradualUnfreeze(Method):
    """Unfreezes, at the start of epochs ``start_epoch + k * every``, the k-th frozen block
    counted from the output (``unfreeze_epochs``; blocks as in ``tunelab.optim.layer_blocks``).

    It schedules the parameters frozen when its ``setup`` runs: put ``freeze`` before it in the
    recipe to choose them. When nothing is frozen yet, it first freezes every block but the
    output one itself (ULMFiT's recipe in one method). Reports ``info["gradual_unfreeze"]``
    (each block and its epoch; blocks scheduled after the last epoch stay frozen and are listed
    as such) and, per epoch, the number of trainable parameters.
    """

    name = "gradual_unfreeze"
    # DDP registers the parameters that need gradients when it wraps the model: one unfrozen later
    # would get no all-reduce, and the processes' weights would drift apart.
    ddp_refusal = (
        "cannot run under DDP (its all-reduce covers only the parameters trainable at the start); "
        "train with one process, or use freeze instead"
    )

    def __init__(
        self,
        *,
        # Epoch 1 trains the head alone on frozen features; then one block joins per epoch,
        # the schedule ULMFiT (Howard & Ruder 2018) found to avoid overwriting pretrained features.
        start_epoch: Annotated[
            int, Range(ge=1), Doc("1-based epoch at whose start the first frozen block is unfrozen")
        ] = 2,
        every: Annotated[int, Range(ge=1), Doc("epochs between two unfrozen blocks")] = 1,
    ) -> None:
        self.start_epoch, self.every = start_epoch, every
        self._plan: list[tuple[int, str, list[nn.Parameter]]] = []

    @classmethod
    def validate_recipe(cls, recipe: Any, spec: Any) -> None:
        _check_order(recipe, spec)
        start = spec.params.get("start_epoch", 2)
        if start > recipe.train.epochs:
            raise RecipeError(
                "methods.gradual_unfreeze.start_epoch",
                start,
                f"must be <= train.epochs ({recipe.train.epochs}); otherwise nothing is ever unfrozen",
            )

    def setup(self, state: TrainState) -> None:
        model = state.model
        froze_itself = all(p.requires_grad for p in model.parameters())
        if froze_itself:
            _freeze_all_but_output(model, "methods.gradual_unfreeze")
        params = dict(model.named_parameters())
        frozen_blocks = []
        for block, names in reversed(layer_blocks(model)):  # from the output towards the input
            frozen = [params[n] for n in names if not params[n].requires_grad]
            if frozen:
                frozen_blocks.append((block, frozen))
        if _trainable(model) == 0 and self.start_epoch > 1:
            # backward() on a graph without a trainable leaf fails; and an epoch would train nothing.
            raise RecipeError(
                "methods.gradual_unfreeze.start_epoch",
                self.start_epoch,
                "every parameter is frozen until then, so epoch 1 would train nothing; set it to 1, "
                "or leave the output block out of the freeze patterns",
            )
        epochs = unfreeze_epochs(len(frozen_blocks), self.start_epoch, self.every)
        self._plan = [(e, b, ps) for e, (b, ps) in zip(epochs, frozen_blocks, strict=True)]
        last = state.recipe.train.epochs
        state.info["gradual_unfreeze"] = {
            "frozen_by": "gradual_unfreeze (all but the output block)" if froze_itself else "earlier methods",
            "schedule": {b: e for e, b, _ in self._plan if e <= last},
            "still_frozen": [b for e, b, _ in self._plan if e > last],
        }

    def epoch_start(self, state: TrainState) -> None:
        epoch = state.epoch + 1  # the loop counts from 0; the schedule, like the history, from 1
        for e, _, ps in self._plan:
            if e == epoch:
                for p in ps:
                    p.requires_grad_(True)

    def epoch_end(self, state: TrainState) -> None:
        state.history[-1]["gradual_unfreeze"] = {"trainable_parameters": _trainable(state.model)}

    def state_dict(self) -> dict[str, Any]:
        # The position in the schedule: the blocks unfrozen so far (requires_grad is no weight).
        return {"unfrozen": [block for _, block, ps in self._plan if ps[0].requires_grad]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unfrozen = set(state["unfrozen"])
        for _, block, ps in self._plan:
            if block in unfrozen:
                for p in ps:
                    p.requires_grad_(True)


@METHODS.register("reinit", "Re-initialize modules (default: the output block) after loading weights.")
class Reinit(Method):
    """Re-initializes the modules holding the matching parameters in ``setup`` (``reinit_modules``),
    with the recipe's ``model.init``: a pretrained head of the right shape for a new task.

    Moves those tensors from ``loaded`` to ``reinitialized`` in ``info["pretrained"]`` and
    reports ``info["reinit"]``.
    """

    name = "reinit"

    def __init__(
        self,
        *,
        patterns: Annotated[
            list[str] | None,
            Doc("fnmatch patterns of module or parameter names, e.g. ['head.4']; null: the output block"),
        ] = None,
    ) -> None:
        if patterns is not None and not patterns:
            raise RecipeError(
                "methods.reinit.patterns", patterns, "must list at least one pattern, or be null"
            )
        self.patterns = list(patterns) if patterns is not None else None

    def setup(self, state: TrainState) -> None:
        model = state.model
        if self.patterns is None:
            names = output_block_patterns(model)
        else:
            matched = match_parameters(model, self.patterns)
            for pat, found in matched.items():
                if not found:
                    raise _unmatched_error(model, pat, "methods.reinit.patterns")
            names = sorted({n for found in matched.values() for n in found})
        reset = reinit_modules(model, names, state.recipe.model.init)
        report = state.info.get("pretrained")
        if report is not None:
            moved = [n for n in report["loaded"] if n in set(reset)]
            report["loaded"] = [n for n in report["loaded"] if n not in set(reset)]
            report["reinitialized"] = list(report["reinitialized"]) + moved
        state.info["reinit"] = {"tensors": reset}
