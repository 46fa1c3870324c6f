"""`make postgres` and `make chromium` (both run by `make test`): each installs its Debian package
only as root and says so; otherwise it says why not and which tests will skip.

`id` and `apt-get` are replaced by scripts on PATH, so nothing is installed and the outcome does
not depend on who runs the tests; the binaries are looked for where none are.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


# target -> the variable that says where its binaries are, pointed at a place with none.
WHERE = {"postgres": "PG_BINDIR_GLOB={tmp}/none/*/bin", "chromium": "CHROMIUM_BIN={tmp}/none/chromium"}


def make_target(
    tmp_path: Path, uid: int, with_apt: bool = True, target: str = "postgres"
) -> tuple[subprocess.CompletedProcess, str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    scripts = {"id": f"echo {uid}"}
    if with_apt:
        scripts["apt-get"] = f'echo "apt-get $*" >> {log}'
    for name, body in scripts.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    # Only the fake scripts and the shell's own tools: no initdb, chromium or apt-get of this machine.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sh", "ls", "echo", "true", "env"):
        if (found := shutil.which(tool)) is not None:
            (tools / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{fake}:{tools}"}
    proc = subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), target, WHERE[target].format(tmp=tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, log.read_text() if log.exists() else ""


def test_as_root_it_says_what_it_installs(tmp_path):
    proc, apt = make_target(tmp_path, uid=0)
    assert proc.returncode == 0, proc.stderr
    assert "installing Debian's postgresql for the study tests (root)" in proc.stdout
    assert "apt-get install -y -qq postgresql" in apt


def test_not_root_installs_nothing_and_says_the_test_will_skip(tmp_path):
    proc, apt = make_target(tmp_path, uid=1000)
    assert proc.returncode == 0, proc.stderr
    assert apt == ""
    assert "not root" in proc.stdout and "PostgreSQL study test will be skipped" in proc.stdout
    assert "sudo apt-get install postgresql" in proc.stdout  # how to get it


def test_as_root_without_apt_it_says_so(tmp_path):
    proc, _ = make_target(tmp_path, uid=0, with_apt=False)
    assert proc.returncode == 0, proc.stderr
    assert "no apt-get" in proc.stdout and "will be skipped" in proc.stdout


def test_chromium_as_root_it_says_what_it_installs(tmp_path):
    proc, apt = make_target(tmp_path, uid=0, target="chromium")
    assert proc.returncode == 0, proc.stderr
    assert "installing Debian's chromium for the report's browser tests (root)" in proc.stdout
    assert "apt-get install -y -qq chromium" in apt


def test_chromium_not_root_installs_nothing_and_says_the_tests_will_skip(tmp_path):
    proc, apt = make_target(tmp_path, uid=1000, target="chromium")
    assert proc.returncode == 0, proc.stderr
    assert apt == ""
    assert "not root" in proc.stdout and "browser tests will be skipped" in proc.stdout
    assert "sudo apt-get install chromium" in proc.stdout


def test_chromium_as_root_without_apt_it_says_so(tmp_path):
    proc, _ = make_target(tmp_path, uid=0, with_apt=False, target="chromium")
    assert proc.returncode == 0, proc.stderr
    assert "no apt-get" in proc.stdout and "will be skipped" in proc.stdout


def test_make_test_installs_postgres_wordnet_and_chromium():
    text = (ROOT / "Makefile").read_text()
    assert "\ntest: $(VENV)/.dev-installed postgres wordnet chromium\n" in text


def test_every_floor_test_the_makefile_names_exists():
    # `make floors` runs these node IDs; a moved or renamed test would make it fail in CI only.
    text = (ROOT / "Makefile").read_text()
    block = text.split("FLOOR_TESTS := \\\n", 1)[1].split("\n\n", 1)[0]
    ids = [line.strip().rstrip("\\").strip() for line in block.splitlines() if line.strip()]
    assert len(ids) > 10
    for node in ids:
        path, _, name = node.partition("::")
        assert (ROOT / path).is_file(), f"FLOOR_TESTS names {path}, which does not exist"
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(), f"FLOOR_TESTS names {node}, not found"


def make_wordnet(tmp_path: Path, uid: int) -> tuple[subprocess.CompletedProcess, str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "apt.log"
    for name, body in {"id": f"echo {uid}", "apt-get": f'echo "apt-get $*" >> {log}'}.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sh", "echo", "true", "["):
        if (found := shutil.which(tool)) is not None:
            (tools / tool).symlink_to(found)
    proc = subprocess.run(
        [MAKE, "-s", "-C", str(ROOT), "wordnet", f"WORDNET_DIR={tmp_path}/none"],
        env={**os.environ, "PATH": f"{fake}:{tools}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, log.read_text() if log.exists() else ""


def test_wordnet_as_root_it_says_what_it_installs(tmp_path):
    proc, apt = make_wordnet(tmp_path, uid=0)
    assert proc.returncode == 0, proc.stderr
    assert "installing Debian's wordnet-base for text_augment's synonyms (root)" in proc.stdout
    assert "apt-get install -y -qq wordnet-base" in apt


def test_wordnet_not_root_installs_nothing_and_says_the_tests_will_skip(tmp_path):
    proc, apt = make_wordnet(tmp_path, uid=1000)
    assert proc.returncode == 0, proc.stderr
    assert apt == "" and "WordNet tests will be skipped" in proc.stdout
    assert "sudo apt-get install wordnet-base" in proc.stdout
