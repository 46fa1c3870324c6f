"""`tunelab cache [--clear] [--json]`: the cache folder ($TUNELAB_CACHE) listed, then cleared."""

import json
import os


def test_cache_lists_then_clears_all_but_live_builds(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    (tmp_path / "mnist1d_v1.npz").write_bytes(b"x" * 2048)
    (tmp_path / "csv_stream_ab").mkdir()
    (tmp_path / "csv_stream_ab" / "x.npy").write_bytes(b"y" * 100)
    from tunelab.cache import temp_name

    live = tmp_path / temp_name("csv_stream_cd")  # this process's build, in progress
    live.mkdir()
    code, out, _ = cli(["cache", "--json"])
    listed = json.loads(out)
    assert code == 0 and listed["folder"] == str(tmp_path)
    states = {e["name"]: (e["bytes"], e["state"]) for e in listed["entries"]}
    assert states == {
        "csv_stream_ab": (100, "ready"),
        "mnist1d_v1.npz": (2048, "ready"),
        live.name: (0, "building"),
    }
    code, out, _ = cli(["cache"])
    assert code == 0 and "3 entries" in out and "2.1 KiB" in out and "(building)" in out
    code, out, _ = cli(["cache", "--clear"])
    assert code == 0 and out.startswith(f"removed 2 entries (2.1 KiB) from {tmp_path}")
    assert os.listdir(tmp_path) == [live.name]
    code, out, _ = cli(["cache", "--clear", "--json"])
    assert code == 0 and json.loads(out)["removed"] == []
