"""tunelab's cache folder (``tunelab.io.cache_dir()``: ``$TUNELAB_CACHE``, else ``~/.cache/tunelab``):
what builds into it, what is left in it, and how it is cleared.

Everything in the cache can be rebuilt from its source (a dataset generated again, a folder
decoded again, a CSV or ``.npz`` read again): deleting any entry, or the whole folder, costs only
the time to rebuild it. An entry is built under a temporary name in the same folder,
``NAME.tmp<pid>@<host>``, then renamed into place, so a reader never sees half an entry.

A process killed mid-build leaves its temporary entry behind. ``build_folder`` first removes the
stale ones of the same cache folder: those of processes of this host that are no longer alive,
and any older than ``STALE_SECONDS`` (a pid can be reused; a process of another host sharing the
folder over a network file system cannot be asked, so only age removes its entries).

    >>> import tempfile
    >>> parent = Path(tempfile.mkdtemp())
    >>> (parent / "csv_stream_0.tmp999999999@elsewhere").mkdir()  # another host's build: kept
    >>> build_folder(parent / "entry", lambda tmp: (tmp / "done").touch(), done="done")
    >>> sorted(p.name for p in parent.iterdir())
    ['csv_stream_0.tmp999999999@elsewhere', 'entry']
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tunelab.io import cache_dir

__all__ = [
    "STALE_SECONDS",
    "Entry",
    "build_folder",
    "clear",
    "entries",
    "remove_stale",
    "temp_name",
    "write_file",
]

# A temporary entry this old is dead whatever its pid says: pids are reused, and no build of a
# cache entry (a CSV of many GB) takes a day.
STALE_SECONDS = 24 * 3600
# NAME.tmp<pid>@<host>[.anything]: the "anything" is mkstemp's random part for single files.
_TEMP = re.compile(r"\.tmp(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)(?:\..*)?$")


def _host() -> str:
    """This machine's name, reduced to letters, digits and dashes (a temporary name's last part)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", platform.node().split(".")[0]) or "localhost"


def temp_name(name: str) -> str:
    """The temporary name under which this process builds the cache entry ``name``.

    >>> temp_name("csv_stream_ab12").startswith(f"csv_stream_ab12.tmp{os.getpid()}@")
    True
    """
    return f"{name}.tmp{os.getpid()}@{_host()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    return True


def _newest_mtime(p: Path) -> float:
    """The latest modification time of ``p`` and, for a folder, of the entries directly in it."""
    times = [p.lstat().st_mtime]
    if p.is_dir() and not p.is_symlink():
        times += [c.lstat().st_mtime for c in p.iterdir()]
    return max(times)


def _is_stale(p: Path, now: float) -> bool:
    m = _TEMP.search(p.name)
    if m is None:
        return False
    pid = int(m["pid"])
    if m["host"] == _host() and pid != os.getpid() and not _alive(pid):
        return True
    try:
        return now - _newest_mtime(p) > STALE_SECONDS
    except OSError:  # removed meanwhile (its build finished and renamed it)
        return False


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def remove_stale(parent: Path | None = None) -> list[str]:
    """Remove the temporary entries of dead builds in ``parent`` (default: the cache folder); return
    their names. A folder that cannot be listed (missing, unreadable) has none."""
    parent = cache_dir() if parent is None else parent
    now = time.time()
    try:
        stale = [p for p in parent.iterdir() if _is_stale(p, now)]
    except OSError:
        return []
    for p in stale:
        _remove(p)
    return [p.name for p in stale]


def build_folder(folder: Path, build: Callable[[Path], None], done: str | None = None) -> None:
    """Build the cache folder ``folder`` once: ``build(tmp)`` fills a temporary folder beside it,
    which is then renamed into place; stale temporary entries of dead builds are removed first.

    ``done`` names the file whose presence marks a finished folder (None: the folder's presence,
    since only a finished build is renamed into place). When another process finished the same
    folder first (two DDP processes on one cache), its copy stays and this one is discarded.
    """
    if (folder / done).is_file() if done is not None else folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(folder.parent)
    tmp = folder.with_name(temp_name(folder.name))
    shutil.rmtree(tmp, ignore_errors=True)  # this pid's leftover, from a build that raised
    tmp.mkdir()
    try:
        build(tmp)
        os.replace(tmp, folder)  # fails when another process's copy is already in place
    except OSError:
        if not ((folder / done).is_file() if done is not None else folder.is_dir()):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write the cache file ``path`` with ``write(f)`` under a temporary name beside it, then rename
    it into place (a reader never sees half a file); stale temporary entries are removed first.
    An ``OSError`` (a read-only or full disk) is the caller's to ignore or raise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    # mkstemp adds a random part after the name: threads of one process never share a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_name(path.name) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; the cache holds public data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass(frozen=True)
class Entry:
    """One entry of the cache folder: its name, bytes on disk, last change, and whether it is a
    temporary entry (``building``: of a live build; ``stale``: of a dead one)."""

    name: str
    bytes: int
    modified: float
    state: str  # "ready", "building" or "stale"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "bytes": self.bytes, "modified": self.modified, "state": self.state}


def _size(p: Path) -> int:
    if p.is_dir() and not p.is_symlink():
        return sum(f.lstat().st_size for f in p.rglob("*") if not f.is_dir())
    return p.lstat().st_size


def entries(parent: Path | None = None) -> list[Entry]:
    """Every entry of the cache folder (default: ``cache_dir()``), by name; none when it is missing."""
    parent = cache_dir() if parent is None else parent
    now = time.time()
    out = []
    try:
        found = sorted(parent.iterdir())
    except OSError:
        return []
    for p in found:
        try:
            state = "ready" if _TEMP.search(p.name) is None else "stale" if _is_stale(p, now) else "building"
            out.append(Entry(p.name, _size(p), p.lstat().st_mtime, state))
        except OSError:  # removed while listed (a build renamed it)
            continue
    return out


def clear(parent: Path | None = None) -> list[Entry]:
    """Remove every entry of the cache folder but the temporary ones of live builds (removing those
    would fail the build); return what was removed. Runs reading a removed entry keep reading it
    (an open or memory-mapped file lives on until closed); later runs rebuild it."""
    parent = cache_dir() if parent is None else parent
    removed = [e for e in entries(parent) if e.state != "building"]
    for e in removed:
        _remove(parent / e.name)
    return removed
