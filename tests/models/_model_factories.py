"""Model factories that tests/models/test_custom.py names as "_model_factories:<name>".

Imported through sys.path (monkeypatch.syspath_prepend), as a user's own module would be.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

NOT_CALLABLE = 3


def make_net(input_shape: tuple[int, ...], num_outputs: int, *, width: int = 8) -> nn.Module:
    """Flatten, one hidden layer of ``width``, outputs: uses both arguments tunelab passes."""
    features = 1
    for d in input_shape:
        features *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(features, width), nn.ReLU(), nn.Linear(width, num_outputs))


def fixed_net(width: int = 4) -> nn.Module:
    """A factory that takes neither input_shape nor num_outputs: 4 features in, 2 out."""
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 2))


def needs_depth(num_outputs: int, *, depth: int) -> nn.Module:
    """A required keyword parameter the recipe must give."""
    return nn.Sequential(*[nn.Linear(4, 4) for _ in range(depth)], nn.Linear(4, num_outputs))


def any_kwargs(**kwargs: Any) -> nn.Module:
    """Accepts any keyword; records them on the model so a test can see what it got."""
    net = nn.Linear(4, 2)
    net.received = dict(kwargs)  # type: ignore[assignment]
    return net


def positional_only(width: int, /) -> nn.Module:
    """Cannot be called with keywords, which is how tunelab calls factories."""
    return nn.Linear(4, width)


def not_a_module(width: int = 2) -> list[int]:
    """Returns something that is not an nn.Module."""
    return [width]


class TinyNet(nn.Module):
    """A class is a factory too: its __init__ parameters are the recipe keys."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.fc = nn.Linear(input_shape[0], num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) * self.scale
