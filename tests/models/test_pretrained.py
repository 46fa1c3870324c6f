"""Pretrained weights: run directories, checkpoint files, hub sources (offline), and the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import tunelab
from tunelab.errors import ModelError, RecipeError, TunelabError
from tunelab.models import build_model, pretrained
from tunelab.models.pretrained import load_pretrained, load_state_dict_file, match_state_dict
from tunelab.spec import ModelSpec

SMALL_CNN = {"name": "cnn2d", "channels": [4], "hidden": [8]}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


def _net(outputs: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, outputs))


def _cnn(outputs: int) -> nn.Module:
    return build_model(
        ModelSpec("cnn2d", params={k: v for k, v in SMALL_CNN.items() if k != "name"}), (1, 8, 8), outputs
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tunelab run: a small CNN on the digits 0, 1, 2."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    torch.set_num_threads(1)
    result = tunelab.fit(
        {
            "data": {"name": "digits", "classes": [0, 1, 2]},
            "model": SMALL_CNN,
            "train": {"epochs": 2, "efficiency": False, "tensorboard": False},
        },
        out=out,
    )
    assert result.ok
    return out


# --- sources -----------------------------------------------------------------------------------


def test_run_directory_loads_its_final_weights_and_reinitializes_a_new_head(run_dir: Path) -> None:
    saved = torch.load(run_dir / "final.pt", weights_only=True)
    torch.manual_seed(1)
    net = _cnn(outputs=5)  # a new task: 5 classes instead of 3
    fresh_head = net.head[-1].weight.detach().clone()
    report = load_pretrained(net, run_dir)
    assert report["file"] == str(run_dir / "final.pt") and report["source"] == str(run_dir)
    assert report["reinitialized"] == ["head.4.weight", "head.4.bias"]
    assert report["missing"] == [] and report["unexpected"] == []
    assert set(report["loaded"]) == set(saved) - {"head.4.weight", "head.4.bias"}
    own = net.state_dict()
    for name in report["loaded"]:  # buffers (BN running statistics) are loaded too
        assert torch.equal(own[name], saved[name]), name
    assert torch.equal(net.head[-1].weight, fresh_head)  # the new head keeps its fresh init
    assert "head.4.weight (3, 8) -> (5, 8)" in report["warnings"][0]


def test_run_directory_without_final_uses_best(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text("{}")
    (tmp_path / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    net = _cnn(outputs=3)
    report = load_pretrained(net, tmp_path)
    assert report["file"].endswith("best.pt") and report["reinitialized"] == []


def test_directories_without_a_checkpoint_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not a tunelab run") as info:
        load_pretrained(_net(), tmp_path)
    assert info.value.path == "model.pretrained"
    (tmp_path / "recipe.yaml").write_text("{}")
    with pytest.raises(RecipeError, match="run without a checkpoint"):
        load_pretrained(_net(), tmp_path)


def test_missing_path_names_the_accepted_sources(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"no such file.*hf:REPO\[/FILE\] / timm:NAME") as info:
        load_pretrained(_net(), tmp_path / "nope.pt")
    assert info.value.path == "model.pretrained"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"epoch": 3, "state_dict": sd},
        lambda sd: {"model_state_dict": sd, "optimizer": {"lr": 0.1}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DataParallel
        lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},  # torch.compile
    ],
    ids=["plain", "state_dict", "model_state_dict", "dataparallel", "compiled"],
)
def test_checkpoint_file_layouts(wrap, tmp_path: Path) -> None:
    src = _net(seed=1)
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(src.state_dict()), path)
    net = _net(seed=2)
    report = load_pretrained(net, str(path))
    assert report["loaded"] == list(src.state_dict())
    for a, b in zip(src.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_files_that_are_not_state_dicts_are_model_errors(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelError, match="holds list, not a state dict"):
        load_state_dict_file(path)
    path = tmp_path / "dict.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ModelError, match="a dict with keys epoch, lr"):
        load_state_dict_file(path)
    path = tmp_path / "text.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(ModelError, match=r"weights_only=True"):
        load_state_dict_file(path)


def test_weights_only_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(_net(), path)  # a whole module: loading it would run arbitrary pickled code
    with pytest.raises(ModelError, match=r"torch.load\(weights_only=True\)"):
        load_pretrained(_net(), path)


def test_safetensors_file_without_the_package_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"")
    with pytest.raises(TunelabError, match="pip install safetensors"):
        load_state_dict_file(path)


# --- matching --------------------------------------------------------------------------------


def test_match_reports_every_category_without_copying() -> None:
    net = _net(outputs=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = dict(_net(outputs=5, seed=1).state_dict())
    state.pop("1.running_var")
    state["extra.weight"] = torch.zeros(1)
    r = match_state_dict(net, state)
    assert r["reinitialized"] == ["3.weight", "3.bias"]
    assert r["missing"] == ["1.running_var"] and r["unexpected"] == ["extra.weight"]
    assert "3.weight" not in r["loaded"] and "0.weight" in r["loaded"]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_missing_tensors_warn_and_are_reported(tmp_path: Path) -> None:
    state = _net(seed=1).state_dict()
    del state["0.bias"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    net = _net(seed=2)
    init_bias = net[0].bias.detach().clone()
    with pytest.warns(UserWarning, match=r"1 tensor\(s\) of the model are not in"):
        report = load_pretrained(net, path)
    assert report["missing"] == ["0.bias"] and "0.bias" in report["warnings"][-1]
    assert torch.equal(net[0].bias, init_bias)


def test_a_checkpoint_of_another_architecture_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(nn.Conv1d(1, 4, 3).state_dict(), path)
    with pytest.raises(ModelError, match="another architecture") as info:
        load_pretrained(_net(), path)
    assert "0.weight" in str(info.value)  # names a few tensors of each side


# --- hub sources (no network here: the download is replaced by a local file) -------------------


def test_hf_source_downloads_then_loads_like_a_local_file(tmp_path: Path, monkeypatch) -> None:
    src = _net(seed=1)
    local = tmp_path / "pytorch_model.bin"
    torch.save(src.state_dict(), local)
    calls = []

    def fake_download(repo: str, filename: str) -> str:
        calls.append((repo, filename))
        if filename != "pytorch_model.bin":
            raise FileNotFoundError(f"{filename} is not in {repo}")
        return str(local)

    monkeypatch.setattr(pretrained, "_hub_download", fake_download)
    net = _net(seed=2)
    report = load_pretrained(net, "hf:someone/tiny-net")
    assert report["file"] == str(local) and report["source"] == "hf:someone/tiny-net"
    assert torch.equal(net[0].weight, src[0].weight)
    assert calls[-1] == ("someone/tiny-net", "pytorch_model.bin")
    calls.clear()
    load_pretrained(_net(), "hf:someone/tiny-net/pytorch_model.bin")  # an explicit file
    assert calls == [("someone/tiny-net", "pytorch_model.bin")]
    calls.clear()
    load_pretrained(_net(), "timm:resnet18.a1_in1k")
    assert calls[-1] == ("timm/resnet18.a1_in1k", "pytorch_model.bin")


def test_hub_unreachable_says_to_pass_a_local_checkpoint(monkeypatch) -> None:
    def offline(repo: str, filename: str) -> str:
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(pretrained, "_hub_download", offline)
    with pytest.raises(TunelabError, match="hub is unreachable") as info:
        load_pretrained(_net(), "timm:resnet18")
    assert "ConnectionError" in str(info.value) and "model.pretrained=PATH" in str(info.value)


def test_hub_without_the_library_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(TunelabError, match="pip install huggingface_hub"):
        load_pretrained(_net(), "hf:someone/tiny-net")


@pytest.mark.parametrize("source", ["hf:", "timm:", "timm:a/b"])
def test_malformed_hub_names(source: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_pretrained(_net(), source)
    assert info.value.path == "model.pretrained"


# --- in fit ----------------------------------------------------------------------------------


def test_fit_starts_from_the_run_and_reports_it(run_dir: Path) -> None:
    saved = torch.load(run_dir / "final.pt", weights_only=True)
    result = tunelab.fit(
        {
            "data": {"name": "digits", "classes": [5, 6, 7, 8, 9], "train_fraction": 0.2},
            "model": {**SMALL_CNN, "pretrained": str(run_dir)},
            # A negligible lr: the trained conv weights stay the pretrained ones to float precision.
            "optimizer": {"name": "sgd", "lr": 1e-12},
            "train": {"epochs": 1, "efficiency": False},
        },
        save=False,
    )
    info = result.info["pretrained"]
    assert info["reinitialized"] == ["head.4.weight", "head.4.bias"]
    assert "features.0.weight" in info["loaded"]
    torch.testing.assert_close(result.model.features[0].weight, saved["features.0.weight"])


def test_only_batch_norm_counters_matching_is_still_another_architecture(run_dir: Path) -> None:
    # channels [8], hidden [16] and 4 classes instead of [4], [8] and 3: every weight differs in
    # shape; only BN's num_batches_tracked (a scalar counter of any architecture) matches.
    net = build_model(ModelSpec("cnn2d", params={"channels": [8], "hidden": [16]}), (1, 8, 8), 4)
    with pytest.raises(ModelError, match="no weight of"):
        load_pretrained(net, run_dir)


def test_more_weights_reinitialized_than_loaded_warns(run_dir: Path) -> None:
    # hidden [16] instead of [8] and 5 classes: the conv block loads (3 weights), the head's 5 do not.
    net = build_model(ModelSpec("cnn2d", params={"channels": [4], "hidden": [16]}), (1, 8, 8), 5)
    with pytest.warns(UserWarning, match="different architecture"):
        report = load_pretrained(net, run_dir)
    assert "features.0.weight" in report["loaded"] and "head.0.weight" in report["reinitialized"]
