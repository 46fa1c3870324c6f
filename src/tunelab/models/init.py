"""Weight initialization schemes (the recipe's ``model.init``), built on ``torch.nn.init``.

A scheme sets the weights of every Linear and Conv layer and of recurrent layers (GRU, LSTM, RNN);
biases become zero and normalization layers keep their own init (scale 1, shift 0).

    default          PyTorch's per-layer init, untouched
    uniform          U(-0.05, 0.05), not scaled by layer size
    normal           N(0, 0.05^2), not scaled by layer size
    xavier_uniform   U(-b, b), b = sqrt(6 / (fan_in + fan_out))         (Glorot & Bengio 2010)
    xavier_normal    N(0, 2 / (fan_in + fan_out))
    kaiming_uniform  U(-b, b), b = gain * sqrt(3 / fan_in)              (He et al. 2015)
    kaiming_normal   N(0, gain^2 / fan_in); gain = sqrt(2) for ReLU
    he_uniform, he_normal   other names of kaiming_uniform, kaiming_normal

Recurrent layers: the input-to-hidden matrix of each gate gets the scheme (kaiming with the tanh
gain, the nonlinearity of the cell's candidate state); the hidden-to-hidden matrix of each gate is
orthogonal for every scheme, because it is applied once per time step and only an orthogonal map
keeps the state's norm, so that gradients neither explode nor vanish over the sequence (Saxe et
al. 2014). The fan-in formulas do not account for that repetition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tunelab.errors import ModelError, RecipeError, did_you_mean
from tunelab.spec import INIT_SCHEMES

# Keras' RandomUniform / RandomNormal defaults: small enough that a shallow net starts in the
# linear range of its activations, and, unlike xavier / kaiming, not scaled by layer size, which
# is what an init ablation compares.
UNIFORM_BOUND = 0.05
NORMAL_STD = 0.05
# nn.LeakyReLU's default negative slope, so kaiming's gain matches the activation tunelab builds.
LEAKY_SLOPE = 0.01

ALIASES = {"he_uniform": "kaiming_uniform", "he_normal": "kaiming_normal"}
# torch.nn.init.calculate_gain knows no gain for gelu, elu and silu; they pass positive inputs
# like ReLU and damp negative ones, so ReLU's gain is the usual stand-in.
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "linear",
    "gelu": "relu",
    "elu": "relu",
    "silu": "relu",
}
_FEEDFORWARD = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _initializer(scheme: str, nonlinearity: str) -> Callable[[Tensor], object]:
    """The in-place ``torch.nn.init`` function for ``scheme`` (canonical name) and activation."""
    gain_name = _GAIN_NAME[nonlinearity]
    slope = LEAKY_SLOPE if gain_name == "leaky_relu" else 0.0
    return {
        "uniform": lambda w: nn.init.uniform_(w, -UNIFORM_BOUND, UNIFORM_BOUND),
        "normal": lambda w: nn.init.normal_(w, 0.0, NORMAL_STD),
        "xavier_uniform": nn.init.xavier_uniform_,
        "xavier_normal": nn.init.xavier_normal_,
        "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, a=slope, nonlinearity=gain_name),
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, a=slope, nonlinearity=gain_name),
    }[scheme]


@torch.no_grad()
def _init_recurrent(rnn: nn.RNNBase, weight_init: Callable[[Tensor], object]) -> int:
    """Per gate: ``weight_init`` on input-hidden, orthogonal on hidden-hidden; biases zero."""
    count = 0
    for name, p in rnn.named_parameters(recurse=False):
        if name.startswith("bias"):
            nn.init.zeros_(p)
            continue
        if name.startswith("weight_hr"):  # an LSTM's output projection: a plain feed-forward map
            weight_init(p)
        else:
            gates = p.shape[0] // rnn.hidden_size  # GRU 3, LSTM 4, RNN 1: rows are stacked per gate
            for chunk in p.chunk(gates, dim=0):  # views into p: [hidden, in] each
                (nn.init.orthogonal_ if name.startswith("weight_hh") else weight_init)(chunk)
        count += 1
    return count


def init_weights(model: nn.Module, scheme: str, *, nonlinearity: str = "relu") -> int:
    """Initialize ``model`` in place with ``scheme``; return the number of weight tensors set.

    ``nonlinearity`` is the activation that follows the layers (it sets kaiming's gain).
    ``"default"`` leaves PyTorch's init and returns 0.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> init_weights(net, "kaiming_normal")
    2
    >>> bool((net[0].bias == 0).all())
    True
    """
    if scheme not in INIT_SCHEMES:
        raise RecipeError(
            "model.init",
            scheme,
            "must be one of " + ", ".join(INIT_SCHEMES),
            did_you_mean(str(scheme), INIT_SCHEMES),
        )
    if nonlinearity not in _GAIN_NAME:
        raise RecipeError(
            "model.activation",
            nonlinearity,
            "init needs a known nonlinearity: one of " + ", ".join(_GAIN_NAME),
            did_you_mean(str(nonlinearity), _GAIN_NAME),
        )
    if scheme == "default":
        return 0
    scheme = ALIASES.get(scheme, scheme)
    weight_init = _initializer(scheme, nonlinearity)
    # A recurrent cell's candidate state goes through tanh, whatever the rest of the model uses.
    recurrent_init = _initializer(scheme, "tanh")
    count = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _FEEDFORWARD):
                weight_init(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                count += 1
            elif isinstance(m, nn.RNNBase):
                count += _init_recurrent(m, recurrent_init)
    if count == 0:
        raise ModelError(
            f"init {scheme!r} found no Linear, Conv or recurrent layer to initialize in "
            f"{type(model).__name__}; use init: default"
        )
    return count
