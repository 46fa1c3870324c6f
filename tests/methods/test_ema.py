from __future__ import annotations

import pytest
import torch
from torch import nn

from tunelab.methods.ema import EMA, ema_update


def test_ema_update_closed_form():
    a, c, d = torch.tensor([0.0, 10.0, -4.0]), torch.tensor([1.0, 0.0, 2.0]), 0.9
    avg = [a.clone()]
    for _ in range(5):
        ema_update(avg, [c], d)
    # A constant target: avg_n = c + dⁿ·(a − c).
    torch.testing.assert_close(avg[0], c + d**5 * (a - c))


def test_ema_update_matches_reference_loop_and_copies_integers():
    torch.manual_seed(0)
    seq = [torch.randn(3, 2) for _ in range(4)]
    avg, ref = [torch.zeros(3, 2), torch.tensor(7)], torch.zeros(3, 2)
    for i, w in enumerate(seq):
        ema_update(avg, [w, torch.tensor(i)], 0.75)
        ref = 0.75 * ref + 0.25 * w
    torch.testing.assert_close(avg[0], ref)
    assert avg[1].item() == 3  # a counter is copied, not averaged
    with pytest.raises(ValueError):
        ema_update([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)], 0.5)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for t in [*model.parameters(), model[1].running_mean]:
            t.fill_(value)
        model[1].num_batches_tracked.fill_(int(value) * 10)


def test_adapter_closed_form_with_buffers(state_factory):
    model, d, n = _net(), 0.8, 6
    state = state_factory(model)
    m = EMA(decay=d)
    m.setup(state)
    a, c = 2.0, 5.0
    for step in range(1, n + 1):
        _set(model, a if step == 1 else c)  # weights a at the first step, c afterwards
        state.step = step
        m.after_step(state)
    avg = m.eval_model(state, model)
    assert avg is not model
    # The first update copies the weights (a); each later one moves towards c: c + dⁿ⁻¹·(a − c).
    expected = c + d ** (n - 1) * (a - c)
    for t in [*avg.parameters(), avg[1].running_mean]:
        torch.testing.assert_close(t, torch.full_like(t, expected))
    assert avg[1].num_batches_tracked.item() == 50  # copied from the model, not frozen by rounding


def test_adapter_update_every(state_factory):
    model, d = _net(), 0.5
    state = state_factory(model)
    m = EMA(decay=d, update_every=3)
    m.setup(state)
    for step in range(1, 8):
        _set(model, float(step))
        state.step = step
        m.after_step(state)
    # Updates at steps 3 (copy: 3) and 6 (0.5·3 + 0.5·6 = 4.5); step 7 is skipped.
    torch.testing.assert_close(m.averaged.module[0].weight, torch.full((3, 2), 4.5))


def test_adapter_averages_real_training_bn_statistics(state_factory):
    # Batch norm updates its running statistics in forward passes; the average follows them.
    model = _net()
    state = state_factory(model)
    m = EMA(decay=0.9)
    m.setup(state)
    ref = None
    for step in range(1, 4):
        model(torch.randn(8, 2) * step + step)
        state.step = step
        m.after_step(state)
        cur = model[1].running_var.clone()
        ref = cur if ref is None else 0.9 * ref + 0.1 * cur
    torch.testing.assert_close(m.averaged.module[1].running_var, ref)


def test_eval_model_choice(state_factory):
    model = _net()
    state = state_factory(model)
    ema = EMA()
    ema.setup(state)
    assert ema.eval_model(state, model) is ema.averaged.module
    raw = EMA(evaluate="model")
    raw.setup(state)
    assert raw.eval_model(state, model) is model
