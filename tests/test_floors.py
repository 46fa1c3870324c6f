""".ci/floors.py: the minimum of every dependency, read from pyproject.toml, for `make floors`."""

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("tomllib", reason="the floors script reads pyproject.toml with tomllib (Python 3.11+)")

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("floors", ROOT / ".ci" / "floors.py")
floors_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(floors_module)
floors = floors_module.floors


def write(tmp_path, dependencies, dev=()):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        "[project]\nname = 'x'\n"
        f"dependencies = {list(dependencies)!r}\n"
        f"[project.optional-dependencies]\ndev = {list(dev)!r}\n"
    )
    return path


def test_every_declared_dependency_but_torch_is_pinned_at_its_floor():
    text = (ROOT / "pyproject.toml").read_text()
    declared = re.findall(r'^\s*"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([^"]+)",', text, re.M)
    assert ("torch", declared[0][1]) == declared[0]  # torch comes first and is exempt
    pins = floors(ROOT / "pyproject.toml", ["dev"])
    assert not any(p.startswith("torch==") for p in pins)
    for name, version in declared[1:]:
        assert f"{name}=={version}" in pins


def test_the_projects_own_extras_are_inlined(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        "[project]\nname = 'x'\ndependencies = ['numpy>=1.24']\n[project.optional-dependencies]\n"
        "dev = ['pytest>=8.1.1', 'x[export]']\nexport = ['onnx>=1.16']\n"
    )
    assert floors(path, ["dev"]) == ["numpy==1.24", "pytest==8.1.1", "onnx==1.16"]


def test_extras_are_added_and_the_same_floor_twice_is_kept_once(tmp_path):
    path = write(
        tmp_path, ["torch>=2.11", "numpy>=1.24", "kornia[x]>=0.7.4"], ["pytest>=8.1.1", "numpy>=1.24"]
    )
    assert floors(path, []) == ["numpy==1.24", "kornia[x]==0.7.4"]
    assert floors(path, ["dev"]) == ["numpy==1.24", "kornia[x]==0.7.4", "pytest==8.1.1"]


@pytest.mark.parametrize(
    ("dependencies", "dev", "message"),
    [
        (["numpy"], [], "cannot read a minimum from 'numpy'"),
        (["numpy>=1.24,<3"], [], "write it as name>=X.Y"),
        (["numpy>=1.24; python_version<'3.12'"], [], "cannot read a minimum"),
        (["numpy>=1.24"], ["numpy>=1.26"], "numpy has two different floors"),
    ],
)
def test_what_it_cannot_pin_is_one_clear_line(tmp_path, dependencies, dev, message):
    with pytest.raises(SystemExit, match=re.escape(message)):
        floors(write(tmp_path, dependencies, dev), ["dev"])


def test_an_unknown_extra_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no extra docs"):
        floors(write(tmp_path, ["numpy>=1.24"]), ["docs"])
