"""Magnitude pruning in the training loop: gradual (Zhu & Gupta 2017) or one-shot, with rewinding.

The pure functions live in ``tunelab.compress.prune`` (``magnitude_masks``, ``apply_masks_``,
``sparsity_schedule``); the ``Prune`` adapter hooks them into the loop:

* ``setup``       choose the Linear and Conv weights; snapshot them for rewinding to init; mask
                  the gradients of pruned weights (a tensor hook), so gradient clipping and the
                  optimizer's statistics see the sparse network's true gradient
* ``after_step``  re-apply the masks after every optimizer step (momentum or weight decay would
                  otherwise move a pruned weight off zero), then, at the scheduled steps, prune
                  more: ``cycles`` mask updates spread from ``begin`` to ``end`` (fractions of
                  the training steps), the last one reaching ``sparsity``; the remaining steps
                  fine-tune the survivors with the masks fixed
* ``fit_end``     re-apply the final masks to the evaluated weights (also an EMA copy or the
                  restored best epoch) and remove the hooks

The masks are kept here, not in the model (see ``tunelab.compress.prune`` for why not
``torch.nn.utils.prune``): the model's ``state_dict`` has its usual keys at every checkpoint, so
``best.pt`` and ``final.pt`` load into the plain architecture, with zeros where weights were
pruned; "permanent" is simply the state of the weights.

Lottery-ticket rewinding (Frankle & Carbin 2019; Frankle et al. 2020 for rewinding to an early
epoch): with ``rewind_epoch`` set, every mask update resets the whole model (weights, biases,
norm statistics) to its state at the start of that epoch (0: at initialization), keeps the
surviving weights, and clears the optimizer's per-parameter state, so that the sparse network is
retrained from there. The learning-rate schedule is not rewound.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from tunelab.compress.prune import apply_masks_, magnitude_masks, prunable_weights, sparsity_schedule
from tunelab.errors import ModelError, RecipeError
from tunelab.methods._base import METHODS, Method, TrainState
from tunelab.metrics.efficiency import count_parameters, dense_values
from tunelab.schema import Doc, Range

__all__ = ["ChannelPrune", "Prune", "pruning_steps"]


def pruning_steps(
    total_steps: int, sparsity: float, schedule: str, begin: float, end: float, cycles: int
) -> dict[int, float]:
    """Optimizer step -> sparsity reached at that step, for a run of ``total_steps`` steps.

    Update k of n (k = 1..n) happens after step ``round(T·(begin + (k−1)·(end − begin)/n))`` and
    reaches ``sparsity_schedule(k/n)``: the first at ``begin``, the last (the full sparsity) one
    interval before ``end``, so the ramp's last interval already fine-tunes. ``oneshot`` is one
    update at ``begin``. Step 0 means before the first optimizer step (pruning at setup).

    >>> {step: round(s, 4) for step, s in pruning_steps(100, 0.8, "cubic", 0.0, 0.5, 4).items()}
    {0: 0.4625, 13: 0.7, 25: 0.7875, 38: 0.8}
    >>> pruning_steps(100, 0.8, "oneshot", 0.3, 0.9, 4)
    {30: 0.8}
    """
    n = 1 if schedule == "oneshot" else cycles
    out: dict[int, float] = {}
    for k in range(1, n + 1):
        step = math.floor(total_steps * (begin + (k - 1) * (end - begin) / n) + 0.5)
        # Several updates landing on one step (a short run) collapse into the last, sparsest one.
        out[min(step, max(total_steps - 1, 0))] = sparsity_schedule(k / n, sparsity, schedule)  # type: ignore[arg-type]
    return out


@METHODS.register(
    "prune", "Magnitude pruning of Linear/Conv weights on a sparsity schedule; exact zeros kept."
)
class Prune(Method):
    """Unstructured magnitude pruning (see the module docstring and ``magnitude_masks``)."""

    name = "prune"

    def __init__(
        self,
        *,
        # Half the weights of an over-parameterized network rarely carry its accuracy; a mild
        # default that a search then pushes (0.8-0.95 is typical with a gradual schedule).
        sparsity: Annotated[
            float, Range(ge=0, lt=1), Doc("final fraction of Linear/Conv weights set to zero")
        ] = 0.5,
        # Global ranking lets redundant layers lose more than small, critical ones, which keeps
        # more accuracy at a given sparsity than the same fraction from every layer.
        scope: Annotated[
            Literal["global", "layerwise"], Doc("rank weights across all layers or within each layer")
        ] = "global",
        schedule: Annotated[
            Literal["cubic", "linear", "oneshot"],
            Doc("how sparsity grows from begin to end: Zhu & Gupta's cubic, linear, or all at begin"),
        ] = "cubic",
        # Zhu & Gupta start after some dense training (weights whose magnitude means something)
        # and stop with time left to recover: dense for the first quarter, prune over the middle
        # half, fine-tune in the last quarter.
        begin: Annotated[float, Range(ge=0, lt=1), Doc("start of pruning, as a fraction of training")] = 0.25,
        end: Annotated[float, Range(gt=0, le=1), Doc("end of the ramp, as a fraction of training")] = 0.75,
        # Ten prune -> train cycles: fine enough that no single update removes much (cubic's
        # first is the largest, 27% of the target), few enough to leave steps between them.
        cycles: Annotated[int, Range(ge=1), Doc("mask updates between begin and end (linear/cubic)")] = 10,
        rewind_epoch: Annotated[
            int | None,
            Range(ge=0),
            Doc("lottery ticket: at each update reset to the weights at this epoch (0 = init); null = off"),
        ] = None,
    ) -> None:
        if end < begin:
            raise RecipeError("methods.prune.end", end, f"must be >= begin ({begin})")
        self.sparsity, self.scope, self.schedule = sparsity, scope, schedule
        self.begin, self.end, self.cycles, self.rewind_epoch = begin, end, cycles, rewind_epoch
        self.masks: list[Tensor] | None = None
        self.skip_hooks = frozenset() if rewind_epoch else frozenset({"epoch_start"})

    @classmethod
    def validate_recipe(cls, recipe: Any, spec: Any) -> None:
        p = spec.params
        begin, end = p.get("begin", 0.25), p.get("end", 0.75)
        if end < begin:
            raise RecipeError("methods.prune.end", end, f"must be >= methods.prune.begin ({begin})")
        rewind = p.get("rewind_epoch")
        first = math.floor(begin * recipe.train.epochs)
        if rewind is not None and rewind > first:
            raise RecipeError(
                "methods.prune.rewind_epoch",
                rewind,
                f"must be <= the epoch pruning begins ({first} = begin {begin} x {recipe.train.epochs} "
                "epochs): the rewind point has to exist before the first mask",
            )
        names = [m.name for m in recipe.methods]
        late = [n for n in ("early_stopping", "ema") if n in names and names.index(n) < names.index("prune")]
        if late:
            # fit_end hooks run in reverse order: listed first, prune masks what they restore/average.
            raise RecipeError(
                "methods",
                names,
                f"list prune before {' and '.join(late)}, so that its final masks apply to the weights "
                f"{' and '.join(late)} restore or average",
            )

    # --- events -------------------------------------------------------------------------------

    def setup(self, state: TrainState) -> None:
        named = prunable_weights(state.model)
        if not named:
            raise ModelError(
                f"methods.prune: {type(state.model).__name__} has no Linear or Conv weights to prune"
            )
        self.names = [n for n, _ in named]
        self.weights = [w for _, w in named]
        total = state.recipe.train.epochs * state.steps_per_epoch
        self.updates = pruning_steps(total, self.sparsity, self.schedule, self.begin, self.end, self.cycles)
        self.total_steps = total
        self.snapshot: dict[str, Tensor] | None = None
        if self.rewind_epoch == 0:
            self.snapshot = copy.deepcopy(state.model.state_dict())
        # Gradients of pruned weights are zeroed as autograd produces them, before any hook of
        # the loop (clipping) reads them; until the first update there is no mask to apply.
        self._handles = [
            w.register_hook(lambda g, i=i: g if self.masks is None else g * self.masks[i])
            for i, w in enumerate(self.weights)
            if w.requires_grad  # a frozen weight gets no gradient, and its mask holds by itself
        ]
        self.history: list[tuple[int, float]] = []
        state.info["prune"] = {"target": self.sparsity, "scope": self.scope, "schedule": self.schedule}
        if 0 in self.updates:
            self._update(state, self.updates[0])

    def epoch_start(self, state: TrainState) -> None:
        # Only with rewind_epoch > 0 (else skipped): the weights at the start of that epoch.
        if state.epoch == self.rewind_epoch and self.snapshot is None:
            self.snapshot = copy.deepcopy(state.model.state_dict())

    def after_step(self, state: TrainState) -> None:
        if self.masks is not None:
            apply_masks_(self.weights, self.masks)
        sparsity = self.updates.get(state.step)
        if sparsity is not None and state.step > 0:
            self._update(state, sparsity)

    def epoch_end(self, state: TrainState) -> None:
        # The sparsity the masks hold now (exact magnitude sparsity: the schedule's last target),
        # a host number: the per-epoch figure costs no device sync.
        state.history[-1]["prune"] = {"sparsity": self.history[-1][1] if self.history else 0.0}

    def fit_end(self, state: TrainState) -> None:
        if not self.history or self.history[-1][1] < self.sparsity:
            # Training ended before the schedule did (early stopping, Ctrl-C): the user asked for
            # this sparsity, so it is reached now, one-shot, and reported as such.
            self._update(state, self.sparsity, rewind=False)  # nothing would retrain a rewound net
            state.info["prune"]["completed_at_fit_end"] = True
        apply_masks_(self.weights, self.masks)  # type: ignore[arg-type]
        eval_net = state.eval_net
        if eval_net is not None and eval_net is not state.model:
            # An EMA copy or a restored best epoch: the same parameter names, its own tensors.
            # (A quantized copy's int8 weights are skipped: zeros quantize to exact zeros.)
            own = {n: p for n, p in eval_net.named_parameters() if type(p) in (Tensor, nn.Parameter)}
            pairs = [(own[n], m) for n, m in zip(self.names, self.masks, strict=True) if n in own]  # type: ignore[arg-type]
            apply_masks_([p.data for p, _ in pairs], [m for _, m in pairs])
        for h in self._handles:
            h.remove()
        net = eval_net if eval_net is not None else state.model
        names = set(self.names)
        kept = [dense_values(p) for n, p in net.named_parameters() if n in names]
        zeros = sum(int(p.numel() - torch.count_nonzero(p)) for p in kept)
        n_weights = sum(w.numel() for w in self.weights)
        state.info["prune"].update(
            {
                "sparsity": zeros / n_weights,
                "weights": n_weights,
                "zeros": zeros,
                "updates": len(self.history),
            }
        )

    def state_dict(self) -> dict[str, Any]:
        # The schedule of updates is rebuilt by setup from the recipe; where it stands is history.
        return {"masks": self.masks, "history": self.history, "snapshot": self.snapshot}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The gradient hooks read self.masks at each call: new masks take effect at once.
        masks = state["masks"]
        self.masks = (
            None if masks is None else [m.to(w.device) for m, w in zip(masks, self.weights, strict=True)]
        )
        self.history = [tuple(h) for h in state["history"]]
        self.snapshot = state["snapshot"]

    # --- helpers ------------------------------------------------------------------------------

    @torch.no_grad()
    def _update(self, state: TrainState, sparsity: float, rewind: bool = True) -> None:
        # The masks come from the trained weights' magnitudes, *then* the survivors are rewound.
        masks = magnitude_masks(self.weights, sparsity, self.scope, previous=self.masks)
        self.masks = [m.to(w.dtype) for m, w in zip(masks, self.weights, strict=True)]
        if rewind and self.snapshot is not None:
            state.model.load_state_dict(self.snapshot)  # copies into the same tensors
            # Adam's moments / momentum belong to the trajectory that was just rewound.
            state.optimizer.state.clear()
        apply_masks_(self.weights, self.masks)
        self.history.append((state.step, sparsity))


@METHODS.register(
    "channel_prune",
    "Structured pruning: remove channels or neurons (Torch-Pruning), then fine-tune the narrow model.",
)
class ChannelPrune(Method):
    """Structured pruning in the loop: choose channels once, fine-tune without them, end narrow.

    * ``epoch_start`` of epoch ``round(at · epochs)``: rank the channel groups of a copy of the
      model with Torch-Pruning's dependency graph (``tunelab.compress.structured.prune_channels``,
      group L2 magnitude) and remember which channels go; from then on the layers that read them
      get 0/1 masks on those input columns (re-applied after every step, gradients masked too),
      which makes the dense model compute exactly what the narrow one will
    * ``eval_model``: from that epoch on, evaluate a physically narrowed copy (the same channels
      removed, ``apply_channel_plan``): what is validated, checkpointed, tested and timed is the
      smaller model, with its smaller weight tensors and latency
    * ``fit_end``: a run that ended before ``at`` (early stopping) is pruned then, without
      fine-tuning, so the run always ends with the requested ratio

    The dense model is never reshaped while it trains: the optimizer, the schedule and every other
    method keep valid references to its parameters. Epochs before the pruning do not compete for
    the best epoch (``TrainState.comparable_since``). ``final.pt``/``best.pt`` hold the narrow
    model; ``tunelab compress`` and ``tunelab.compress.structured.resize_to_state_dict`` load them
    into the recipe's architecture.
    """

    name = "channel_prune"

    def __init__(
        self,
        *,
        # Half the channels: a model this size then runs ~2x faster or more; searches push it.
        ratio: Annotated[
            float, Range(ge=0, lt=1), Doc("fraction of channels (conv) and neurons (Linear) removed")
        ] = 0.5,
        scope: Annotated[
            Literal["layerwise", "global"],
            Doc("the same fraction from every layer, or ranked across layers (some lose more)"),
        ] = "layerwise",
        # Prune once the weights mean something, with the rest of training to recover.
        at: Annotated[
            float, Range(ge=0, lt=1), Doc("when to prune, as a fraction of training (0 = at init)")
        ] = 0.5,
        round_to: Annotated[
            int | None, Range(ge=1), Doc("keep channel counts multiples of this (e.g. 8 for tensor cores)")
        ] = None,
    ) -> None:
        self.ratio, self.scope, self.at, self.round_to = ratio, scope, at, round_to
        self.plan: Any = None

    @classmethod
    def validate_recipe(cls, recipe: Any, spec: Any) -> None:
        names = [m.name for m in recipe.methods]
        if "prune" in names:
            raise RecipeError(
                "methods",
                names,
                "use prune (unstructured) or channel_prune (structured), not both in one run; to "
                "sparsify a narrowed model, run tunelab compress on this run",
            )
        if "ema" in names and names.index("ema") > names.index("channel_prune"):
            raise RecipeError(
                "methods", names, "list ema before channel_prune, so that the EMA average is what is narrowed"
            )

    # --- events -------------------------------------------------------------------------------

    def setup(self, state: TrainState) -> None:
        from tunelab.compress.structured import output_layer, prune_channels
        from tunelab.models._base import eager_copy

        output_layer(state.model)  # a clear error for a model with no Linear/Conv layer
        # Zeros trace any model; token ids must stay integers (all padding is a valid document).
        self.example = torch.zeros(
            2, *state.data.input_shape, device=state.device, dtype=state.data.x_train.dtype
        )
        # A dry run on a copy: a model with nothing to narrow (a GRU, one Linear layer) is refused
        # now, not halfway through training.
        try:
            prune_channels(eager_copy(state.model), self.example, self.ratio, scope=self.scope)
        except ModelError as e:
            raise ModelError(f"methods.channel_prune: {e} (methods.prune)") from None
        epochs = state.recipe.train.epochs
        self.prune_epoch = min(math.floor(self.at * epochs + 0.5), epochs - 1)
        self._handles: list[Any] = []
        self._model = state.model  # load_state_dict masks it again
        state.info["channel_prune"] = {"ratio": self.ratio, "scope": self.scope, "epoch": None}

    def epoch_start(self, state: TrainState) -> None:
        if state.epoch == self.prune_epoch and self.plan is None:
            self._choose(state, state.model)
            state.comparable_since = state.epoch

    def after_step(self, state: TrainState) -> None:
        if self.plan is not None:
            apply_masks_(self.weights, self.masks)

    def eval_model(self, state: TrainState, model: nn.Module) -> nn.Module:
        if self.plan is None:
            return model
        return self._narrow(model)

    def fit_end(self, state: TrainState) -> None:
        net = state.eval_net if state.eval_net is not None else state.model
        if self.plan is None:
            # Ended before the pruning epoch (early stopping, Ctrl-C): the ratio asked for is
            # reached now, without fine-tuning, and reported as such.
            self._choose(state, net)
            state.eval_net = self._narrow(net)
            state.info["channel_prune"]["completed_at_fit_end"] = True
        for h in self._handles:
            h.remove()
        info = state.info["channel_prune"]
        final = state.eval_net if state.eval_net is not None else state.model
        info["params_after"] = count_parameters(final)["params"]

    # --- helpers ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # The plan is plain data (names and channel indices); the masks follow from it.
        return {"plan": None if self.plan is None else dataclasses.asdict(self.plan)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from tunelab.compress.structured import ChannelPruning

        if state["plan"] is not None:
            self._install(self._model, ChannelPruning(**state["plan"]))

    def _install(self, model: nn.Module, plan: Any) -> None:
        """Adopt ``plan``: mask the inputs it removes from ``model``'s layers, gradients included."""
        from tunelab.compress.structured import input_masks

        self.plan = plan
        modules = dict(model.named_modules())
        masks = input_masks(model, plan)
        self.weights = [modules[n].weight for n in masks]
        self.masks = list(masks.values())
        apply_masks_(self.weights, self.masks)
        pairs = zip(self.weights, self.masks, strict=True)
        self._handles = [w.register_hook(lambda g, m=m: g * m) for w, m in pairs if w.requires_grad]

    def _choose(self, state: TrainState, net: nn.Module) -> None:
        from tunelab.compress.structured import prune_channels
        from tunelab.models._base import eager_copy

        plan = prune_channels(
            eager_copy(net), self.example, self.ratio, scope=self.scope, round_to=self.round_to
        )
        self._install(state.model, plan)
        state.info["channel_prune"].update(
            {
                "epoch": state.epoch + 1,
                "params_before": self.plan.params_before,
                "widths": {n: list(w) for n, w in self.plan.widths.items()},
            }
        )

    def _narrow(self, model: nn.Module) -> nn.Module:
        from tunelab.compress.structured import apply_channel_plan
        from tunelab.models._base import eager_copy

        twin = eager_copy(model)
        apply_channel_plan(twin, self.example, self.plan)
        return twin
