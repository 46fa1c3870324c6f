"""Optimizers and schedules: contract tests over every registry entry, reference tests against
torch schedulers built directly, closed forms for warmup, and the errors' recipe paths."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as tls

from tunelab.errors import ModelError, RecipeError
from tunelab.optim import (
    OPTIMIZERS,
    SCHEDULES,
    WARMUP_START_FACTOR,
    Horizon,
    Schedule,
    build_optimizer,
    build_schedule,
    check_schedule,
    layer_blocks,
    param_groups,
)
from tunelab.spec import OptimizerSpec, ScheduleSpec

S = WARMUP_START_FACTOR
EPOCHS, SPE = 6, 4  # small run: 6 epochs of 4 batches


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _opt(name: str = "sgd", **params: Any) -> torch.optim.Optimizer:
    return build_optimizer(_net(), OptimizerSpec(name, params=params))


def _raises_at(path: str, fn: Callable[[], object]) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        fn()
    assert info.value.path == path, str(info.value)
    assert path in str(info.value)
    return info.value


# --- optimizers --------------------------------------------------------------------------------

TORCH_CLASS = {
    "gd": torch.optim.SGD,
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


def test_registry_lists_the_documented_optimizers() -> None:
    assert OPTIMIZERS.names() == sorted(TORCH_CLASS)
    for entry in OPTIMIZERS:
        assert entry.description and "\n" not in entry.description
        assert {p.name for p in entry.params} >= {"lr", "weight_decay"}


@pytest.mark.parametrize("name", sorted(TORCH_CLASS))
def test_optimizer_builds_torch_class_with_signature_defaults(name: str) -> None:
    opt = _opt(name)
    assert type(opt) is TORCH_CLASS[name]
    decay, no_decay = opt.param_groups
    assert (decay["name"], no_decay["name"]) == ("decay", "no_decay")
    # Every recipe parameter reaches torch under its own name with the signature's default.
    for p in OPTIMIZERS.get(name).params:
        assert decay[p.name] == p.default, p.name
    assert no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("name", "momentum", "nesterov"),
    [("gd", 0.0, False), ("sgd", 0.0, False), ("momentum", 0.9, False), ("nesterov", 0.9, True)],
)
def test_sgd_family_momentum_flags(name: str, momentum: float, nesterov: bool) -> None:
    group = _opt(name).param_groups[0]
    assert group["momentum"] == momentum
    assert group["nesterov"] is nesterov
    assert group["dampening"] == 0


def test_adam_family_defaults_and_decoupled_decay() -> None:
    adam, adamw = _opt("adam").param_groups[0], _opt("adamw").param_groups[0]
    assert adam["lr"] == adamw["lr"] == 1e-3
    assert adam["betas"] == adamw["betas"] == (0.9, 0.999)
    assert adam["weight_decay"] == 0.0 and adamw["weight_decay"] == 0.01
    assert adam["decoupled_weight_decay"] is False and adamw["decoupled_weight_decay"] is True


def test_recipe_values_override_defaults() -> None:
    opt = _opt("adam", lr="5e-3", betas=[0.8, 0.99], weight_decay=0.1, amsgrad=True)
    decay, no_decay = opt.param_groups
    assert decay["lr"] == no_decay["lr"] == 5e-3  # YAML's "5e-3" string read as a number
    assert decay["betas"] == (0.8, 0.99)
    assert decay["amsgrad"] is True
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_only_gd_is_full_batch() -> None:
    assert [e.name for e in OPTIMIZERS if e.tags.get("full_batch")] == ["gd"]


@pytest.mark.parametrize("name", sorted(TORCH_CLASS))
def test_each_optimizer_lowers_a_least_squares_loss(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    net = nn.Linear(4, 1)
    opt = build_optimizer(net, OptimizerSpec(name))
    losses = []
    for _ in range(5):
        loss = nn.functional.mse_loss(net(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]


# --- parameter groups --------------------------------------------------------------------------


def test_bias_and_norm_params_go_to_the_no_decay_group() -> None:
    net = _net()
    lin1, bn, lin2 = net[0], net[1], net[3]
    groups = param_groups(net)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(lin1.weight), id(lin2.weight)}
    assert ids[1] == {id(lin1.bias), id(bn.weight), id(bn.bias), id(lin2.bias)}
    assert groups[1]["weight_decay"] == 0.0 and "weight_decay" not in groups[0]


def test_decay_bias_and_norm_puts_everything_in_one_decayed_group() -> None:
    net = _net()
    opt = build_optimizer(net, OptimizerSpec("sgd", decay_bias_and_norm=True, params={"weight_decay": 0.1}))
    (group,) = opt.param_groups
    assert group["name"] == "decay" and group["weight_decay"] == 0.1
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}


def test_frozen_params_are_kept_and_an_all_frozen_model_fails() -> None:
    # Frozen parameters stay in the optimizer so a method can unfreeze them later (gradual
    # unfreezing); a model with nothing trainable at all is still an error, not a silent no-op.
    net = _net()
    net[0].requires_grad_(False)
    kept = [p for g in param_groups(net) for p in g["params"]]
    assert {id(p) for p in kept} == {id(p) for p in net.parameters()} and len(kept) == 6
    net.requires_grad_(False)
    with pytest.raises(ModelError, match="no trainable parameters"):
        build_optimizer(net, OptimizerSpec("adam"))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_a_param_frozen_at_build_time_is_untouched_then_trained_once_unfrozen(name: str) -> None:
    # Weight decay included: torch optimizers skip parameters whose grad is None, so a frozen
    # parameter gets neither a step nor decay (AdamW's decoupled decay would shrink it otherwise).
    net = _net()
    opt = build_optimizer(net, OptimizerSpec(name, params={"weight_decay": 0.1}))
    net[0].requires_grad_(False)
    frozen_before = net[0].weight.detach().clone()
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    assert torch.equal(net[0].weight, frozen_before)
    net[0].requires_grad_(True)
    step()
    assert not torch.equal(net[0].weight, frozen_before)


def test_model_without_decayed_weights_gets_a_single_no_decay_group() -> None:
    (group,) = param_groups(nn.BatchNorm1d(3))
    assert group["name"] == "no_decay" and len(group["params"]) == 2


# --- optimizer errors --------------------------------------------------------------------------


def test_unknown_optimizer_names_the_path_and_suggests() -> None:
    err = _raises_at("optimizer.name", lambda: _opt("adamm"))
    assert 'did you mean "adam' in str(err)


@pytest.mark.parametrize(
    ("name", "params", "path"),
    [
        ("sgd", {"lr": 0}, "optimizer.lr"),
        ("adam", {"lr": -1e-3}, "optimizer.lr"),
        ("adam", {"betas": [0.9]}, "optimizer.betas"),
        ("adam", {"betas": [0.9, 1.0]}, "optimizer.betas[1]"),
        ("momentum", {"momentum": 1.0}, "optimizer.momentum"),
        ("nesterov", {"momentum": 0.0}, "optimizer.momentum"),
        ("adamw", {"weight_decay": -0.1}, "optimizer.weight_decay"),
        ("sgd", {"momentum": 0.9}, "optimizer.momentum"),  # sgd has none: use `momentum`
        ("rmsprop", {"alpha": "high"}, "optimizer.alpha"),
    ],
)
def test_bad_optimizer_params_name_the_path(name: str, params: dict[str, Any], path: str) -> None:
    _raises_at(path, lambda: _opt(name, **params))


# --- schedules: reference tests against torch ----------------------------------------------------


def _trace(
    opt: torch.optim.Optimizer,
    sched: Schedule,
    metrics: Sequence[float] | None = None,
    epochs: int = EPOCHS,
    spe: int = SPE,
    key: str = "lr",
) -> list[float]:
    """The value of group[key] used by every optimizer step, stepping as the loop does."""
    out = []
    for epoch in range(epochs):
        for _ in range(spe):
            out.append(float(opt.param_groups[0][key] if key != "beta1" else opt.param_groups[0]["betas"][0]))
            opt.step()
            sched.step_batch()
        sched.step_epoch(None if metrics is None else metrics[epoch])
    return out


def _trace_torch(
    opt: torch.optim.Optimizer,
    sched: Any,
    per_batch: bool,
    metrics: Sequence[float] | None = None,
    epochs: int = EPOCHS,
    spe: int = SPE,
    key: str = "lr",
) -> list[float]:
    out = []
    for epoch in range(epochs):
        for _ in range(spe):
            out.append(float(opt.param_groups[0][key] if key != "beta1" else opt.param_groups[0]["betas"][0]))
            opt.step()
            if per_batch and sched is not None:
                sched.step()
        if not per_batch and sched is not None:
            sched.step(metrics[epoch]) if metrics is not None else sched.step()
    return out


METRICS = [1.0, 0.9, 0.95, 0.92, 0.91, 0.93]  # val loss: improves, then stalls

# (schedule, params, optimizer, reference torch scheduler built directly, per batch, mode)
REFERENCES: list[tuple[str, dict[str, Any], str, Callable[[Any], Any], bool]] = [
    ("constant", {}, "sgd", lambda o: None, False),
    ("step", {"step_size": 2, "gamma": 0.5}, "sgd", lambda o: tls.StepLR(o, 2, gamma=0.5), False),
    # default step_size: a third of the 6 epochs
    ("step", {}, "adam", lambda o: tls.StepLR(o, 2, gamma=0.1), False),
    (
        "multistep",
        {"milestones": [1, 4], "gamma": 0.3},
        "momentum",
        lambda o: tls.MultiStepLR(o, [1, 4], gamma=0.3),
        False,
    ),
    ("exponential", {"gamma": 0.7}, "sgd", lambda o: tls.ExponentialLR(o, 0.7), False),
    (
        "cosine",
        {"eta_min": 1e-3},
        "sgd",
        lambda o: tls.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=1e-3),
        False,
    ),
    ("onecycle", {}, "momentum", lambda o: tls.OneCycleLR(o, max_lr=0.01, total_steps=EPOCHS * SPE), True),
    (
        "onecycle",
        {"max_lr": 0.02, "pct_start": 0.25, "anneal_strategy": "linear"},
        "adam",
        lambda o: tls.OneCycleLR(
            o, max_lr=0.02, total_steps=EPOCHS * SPE, pct_start=0.25, anneal_strategy="linear"
        ),
        True,
    ),
    # plain SGD: no momentum to cycle, so the reference runs with cycle_momentum=False
    (
        "cyclic",
        {"step_size_up": 1.5, "mode": "triangular2"},
        "sgd",
        lambda o: tls.CyclicLR(
            o, base_lr=0.025, max_lr=0.1, step_size_up=1.5 * SPE, mode="triangular2", cycle_momentum=False
        ),
        True,
    ),
    (
        "cyclic",
        {"base_lr": 0.002, "mode": "exp_range", "gamma": 0.5},
        "momentum",
        lambda o: tls.CyclicLR(
            o, base_lr=0.002, max_lr=0.01, step_size_up=2 * SPE, mode="exp_range", gamma=0.5 ** (1 / SPE)
        ),
        True,
    ),
    (
        "plateau",
        {"patience": 1, "factor": 0.5},
        "sgd",
        lambda o: tls.ReduceLROnPlateau(o, mode="min", patience=1, factor=0.5),
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "params", "opt_name", "reference", "per_batch"),
    REFERENCES,
    ids=[f"{r[0]}-{r[2]}-{i}" for i, r in enumerate(REFERENCES)],
)
def test_schedule_matches_torch_scheduler(
    name: str, params: dict[str, Any], opt_name: str, reference: Callable[[Any], Any], per_batch: bool
) -> None:
    opt = _opt(opt_name)
    sched = build_schedule(opt, ScheduleSpec(name, params=params), EPOCHS, SPE, mode="min")
    assert sched.per_batch is per_batch
    ref_opt = _opt(opt_name)
    ref = reference(ref_opt)
    got = _trace(opt, sched, METRICS)
    want = _trace_torch(ref_opt, ref, per_batch, METRICS if name == "plateau" else None)
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert len(set(got)) > 1 or name == "constant"  # the schedule did move the LR
    # every parameter group follows the schedule, not only the first
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref_opt.param_groups]


def test_every_registered_schedule_has_a_reference_test() -> None:
    assert {r[0] for r in REFERENCES} == set(SCHEDULES.names())
    assert {e.name for e in SCHEDULES if e.tags.get("per_batch")} == {"onecycle", "cyclic"}


@pytest.mark.parametrize(
    ("sched_name", "opt_name"), [("onecycle", "adam"), ("cyclic", "momentum"), ("cyclic", "adam")]
)
def test_cyclical_schedules_cycle_momentum_like_torch(sched_name: str, opt_name: str) -> None:
    key = "beta1" if opt_name == "adam" else "momentum"
    opt = _opt(opt_name)
    sched = build_schedule(opt, ScheduleSpec(sched_name), EPOCHS, SPE)
    ref_opt = _opt(opt_name)
    lr = ref_opt.param_groups[0]["lr"]
    ref = (
        tls.OneCycleLR(ref_opt, max_lr=lr, total_steps=EPOCHS * SPE)
        if sched_name == "onecycle"
        else tls.CyclicLR(ref_opt, base_lr=lr / 4, max_lr=lr, step_size_up=2 * SPE)
    )
    got, want = _trace(opt, sched, key=key), _trace_torch(ref_opt, ref, True, key=key)
    assert got == pytest.approx(want) and len(set(got)) > 2


@pytest.mark.parametrize("sched_name", ["onecycle", "cyclic"])
def test_cyclical_schedules_do_not_add_momentum_to_plain_sgd(sched_name: str) -> None:
    opt = _opt("sgd")
    sched = build_schedule(opt, ScheduleSpec(sched_name), EPOCHS, SPE)
    assert _trace(opt, sched, key="momentum") == [0.0] * (EPOCHS * SPE)


# --- plateau -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "improving", "stalled"),
    [
        ("min", [5, 4, 3, 2, 1, 0.5], [1, 1.5, 2, 1.2, 1.1, 1.3]),
        ("max", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.5, 0.4, 0.45, 0.3, 0.2, 0.1]),
    ],
)
def test_plateau_reduces_after_patience_epochs_without_improvement(
    mode: str, improving: list[float], stalled: list[float]
) -> None:
    spec = ScheduleSpec("plateau", params={"patience": 2, "factor": 0.5})
    opt = _opt("sgd", lr=1.0)
    lrs = _trace(opt, build_schedule(opt, spec, EPOCHS, 1, mode=mode), improving, spe=1)
    assert lrs == [1.0] * EPOCHS
    opt = _opt("sgd", lr=1.0)
    lrs = _trace(opt, build_schedule(opt, spec, EPOCHS, 1, mode=mode), stalled, spe=1)
    # epoch 0 sets the best; epochs 1, 2 are tolerated (patience 2); the third bad epoch (3) halves
    # the LR used from epoch 4 on; the counter restarts, so epochs 4, 5 are tolerated again.
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_plateau_needs_the_metric() -> None:
    opt = _opt()
    sched = build_schedule(opt, ScheduleSpec("plateau"), EPOCHS, SPE)
    with pytest.raises(ValueError, match="monitored metric"):
        sched.step_epoch(None)


# --- warmup ------------------------------------------------------------------------------------


def _linear(t: int, n: int) -> float:
    return S + (1 - S) * min(t, n) / n


def _geometric(t: int, n: int) -> float:
    return S ** (1 - min(t, n) / n)


CLOSED_FORMS = {"linear": _linear, "exponential": _geometric}


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_warmup_follows_its_closed_form_then_holds(kind: str) -> None:
    w, lr = 3, 0.2
    opt = _opt("sgd", lr=lr)
    sched = build_schedule(opt, ScheduleSpec("constant", warmup_epochs=w, warmup=kind), EPOCHS, SPE)
    per_epoch = _trace(opt, sched)[::SPE]  # epoch schedules hold the LR within an epoch
    want = [lr * CLOSED_FORMS[kind](t, w) for t in range(w)] + [lr] * (EPOCHS - w)
    assert per_epoch == pytest.approx(want, rel=1e-12)
    assert per_epoch[0] == pytest.approx(lr * S)


@pytest.mark.parametrize("kind", ["linear", "exponential"])
@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("step", {"step_size": 1, "gamma": 0.5}, lambda o, n: tls.StepLR(o, 1, gamma=0.5)),
        ("cosine", {}, lambda o, n: tls.CosineAnnealingLR(o, T_max=n)),
        ("multistep", {"milestones": [2]}, lambda o, n: tls.MultiStepLR(o, [2])),
    ],
)
def test_warmup_then_epoch_schedule(
    kind: str, name: str, params: dict[str, Any], reference: Callable[[Any, int], Any]
) -> None:
    w, lr = 2, 0.1
    opt = _opt("sgd", lr=lr)
    sched = build_schedule(opt, ScheduleSpec(name, warmup_epochs=w, warmup=kind, params=params), EPOCHS, SPE)
    got = _trace(opt, sched)[::SPE]
    assert got[:w] == pytest.approx([lr * CLOSED_FORMS[kind](t, w) for t in range(w)])
    # after warmup, the schedule runs over the remaining epochs from its own epoch 0
    ref_opt = _opt("sgd", lr=lr)
    want = _trace_torch(ref_opt, reference(ref_opt, EPOCHS - w), False, epochs=EPOCHS - w)[::SPE]
    assert got[w:] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_warmup_then_plateau(kind: str) -> None:
    w, lr = 2, 0.1
    metrics = [0.1, 0.2, 0.5, 0.4, 0.45, 0.3]  # accuracy (mode max); the bad warmup epochs are ignored
    opt = _opt("sgd", lr=lr)
    spec = ScheduleSpec("plateau", warmup_epochs=w, warmup=kind, params={"patience": 1, "factor": 0.5})
    got = _trace(opt, build_schedule(opt, spec, EPOCHS, SPE, mode="max"), metrics)[::SPE]
    assert got[:w] == pytest.approx([lr * CLOSED_FORMS[kind](t, w) for t in range(w)])
    ref_opt = _opt("sgd", lr=lr)
    ref = tls.ReduceLROnPlateau(ref_opt, mode="max", patience=1, factor=0.5)
    want = _trace_torch(ref_opt, ref, False, metrics[w:], epochs=EPOCHS - w)[::SPE]
    assert got[w:] == pytest.approx(want, rel=1e-12)
    assert got[-1] == pytest.approx(lr * 0.5)  # the plateau did reduce after warmup


@pytest.mark.parametrize("kind", ["linear", "exponential"])
@pytest.mark.parametrize(
    ("name", "start", "reference"),
    [
        # onecycle starts at max_lr / div_factor, cyclic at base_lr: warmup rises to that LR
        ("onecycle", 0.1 / 25, lambda o, n: tls.OneCycleLR(o, max_lr=0.1, total_steps=n)),
        (
            "cyclic",
            0.1 / 4,
            lambda o, n: tls.CyclicLR(
                o, base_lr=0.025, max_lr=0.1, step_size_up=2 * SPE, cycle_momentum=False
            ),
        ),
    ],
)
def test_warmup_then_batch_schedule_is_stepped_per_batch(
    kind: str, name: str, start: float, reference: Callable[[Any, int], Any]
) -> None:
    w = 2
    opt = _opt("sgd", lr=0.1)
    sched = build_schedule(opt, ScheduleSpec(name, warmup_epochs=w, warmup=kind), EPOCHS, SPE)
    got = _trace(opt, sched)
    n = w * SPE
    assert got[:n] == pytest.approx([start * CLOSED_FORMS[kind](t, n) for t in range(n)])
    ref_opt = _opt("sgd", lr=0.1)
    want = _trace_torch(ref_opt, reference(ref_opt, (EPOCHS - w) * SPE), True, epochs=EPOCHS - w)
    assert got[n:] == pytest.approx(want, rel=1e-12)
    assert got[n] == pytest.approx(start)  # continuous hand-over


# --- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "opt_name"),
    [
        (ScheduleSpec("cosine", warmup_epochs=2), "sgd"),
        (ScheduleSpec("plateau", warmup_epochs=2, warmup="exponential", params={"patience": 0}), "sgd"),
        (ScheduleSpec("onecycle", warmup_epochs=1, warmup="exponential"), "adam"),
    ],
)
def test_state_dict_resumes_the_same_lr_sequence(spec: ScheduleSpec, opt_name: str) -> None:
    metrics = [0.5, 0.6, 0.55, 0.5, 0.7, 0.6, 0.65, 0.62]
    opt = _opt(opt_name)
    sched = build_schedule(opt, spec, 8, SPE, mode="max")
    _trace(opt, sched, metrics[:3], epochs=3)
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    rest = _trace(opt, sched, metrics[3:], epochs=5)

    opt2 = _opt(opt_name)
    sched2 = build_schedule(opt2, spec, 8, SPE, mode="max")
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # plain data: loadable without unpickling code
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert _trace(opt2, sched2, metrics[3:], epochs=5) == rest
    assert len(set(rest)) > 1


def test_step_batch_is_a_no_op_for_epoch_schedules() -> None:
    opt = _opt("sgd", lr=1.0)
    sched = build_schedule(opt, ScheduleSpec("exponential", params={"gamma": 0.5}), EPOCHS, SPE)
    for _ in range(10):
        opt.step()
        sched.step_batch()
    assert sched.lr() == 1.0
    sched.step_epoch(None)
    assert sched.lr() == 0.5


# --- schedule errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (ScheduleSpec("cosin"), "schedule.name"),
        (ScheduleSpec("constant", warmup_epochs=EPOCHS), "schedule.warmup_epochs"),
        (ScheduleSpec("multistep"), "schedule.milestones"),  # required
        (ScheduleSpec("multistep", params={"milestones": [3, 2]}), "schedule.milestones"),
        (ScheduleSpec("multistep", params={"milestones": []}), "schedule.milestones"),
        (ScheduleSpec("multistep", params={"milestones": [2, EPOCHS]}), "schedule.milestones"),
        # milestones count after warmup: 4 + 2 warmup epochs reach past the 6-epoch run
        (ScheduleSpec("multistep", warmup_epochs=2, params={"milestones": [4]}), "schedule.milestones"),
        (ScheduleSpec("multistep", params={"milestones": [1.5]}), "schedule.milestones[0]"),
        (ScheduleSpec("step", params={"step_size": EPOCHS}), "schedule.step_size"),
        (ScheduleSpec("step", params={"gamma": 0}), "schedule.gamma"),
        (ScheduleSpec("cosine", params={"T_max": 3}), "schedule.T_max"),
        (ScheduleSpec("cyclic", params={"base_lr": 0.5}), "schedule.base_lr"),  # above the lr 0.1
        (ScheduleSpec("cyclic", params={"gamma": 0.5}), "schedule.gamma"),  # only for exp_range
        (ScheduleSpec("cyclic", params={"mode": "exp_range"}), "schedule.gamma"),
        (ScheduleSpec("cyclic", params={"mode": "sine"}), "schedule.mode"),
        (ScheduleSpec("onecycle", params={"pct_start": 1.0}), "schedule.pct_start"),
        (ScheduleSpec("plateau", params={"factor": 1.0}), "schedule.factor"),
    ],
)
def test_bad_schedule_params_name_the_path(spec: ScheduleSpec, path: str) -> None:
    _raises_at(path, lambda: build_schedule(_opt("sgd"), spec, EPOCHS, SPE))
    # the same error is available before any data or model exists
    _raises_at(path, lambda: check_schedule(spec, OptimizerSpec("sgd"), EPOCHS))


def test_milestone_order_fails_at_recipe_validation() -> None:
    # Entry.check is what the recipe loader runs: no epochs needed for this check.
    entry = SCHEDULES.get("multistep")
    _raises_at("schedule.milestones", lambda: entry.check({"milestones": [2, 2]}, "schedule"))


def test_horizon_rejects_impossible_runs() -> None:
    assert Horizon(3, 5, "min").total_steps == 15
    with pytest.raises(ValueError):
        Horizon(0, 5)
    with pytest.raises(ValueError):
        Horizon(3, 5, "up")


def test_exponential_warmup_reaches_the_target_exactly() -> None:
    # the geometric closed form ends at factor 1 (not 1 - eps): no drift into the schedule
    opt = _opt("sgd", lr=0.3)
    sched = build_schedule(opt, ScheduleSpec("constant", warmup_epochs=4, warmup="exponential"), 5, 1)
    lrs = _trace(opt, sched, epochs=5, spe=1)
    assert lrs[-1] == 0.3
    ratios = [b / a for a, b in itertools.pairwise(lrs[:4])]
    assert ratios == pytest.approx([math.pow(1 / S, 1 / 4)] * 3)  # constant growth factor


# --- blocks and discriminative learning rates (layer_decay) -------------------------------------


def test_layer_blocks_open_containers_and_join_norm_layers_to_the_layer_before() -> None:
    from tunelab.models import build_model
    from tunelab.spec import ModelSpec

    cnn = build_model(ModelSpec("cnn2d", params={"channels": [4, 8], "hidden": [16]}), (1, 8, 8), 3)
    blocks = layer_blocks(cnn)
    assert [b for b, _ in blocks] == ["features.0", "features.4", "head.0", "head.4"]
    # conv + its BatchNorm form one block; every parameter is in exactly one block, in order.
    assert blocks[0][1] == ["features.0.weight", "features.1.weight", "features.1.bias"]
    assert [n for _, names in blocks for n in names] == [n for n, _ in cnn.named_parameters()]
    resnet = build_model(ModelSpec("resnet"), (1, 8, 8), 3)
    # A residual block is not a container: it stays one block.
    assert [b for b, _ in layer_blocks(resnet)] == ["stem.0", "blocks.0", "blocks.1", "blocks.2", "head.3"]


def test_layer_blocks_edge_cases() -> None:
    # A leading norm layer joins the first weighted block; a lone norm layer is one block.
    net = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))
    assert layer_blocks(net) == [("1", ["0.weight", "0.bias", "1.weight", "1.bias"])]
    assert layer_blocks(nn.BatchNorm1d(3)) == [("<model>", ["weight", "bias"])]
    # A tied parameter is listed once, in the first block holding it (the second layer is then left
    # with its 1-D bias, which joins the block before, as a norm layer would).
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    assert layer_blocks(tied) == [("0", ["0.weight", "0.bias", "1.bias"])]


def test_layer_decay_scales_each_blocks_lr_and_keeps_the_decay_split() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    spec = OptimizerSpec("adamw", layer_decay=0.5, params={"lr": 0.01, "weight_decay": 0.1})
    opt = build_optimizer(net, spec)
    rows = [(g["block"], g["name"], g["depth"], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert rows == [
        ("4", "decay", 0, 0.01, 0.1),
        ("4", "no_decay", 0, 0.01, 0.0),
        ("3", "decay", 1, 0.005, 0.1),
        ("3", "no_decay", 1, 0.005, 0.0),
        ("0", "decay", 2, 0.0025, 0.1),
        ("0", "no_decay", 2, 0.0025, 0.0),  # Linear bias + BatchNorm weight and bias
    ]
    assert len(opt.param_groups[-1]["params"]) == 3
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))


def test_layer_decay_one_keeps_the_plain_two_groups() -> None:
    groups = param_groups(_net(), layer_decay=1.0)
    assert [g["name"] for g in groups] == ["decay", "no_decay"] and "lr_scale" not in groups[0]


def test_layer_decay_out_of_range_is_a_recipe_error() -> None:
    _raises_at("optimizer.layer_decay", lambda: param_groups(_net(), layer_decay=0.0))
    _raises_at("optimizer.layer_decay", lambda: param_groups(_net(), layer_decay=1.5))


@pytest.mark.parametrize(
    "schedule",
    [
        ScheduleSpec("step", params={"step_size": 2}),
        ScheduleSpec("cosine", warmup_epochs=2),
        ScheduleSpec("exponential", warmup_epochs=1, warmup="exponential"),
        ScheduleSpec("onecycle"),
        ScheduleSpec("onecycle", params={"max_lr": 0.05}),
        ScheduleSpec("cyclic", params={"max_lr": 0.05, "base_lr": 0.01}),
        ScheduleSpec("plateau", warmup_epochs=1),
    ],
    ids=lambda s: f"{s.name}-w{s.warmup_epochs}-{sorted(s.params)}",
)
def test_schedules_keep_the_ratio_between_blocks(schedule: ScheduleSpec) -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = build_optimizer(net, OptimizerSpec("adam", layer_decay=0.5, params={"lr": 0.01}))
    sched = build_schedule(opt, schedule, epochs=EPOCHS, steps_per_epoch=SPE, mode="min")
    seen = []
    for epoch in range(EPOCHS):
        for _ in range(SPE):
            opt.step()
            sched.step_batch()
            lrs = [g["lr"] for g in opt.param_groups]
            seen.append(lrs[0])
            for g in opt.param_groups:
                assert g["lr"] == pytest.approx(lrs[0] * g["lr_scale"], rel=1e-9)
        sched.step_epoch(1.0 / (epoch + 1))
    assert len(set(seen)) > 1 or schedule.name == "plateau"  # the schedule did move the lrs
