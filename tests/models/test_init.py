"""Weight init schemes: each gives the statistics of its formula; biases zero; norms untouched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models.init import NORMAL_STD, UNIFORM_BOUND, init_weights
from tunelab.spec import INIT_SCHEMES

FAN_IN, FAN_OUT = 400, 300  # 120,000 weights: sample std within about 0.5% of the true one


def _linear(scheme: str, nonlinearity: str = "relu", seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    assert init_weights(layer, scheme, nonlinearity=nonlinearity) == 1
    assert bool((layer.bias == 0).all())
    return layer.weight.detach()


def _assert_uniform(w: torch.Tensor, bound: float) -> None:
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound  # fills the range, not a narrower one
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # std of U(-b, b)


def test_uniform_and_normal_use_their_fixed_ranges() -> None:
    _assert_uniform(_linear("uniform"), UNIFORM_BOUND)
    w = _linear("normal")
    assert w.mean().item() == pytest.approx(0, abs=1e-3)
    assert w.std().item() == pytest.approx(NORMAL_STD, rel=0.02)


def test_xavier_matches_glorot_formulas() -> None:
    _assert_uniform(_linear("xavier_uniform"), math.sqrt(6 / (FAN_IN + FAN_OUT)))
    assert _linear("xavier_normal").std().item() == pytest.approx(math.sqrt(2 / (FAN_IN + FAN_OUT)), rel=0.02)


@pytest.mark.parametrize(
    ("nonlinearity", "gain"),
    [
        ("relu", math.sqrt(2)),
        ("gelu", math.sqrt(2)),  # stands in with ReLU's gain
        ("leaky_relu", math.sqrt(2 / (1 + 0.01**2))),
        ("tanh", 5 / 3),
        ("sigmoid", 1.0),
        ("linear", 1.0),
    ],
)
def test_kaiming_gain_follows_the_nonlinearity(nonlinearity: str, gain: float) -> None:
    std = gain / math.sqrt(FAN_IN)
    assert _linear("kaiming_normal", nonlinearity).std().item() == pytest.approx(std, rel=0.02)
    _assert_uniform(_linear("kaiming_uniform", nonlinearity), std * math.sqrt(3))


def test_he_names_are_aliases_of_kaiming() -> None:
    assert torch.equal(_linear("he_normal"), _linear("kaiming_normal"))
    assert torch.equal(_linear("he_uniform"), _linear("kaiming_uniform"))


@pytest.mark.parametrize("conv", [nn.Conv1d(16, 64, 5), nn.Conv2d(8, 64, 3)])
def test_conv_fan_in_counts_the_kernel(conv: nn.Module) -> None:
    fan_in = conv.in_channels * math.prod(conv.kernel_size)
    torch.manual_seed(0)
    assert init_weights(conv, "kaiming_normal") == 1
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert bool((conv.bias == 0).all())


def test_norm_layers_are_untouched_and_every_weight_counted() -> None:
    model = nn.Sequential(
        nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(8, 6), nn.Linear(6, 2)
    )
    with torch.no_grad():
        model[1].weight.fill_(0.5)
        model[1].bias.fill_(0.25)
    assert init_weights(model, "xavier_normal") == 3
    assert bool((model[1].weight == 0.5).all()) and bool((model[1].bias == 0.25).all())
    assert all(bool((m.bias == 0).all()) for m in (model[0], model[3], model[4]))


def test_default_leaves_pytorch_init() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    before = [p.detach().clone() for p in layer.parameters()]
    assert init_weights(layer, "default") == 0
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_every_recipe_scheme_runs_on_a_recurrent_model(scheme: str) -> None:
    model = nn.ModuleDict({"rnn": nn.GRU(5, 8, num_layers=2, bidirectional=True), "head": nn.Linear(16, 2)})
    # 2 layers x 2 directions x (weight_ih, weight_hh) + head weight
    assert init_weights(model, scheme) == (0 if scheme == "default" else 9)


def test_gru_hidden_weights_are_orthogonal_per_gate_and_input_weights_follow_the_scheme() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(300, 200)
    init_weights(gru, "xavier_uniform")
    for gate in gru.weight_hh_l0.detach().chunk(3):  # [200, 200] each: reset, update, new
        assert torch.allclose(gate @ gate.T, torch.eye(200), atol=1e-4)
    for gate in gru.weight_ih_l0.detach().chunk(3):  # [200, 300]: xavier on each gate's own fans
        _assert_uniform(gate, math.sqrt(6 / (300 + 200)))
    assert all(bool((getattr(gru, b) == 0).all()) for b in ("bias_ih_l0", "bias_hh_l0"))


def test_gru_input_weights_use_the_tanh_gain_under_kaiming() -> None:
    torch.manual_seed(0)
    gru = nn.GRU(400, 300)
    init_weights(gru, "kaiming_normal", nonlinearity="relu")
    assert gru.weight_ih_l0.std().item() == pytest.approx((5 / 3) / math.sqrt(400), rel=0.02)


def test_unknown_scheme_and_nonlinearity_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match='did you mean "xavier_uniform"') as info:
        init_weights(nn.Linear(2, 2), "xavier_unifrom")
    assert info.value.path == "model.init"
    with pytest.raises(RecipeError, match="known nonlinearity") as info:
        init_weights(nn.Linear(2, 2), "kaiming_normal", nonlinearity="softplus")
    assert info.value.path == "model.activation"


def test_a_scheme_that_would_initialize_nothing_raises() -> None:
    with pytest.raises(ModelError, match=r"found no Linear, Conv or recurrent layer.*use init: default"):
        init_weights(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)), "kaiming_uniform")


def test_lstm_with_projection_counts_each_weight_tensor() -> None:
    lstm = nn.LSTM(6, 8, proj_size=4)  # weight_ih [32, 6], weight_hh [32, 4], weight_hr [4, 8]
    assert init_weights(lstm, "xavier_uniform") == 3
    assert lstm.weight_hr_l0.abs().max().item() <= math.sqrt(6 / (8 + 4))
