"""The models package: the contract every registered family keeps, build_model and describe_model."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from tunelab.errors import ModelError, RecipeError
from tunelab.models import MODELS, build_model, describe_model
from tunelab.recipe import _named_section
from tunelab.spec import ModelSpec

# One shape of each kind a family may accept: tabular (F,), signal (C, L), image (C, H, W).
SHAPES = [(6,), (2, 12), (3, 8, 8)]
# The text-only families read token ids; their contract runs on ids in tests/models/test_text.py.
FAMILIES = [e.name for e in MODELS if e.name != "custom" and e.tags.get("text") is not True]
NUM_OUTPUTS = 3


def _build(name: str, shape: tuple[int, ...], seed: int = 0, num_outputs: int = NUM_OUTPUTS) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS.get(name).build(shape, num_outputs)


def _supported(name: str) -> list[tuple[int, ...]]:
    out = []
    for shape in SHAPES:
        try:
            _build(name, shape)
        except ModelError:
            continue
        out.append(shape)
    return out


CASES = [(name, shape) for name in FAMILIES for shape in _supported(name)]


def _task(shape: tuple[int, ...], n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A tiny learnable problem: the class is the argmax of a fixed linear map of the input."""
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, *shape, generator=g)  # [n, *shape]
    w = torch.randn(x[0].numel(), NUM_OUTPUTS, generator=g)  # [F, classes]
    return x, (x.flatten(1) @ w).argmax(1)  # [n]


def _eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


def test_every_family_supports_some_shape_and_rejects_the_others_with_a_fix() -> None:
    for name in FAMILIES:
        supported = _supported(name)
        assert supported, f"{name} builds for none of {SHAPES}"
        for shape in set(SHAPES) - set(supported):
            with pytest.raises(ModelError, match=rf"^{name} needs .*; got {re_shape(shape)}; use \w+"):
                _build(name, shape)


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_contract_output_shape_for_classification_and_regression(name: str, shape: tuple[int, ...]) -> None:
    x = torch.randn(5, *shape)
    for outputs in (NUM_OUTPUTS, 1):
        model = _build(name, shape, num_outputs=outputs).eval()
        assert model(x).shape == (5, outputs)


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_contract_backward_reaches_every_parameter(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape).train()
    x, y = _task(shape, n=8)
    nn.functional.cross_entropy(model(x), y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_contract_loss_decreases_on_a_tiny_learnable_problem(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape)
    x, y = _task(shape)
    before = _eval_loss(model, x, y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    after = _eval_loss(model, x, y)
    assert after < 0.7 * before, f"{name} {shape}: loss {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_contract_same_seed_gives_identical_weights_and_outputs(name: str, shape: tuple[int, ...]) -> None:
    a, b = _build(name, shape, seed=7).eval(), _build(name, shape, seed=7).eval()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    x = torch.randn(4, *shape)
    assert torch.equal(a(x), b(x))
    c = _build(name, shape, seed=8)
    assert any(
        not torch.equal(va, vc)
        for va, vc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_contract_state_dict_round_trip_gives_identical_outputs(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape, seed=0)
    x, y = _task(shape, n=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # move weights and BatchNorm running statistics off their initial values
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    restored = _build(name, shape, seed=1)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    model.eval()
    restored.eval()
    assert torch.equal(model(x), restored(x))


def test_registry_entries_are_described_and_their_params_have_defaults() -> None:
    assert set(MODELS.names()) == {
        "linear",
        "mlp",
        "cnn1d",
        "cnn2d",
        "resnet",
        "gru",
        "custom",
        "embedding_bag",
        "textcnn",
        "transformer",
    }
    for entry in MODELS:
        assert entry.description and "\n" not in entry.description
        required = [p.name for p in entry.params if p.required]
        assert required == (["factory"] if entry.name == "custom" else []), entry.name


def test_layered_families_share_the_ablation_parameter_names() -> None:
    for name in ("mlp", "cnn1d", "cnn2d", "resnet"):
        names = {p.name for p in MODELS.get(name).params}
        assert {"dropout", "batch_norm", "activation"} <= names, name
    assert "dropout" in {p.name for p in MODELS.get("gru").params}
    assert [p.name for p in MODELS.get("linear").params] == []


def test_recipe_section_validates_then_build_model_builds_it() -> None:
    raw = {"name": "cnn1d", "init": "he_normal", "channels": [4, 8], "dropout": 0, "batch_norm": False}
    spec = _named_section(ModelSpec, MODELS, raw, "model")
    assert spec.params == {"channels": (4, 8), "dropout": 0.0, "batch_norm": False}
    model = build_model(spec, (1, 40), 10)
    assert model(torch.zeros(2, 1, 40)).shape == (2, 10)
    assert not any(isinstance(m, (nn.Dropout, nn.BatchNorm1d)) for m in model.modules())
    assert all(bool((m.bias == 0).all()) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d)))


@pytest.mark.parametrize(
    ("raw", "path", "text"),
    [
        ({"name": "mlp", "dropout": 1.0}, "model.dropout", ">= 0 and < 1"),
        ({"name": "mlp", "activation": "relu6"}, "model.activation", 'did you mean "relu"'),
        ({"name": "cnn1d", "channels": []}, "model.channels", "at least one block"),
        ({"name": "resnet", "channels": []}, "model.channels", "at least one block"),
        ({"name": "gru", "batch_norm": False}, "model.batch_norm", "unknown key"),
        ({"name": "restnet"}, "model.name", 'did you mean "resnet"'),
    ],
)
def test_bad_model_sections_fail_validation_with_path(raw: dict, path: str, text: str) -> None:
    with pytest.raises(RecipeError, match=text) as info:
        _named_section(ModelSpec, MODELS, raw, "model")
    assert info.value.path == path


def test_build_model_rechecks_hand_made_specs() -> None:
    with pytest.raises(RecipeError, match="unknown parameter") as info:
        build_model(ModelSpec("mlp", params={"hiden": [8]}), (4,), 2)
    assert info.value.path == "model.hiden"
    assert 'did you mean "hidden"' in str(info.value)


def test_build_model_takes_kaiming_gain_from_the_model_activation() -> None:
    torch.manual_seed(0)
    fan_in = 400
    spec = ModelSpec("mlp", init="kaiming_normal", params={"hidden": [600], "activation": "tanh"})
    model = build_model(spec, (fan_in,), 2)
    std = model[1].weight.std().item()
    expected = (5 / 3) / fan_in**0.5  # tanh gain 5/3
    assert std == pytest.approx(expected, rel=0.03)


def test_build_model_default_init_keeps_pytorch_init() -> None:
    torch.manual_seed(0)
    built = build_model(ModelSpec("linear"), (5,), 2)
    torch.manual_seed(0)
    plain = MODELS.get("linear").build((5,), 2)
    assert torch.equal(built[1].weight, plain[1].weight)
    assert bool((built[1].bias != 0).any())  # PyTorch's bias init, not zeroed


def test_describe_model_counts_parameters_and_lists_leaf_layers() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    d = describe_model(model)
    assert d["class"] == "Sequential"
    assert d["parameters"] == (4 * 8 + 8) + 2 * 8 + (8 * 2 + 2)
    assert d["trainable"] == d["parameters"] - (4 * 8 + 8)
    assert [(r["name"], r["type"], r["parameters"]) for r in d["layers"]] == [
        ("0", "Linear", 40),
        ("1", "BatchNorm1d", 16),
        ("2", "ReLU", 0),
        ("3", "Linear", 18),
    ]
