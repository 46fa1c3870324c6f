"""Small file helpers every layer may use: atomic writes and JSON-safe numbers.

A crash or Ctrl-C mid-write must never leave a half-written file where a complete one is expected
(a checkpoint a resume would load, a result a study would read): every write goes to a temporary
file in the same directory, then replaces the target with one rename.

    >>> finite({"loss": float("nan"), "acc": [0.5, float("inf")]})
    {'loss': None, 'acc': [0.5, None]}
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch


def cache_dir() -> Path:
    """Where generated data is cached (MNIST-1D, decoded image folders, frozen text features):
    ``$TUNELAB_CACHE``, else ``~/.cache/tunelab``.

    >>> isinstance(cache_dir(), Path)
    True
    """
    return Path(os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab").expanduser()


def finite_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics dict, as floats: what a study keeps of a run's metrics (the
    per-class report and the confusion matrix stay in run directories; NaN is no number to keep).

    >>> finite_scalars({"accuracy": 0.9, "loss": float("nan"), "report": {}, "flag": True})
    {'accuracy': 0.9}
    """
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def finite(obj: Any) -> Any:
    """NaN/inf -> None so the JSON is valid (a diverged run has NaN losses)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once it is complete and flushed to disk.

    The data goes to a temporary file beside ``path`` (same filesystem, so the rename is atomic);
    on any error, or a KeyboardInterrupt, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and a rename: never a half-written checkpoint."""
    with atomic_open(path) as f:
        torch.save(obj, f)
