"""Schedules and warmups (tunelab.optim.schedules): reference tests against torch schedulers built
directly, closed forms for warmup, state for a resume, the errors' recipe paths, and the ratio
between blocks' learning rates kept under every schedule."""

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

from tunelab.optim.optimizers import build_optimizer
from tunelab.optim.schedules import (
    SCHEDULES,
    WARMUP_START_FACTOR,
    Horizon,
    Schedule,
    build_schedule,
    check_schedule,
)
from tunelab.spec import OptimizerSpec, ScheduleSpec


def _opt(name: str = "sgd", **params: Any) -> torch.optim.Optimizer:
    """An optimizer ``name`` over a one-layer model: a schedule reads only its parameter groups."""
    torch.manual_seed(0)
    return build_optimizer(nn.Linear(4, 2), OptimizerSpec(name, params=params))


S = WARMUP_START_FACTOR
EPOCHS, SPE = 6, 4  # small run: 6 epochs of 4 batches

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
def test_bad_schedule_params_name_the_path(spec: ScheduleSpec, path: str, raises_at) -> None:
    raises_at(path, lambda: build_schedule(_opt("sgd"), spec, EPOCHS, SPE))
    # the same error is available before any data or model exists
    raises_at(path, lambda: check_schedule(spec, OptimizerSpec("sgd"), EPOCHS))


def test_milestone_order_fails_at_recipe_validation(raises_at) -> None:
    # Entry.check is what the recipe loader runs: no epochs needed for this check.
    entry = SCHEDULES.get("multistep")
    raises_at("schedule.milestones", lambda: entry.check({"milestones": [2, 2]}, "schedule"))


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
