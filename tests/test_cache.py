"""tunelab.cache: entries built under a temporary name and renamed into place; what a killed build
leaves is removed by the next build; listing and clearing the cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tunelab import cache


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(parent: Path, name: str, pid: int, host: str | None = None, age: float = 0.0) -> Path:
    p = parent / f"{name}.tmp{pid}@{host or cache._host()}"
    p.mkdir()
    (p / "x.npy").write_bytes(b"half")
    if age:
        old = time.time() - age
        for q in (p / "x.npy", p):
            os.utime(q, (old, old))
    return p


def test_stale_temporary_entries_are_removed_and_live_ones_kept(tmp_path):
    day = cache.STALE_SECONDS
    dead = _temp(tmp_path, "csv_stream_a", _dead_pid())
    mine = _temp(tmp_path, "csv_stream_b", os.getpid())  # a build of this process, in progress
    parent = _temp(tmp_path, "csv_stream_c", os.getppid())  # alive
    elsewhere = _temp(tmp_path, "npz_stream_d", _dead_pid(), host="otherhost")  # cannot be asked
    elsewhere_old = _temp(tmp_path, "npz_stream_e", 1, host="otherhost", age=day + 60)
    reused_old = _temp(tmp_path, "npz_stream_f", os.getppid(), age=day + 60)  # a pid reused since
    dead_file = tmp_path / f"image_folder_1.npz.tmp{_dead_pid()}@{cache._host()}.k3j2"  # write_file's
    dead_file.write_bytes(b"half")
    ready = tmp_path / "csv_stream_g"
    ready.mkdir()
    removed = cache.remove_stale(tmp_path)
    assert sorted(removed) == sorted(p.name for p in (dead, elsewhere_old, reused_old, dead_file))
    assert all(p.exists() for p in (mine, parent, elsewhere, ready))
    assert not any(p.exists() for p in (dead, elsewhere_old, reused_old, dead_file))
    assert cache.remove_stale(tmp_path / "missing") == []


def test_build_folder_renames_a_finished_build_and_cleans_up_after_itself(tmp_path):
    leftover = _temp(tmp_path, "other", _dead_pid())  # a killed build of another entry
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp.name)
        (tmp / "table.json").write_text("{}")

    folder = tmp_path / "csv_stream_x"
    cache.build_folder(folder, build, done="table.json")
    cache.build_folder(folder, build, done="table.json")  # finished: not built again
    assert calls == [cache.temp_name("csv_stream_x")] and (folder / "table.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csv_stream_x"] and not leftover.exists()


def test_a_failed_build_leaves_nothing_and_a_lost_race_keeps_the_winners_copy(tmp_path):
    folder = tmp_path / "npz_stream_y"

    def fails(tmp: Path) -> None:
        (tmp / "x.npy").write_bytes(b"half")
        raise ValueError("bad archive")

    with pytest.raises(ValueError, match="bad archive"):
        cache.build_folder(folder, fails)
    assert list(tmp_path.iterdir()) == []

    def loses(tmp: Path) -> None:  # another process renames its copy into place meanwhile
        folder.mkdir()
        (folder / "x.npy").write_bytes(b"winner")
        (tmp / "x.npy").write_bytes(b"loser")

    cache.build_folder(folder, loses)
    assert (folder / "x.npy").read_bytes() == b"winner"
    assert [p.name for p in tmp_path.iterdir()] == ["npz_stream_y"]


def test_write_file_is_atomic_and_public(tmp_path):
    path = tmp_path / "sub" / "mnist1d.npz"
    cache.write_file(path, lambda f: np.savez(f, x=np.arange(3)))
    with np.load(path) as f:
        assert f["x"].tolist() == [0, 1, 2]
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["mnist1d.npz"]


def test_entries_and_clear_keep_live_builds(tmp_path):
    (tmp_path / "mnist1d.npz").write_bytes(b"x" * 100)
    (tmp_path / "csv_stream_z").mkdir()
    (tmp_path / "csv_stream_z" / "x.npy").write_bytes(b"y" * 50)
    live = _temp(tmp_path, "csv_stream_w", os.getpid())
    dead = _temp(tmp_path, "csv_stream_v", _dead_pid())
    listed = {e.name: e for e in cache.entries(tmp_path)}
    assert listed["mnist1d.npz"].bytes == 100 and listed["csv_stream_z"].bytes == 50
    assert [listed[p.name].state for p in (live, dead)] == ["building", "stale"]
    assert listed["csv_stream_z"].to_dict()["state"] == "ready"
    removed = cache.clear(tmp_path)
    assert sorted(e.name for e in removed) == sorted(["mnist1d.npz", "csv_stream_z", dead.name])
    assert [p.name for p in tmp_path.iterdir()] == [live.name]
    assert cache.entries(tmp_path / "missing") == []
