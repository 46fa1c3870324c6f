"""A user's own arrays in a NumPy ``.npz`` archive (``x``, ``y``, optional ``x_test``, ``y_test``).

Split out of ``tunelab.data.files``, which holds the CSV reader and the target encoding both use.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Annotated

import numpy as np

from tunelab.data.bundle import DATASETS, RawData
from tunelab.data.files import TASK_RULE, TaskOption, _check_task, _existing_file, arrays_to_raw
from tunelab.errors import DataError
from tunelab.schema import Doc

__all__ = ["npz_file", "read_npz"]

_NPZ_HOW = "save the arrays with np.savez(path, x=features, y=targets[, x_test=..., y_test=...])"


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a NumPy ``.npz`` archive, read without unpickling anything.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.npz"
    >>> np.savez(p, x=np.zeros((2, 3)))
    >>> {k: v.shape for k, v in read_npz(p).items()}
    {'x': (2, 3)}
    """
    p = _existing_file(str(path), "NPZ")
    with p.open("rb") as f:
        magic = f.read(6)
    # Check the format first: np.load takes any other file for a pickle, and says only that.
    if magic == b"\x93NUMPY":
        raise DataError(f"{p}: holds a single .npy array, not an .npz archive; {_NPZ_HOW}")
    if not magic.startswith(b"PK"):
        raise DataError(f"{p}: is not an .npz archive (a zip file); {_NPZ_HOW}")
    try:
        with np.load(p, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except ValueError as e:  # an object array inside the archive is refused when read
        raise DataError(
            f"{p}: holds object (pickled) arrays, which are not loaded for safety; save plain numeric "
            f"or string arrays with np.savez ({e})"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{p}: not a readable .npz file ({e}); {_NPZ_HOW}") from None


@DATASETS.register(
    "npz",
    "A NumPy .npz archive with arrays x and y (optional x_test, y_test kept as the test split).",
    source="file",
)
def npz_file(
    *,
    path: Annotated[str, Doc("the .npz file, written by np.savez(path, x=..., y=...[, x_test=, y_test=])")],
    task: Annotated[TaskOption, Doc(f"auto: {TASK_RULE}")] = "auto",
) -> RawData:
    """Load ``x`` ``[N, *input_shape]`` and ``y`` ``[N]`` or ``[N, T]`` from a NumPy archive.

    ``x_test`` and ``y_test``, when present, are kept as the test split. With ``task: auto``,
    integer labels (at most 20 distinct) or text labels mean classification, other numbers regression.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(p, x=np.zeros((6, 1, 5)), y=np.array([0, 1, 2, 0, 1, 2]))
    >>> raw = npz_file(path=str(p))
    >>> raw.task, raw.x.shape, raw.x_test is None
    ('classification', (6, 1, 5), True)
    """
    _check_task(task, "data.task")
    p = _existing_file(path, "NPZ")
    arrays = read_npz(p)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(
            f"{p}: missing the arrays {missing}; the file holds {sorted(arrays) or 'no arrays'}. "
            "Save with np.savez(path, x=features, y=targets[, x_test=..., y_test=...])"
        )
    return arrays_to_raw(
        arrays["x"], arrays["y"], task, arrays.get("x_test"), arrays.get("y_test"), name=p.stem, source=str(p)
    )
