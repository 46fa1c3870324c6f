"""CSV tables larger than memory: read in chunks, preprocessed once into a float32 ``.npy`` file in
the cache, then read row by row through ``numpy.memmap`` (``tunelab.data.stream``).

``csv_table`` never holds the table; it reads the file three times with the one CSV reader of
``tunelab.data.files`` (the stdlib ``csv`` module, in chunks of ``CHUNK_ROWS`` rows: the cells are
parsed exactly as the in-memory path parses them):

1. **Labels and row digests.** The target column of every row (rows without one are dropped and
   counted, as in memory) and a 64-bit digest of each row's feature cells. The split is cut from
   the labels alone with the in-memory path's functions (``split_index``: ``data.split_seed``,
   stratified for classification), so the same rows land in the same splits. Exact duplicates
   within and across splits are found from the digests and the labels with ``find_duplicates``
   (the same rows dropped or kept as in memory; a 64-bit digest collides with odds of about
   N²/2⁶⁵: 10⁻⁷ at two million rows). ``data.train_fraction`` < 1 then keeps the same seeded
   subsample of train.
2. **The fit.** ``Preprocessing.fit`` (the in-memory path's object) on the train rows' cells, in the
   in-memory order, when they fit under ``data.memory_limit`` (estimated at ``BYTES_PER_CELL`` a
   cell); else on a uniform sample of train rows drawn with ``data.split_seed``, of
   ``memory_limit / (columns x BYTES_PER_CELL)`` rows (at least ``MIN_FIT_ROWS``). The run's
   ``info["preprocess"]["fit"]`` says which, and how many rows. Column types are detected on the
   same rows. Regression targets are scaled from every train target (they are in memory).
3. **The transform.** Chunk by chunk into ``x.npy`` (float32 ``[N, features]``, category codes
   included when ``preprocess.encoding: embedding``), written through ``np.lib.format.open_memmap``.

The result is cached in ``tunelab.io.cache_dir()/csv_stream_<key>/``, keyed by the file's path,
size and modification time and the recipe's ``data`` and ``preprocess`` sections: a change to any
rebuilds it. It is written into a temporary folder renamed into place when complete
(``tunelab.cache.build_folder``), so a crash leaves nothing that a later run trusts, and the next
build removes what a killed one left. A second run (a search trial, a resumed run) reads the
cache and not the CSV.

``preprocess.near_duplicates`` is refused for CSV files, streamed or not: their cells are not
numbers (``tunelab.data.splits``).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.cache import build_folder
from tunelab.data.bundle import DATASETS, SPLITS, Task
from tunelab.data.cleaning import find_duplicates
from tunelab.data.dedupe import NEAR_CELLS
from tunelab.data.files import (
    _cells,
    _check_row_lengths,
    _existing_file,
    _missing_label,
    check_header,
    csv_header,
    csv_rows,
    encode_target,
    target_values,
)
from tunelab.data.preprocess import Preprocessing
from tunelab.data.splits import split_index, subsample_train
from tunelab.errors import DataError, RecipeError
from tunelab.io import cache_dir
from tunelab.spec import DataSpec, PreprocessSpec

__all__ = ["BYTES_PER_CELL", "CHUNK_ROWS", "CsvTable", "csv_decoded_bytes", "csv_table"]

# Rows parsed and transformed at once: 8,192 rows of 40 text cells are ~20 MB as Python strings;
# smaller chunks cost more Python per row, larger ones more memory.
CHUNK_ROWS = 8192
# What one cell costs the in-memory path, which holds the table as Python strings before encoding
# it: a short str object (49 bytes + its length) and its pointer in the object array.
BYTES_PER_CELL = 64
# The fewest rows a sampled fit reads, whatever data.memory_limit says: below that, the category
# lists and quantiles of a table are too noisy to be worth the memory saved.
MIN_FIT_ROWS = 1000
# The cache's layout; a change to what it holds bumps it, so old folders are not read.
FORMAT = 1


@dataclass
class CsvTable:
    """A streamed CSV's preprocessed rows (``x_path``: float32 ``[N, *shape]``), its targets on the
    model's scale (``y``: int64 ``[N]`` or float32 ``[N, T]``), the rows of each split, and what a
    bundle says about them (the same as the in-memory path's)."""

    x_path: Path
    y: np.ndarray
    index: dict[str, np.ndarray]
    preprocessing: Preprocessing
    task: Task
    shape: tuple[int, ...]
    name: str
    class_names: list[str] | None
    label_values: list[Any] | None
    feature_names: list[str]
    meta: dict[str, Any]
    report: dict[str, Any]


@dataclass
class _Scan:
    """What pass 1 keeps of every row with a target: its target text, line and cells' digest."""

    header: list[str]
    features: list[str]
    y_text: list[str]
    lines: np.ndarray
    keys: np.ndarray  # uint64 [N]
    read: int  # data rows read, with or without a target


def _params(spec: DataSpec) -> dict[str, Any]:
    checked = DATASETS.get("csv").check(spec.params, "data")
    return {"delimiter": ",", "task": "auto", "id_column": None, **checked}


def csv_decoded_bytes(spec: DataSpec) -> int:
    """What the in-memory path would hold of this CSV (its cells as Python strings): rows (from the
    file's size and its first MiB's bytes per row) x columns x ``BYTES_PER_CELL``. An estimate."""
    params = _params(spec)
    p = _existing_file(params["path"], "CSV")
    with p.open("rb") as f:
        head = f.read(2**20)
    lines = max(1, head.count(b"\n"))
    columns = head.split(b"\n", 1)[0].count(params["delimiter"].encode()) + 1
    return int(p.stat().st_size / (len(head) / lines) * columns * BYTES_PER_CELL)


def csv_table(spec: DataSpec, preprocess: PreprocessSpec) -> CsvTable:
    """The recipe's CSV, split, cleaned and preprocessed as in memory, as a cached ``.npy`` file (see
    the module docstring); built on the first call, read from the cache after."""
    if preprocess.near_duplicates is not None:
        raise RecipeError("preprocess.near_duplicates", preprocess.near_duplicates, NEAR_CELLS)
    params = _params(spec)
    p = _existing_file(params["path"], "CSV")
    folder = _cache_folder(p, spec, preprocess)
    build_folder(folder, lambda tmp: _build(p, params, spec, preprocess, tmp), done="table.json")
    return _read(folder)


def _cache_folder(p: Path, spec: DataSpec, preprocess: PreprocessSpec) -> Path:
    st = p.stat()
    data = {k: v for k, v in asdict(spec).items() if k not in ("stream", "num_workers", "prefetch")}
    key = json.dumps(
        [FORMAT, str(p.resolve()), st.st_size, st.st_mtime_ns, data, asdict(preprocess)],
        sort_keys=True,
        default=str,
    )
    return cache_dir() / f"csv_stream_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _chunks(p: Path, params: dict[str, Any]) -> Iterator[tuple[list[list[str]], list[int], int]]:
    """The data rows that have a target, ``CHUNK_ROWS`` rows read at a time: (rows, their lines, how
    many rows were read); a DataError names a row of the wrong length."""
    rows = csv_rows(p, params["delimiter"])
    header = csv_header(p, next(rows, None))
    target = header.index(params["target"])
    while chunk := list(islice(rows, CHUNK_ROWS)):
        _check_row_lengths(p, header, [row for row, _ in chunk], [line for _, line in chunk])
        kept = [(row, line) for row, line in chunk if not _missing_label(row[target].strip())]
        yield [row for row, _ in kept], [line for _, line in kept], len(chunk)


def _scan(p: Path, params: dict[str, Any]) -> _Scan:
    """Pass 1: the targets, lines and cell digests of the rows with a target."""
    header = csv_header(p, next(csv_rows(p, params["delimiter"]), None))
    features = check_header(p, header, params["target"], params["id_column"])
    target, which = header.index(params["target"]), [header.index(f) for f in features]
    y_text: list[str] = []
    labels: dict[str, str] = {}  # one string object per distinct label, not one per row
    lines, keys = array("q"), array("Q")  # 8 bytes a row, not a Python int's 36
    read = 0
    for rows, at, n in _chunks(p, params):
        read += n
        if not rows:
            continue
        cells = _cells(list(zip(*rows, strict=True)), which)
        y_text += [labels.setdefault(t, t) for t in (row[target].strip() for row in rows)]
        lines.extend(at)
        # The row's cells as the in-memory duplicate check hashes them (tunelab.data.cleaning.row_keys).
        keys.extend(
            int.from_bytes(hashlib.sha1(repr(tuple(r)).encode()).digest()[:8]) for r in cells.tolist()
        )
    if not read:
        raise DataError(f"{p}: the CSV file has a header ({', '.join(header)}) but no data rows")
    if not y_text:
        raise DataError(f"{p}: the target column {params['target']!r} is empty or missing on every row")
    return _Scan(
        header, features, y_text, np.frombuffer(lines, np.int64), np.frombuffer(keys, np.uint64), read
    )


def _build(p: Path, params: dict[str, Any], spec: DataSpec, preprocess: PreprocessSpec, folder: Path) -> None:
    """The three passes (see the module docstring), written into ``folder``."""
    scan = _scan(p, params)
    values = target_values(p, params["target"], scan.y_text, scan.lines.tolist(), params["task"])
    del scan.y_text[:]  # the text of a million labels is tens of MB; the values are what is kept
    y, _, task, names, label_values = encode_target(values, None, params["task"], str(p))
    classification = task == "classification"
    if classification and len(np.unique(y)) < 2:
        raise DataError(f"{p}: the training data holds a single class; classification needs at least two")
    y = y if classification else y.reshape(len(y), -1)  # regression targets are always [N, T]
    index, duplicates = _split_rows(y, scan.keys, spec, preprocess, classification, names or [], str(p))
    pre, fit = _fit(p, params, scan, index["train"], y, task, spec, preprocess)
    shape = pre.output_shape((len(scan.features),))
    _transform(p, params, scan, pre, folder / "x.npy", shape)
    y_model = y if classification else pre.transform_y(y).astype(np.float32)
    np.save(folder / "y.npy", y_model)
    for s in SPLITS:
        np.save(folder / f"{s}.npy", index[s])
    meta: dict[str, Any] = {
        "loader": "csv",
        "source": "file",
        "target_column": params["target"],
        "id_column": params["id_column"],
        "delimiter": params["delimiter"],
    }
    if not classification:
        meta["targets"] = [params["target"]]
    if pre.embeddings() is not None:
        meta["embeddings"] = pre.embeddings()
    rows = {"read": scan.read, "dropped_missing_target": scan.read - len(y), "target": params["target"]}
    table = {
        "preprocessing": pre.to_json(),
        "task": task,
        "shape": list(shape),
        "name": p.stem,
        "class_names": names,
        "label_values": label_values,
        "feature_names": list(pre.table.columns) if pre.table is not None else scan.features,
        "meta": meta,
        "report": {"rows": rows, "duplicates": duplicates, **pre.notes, "fit": fit},
    }
    (folder / "table.json").write_text(json.dumps(table))  # last: its presence marks the folder done


def _split_rows(
    y: np.ndarray,
    keys: np.ndarray,
    spec: DataSpec,
    preprocess: PreprocessSpec,
    classification: bool,
    names: list[str],
    source: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The rows of each split, as ``make_bundle`` cuts, cleans and subsamples them, from the targets
    and the cells' digests alone."""
    index = split_index(y, spec, classification, names, source)
    index = {s: index[s] for s in SPLITS}  # find_duplicates reads them in this order
    found = find_duplicates({s: (keys[index[s]], y[index[s]]) for s in SPLITS})
    drop = preprocess.duplicates in ("drop", "auto")  # auto drops them for tables read from text
    if drop and found.total:
        index = {s: np.delete(index[s], found.drop[s]) for s in SPLITS}
    if spec.train_fraction < 1.0:  # after val and test are cut, as in memory
        keep = subsample_train(
            y[index["train"]], spec.train_fraction, spec.split_seed, classification, names, source
        )
        index["train"] = index["train"][keep]
    return index, found.report(drop, preprocess.duplicates)


def _fit(
    p: Path,
    params: dict[str, Any],
    scan: _Scan,
    train: np.ndarray,
    y: np.ndarray,
    task: str,
    spec: DataSpec,
    preprocess: PreprocessSpec,
) -> tuple[Preprocessing, str]:
    """Pass 2: the preprocessing fit on the train rows' cells (in train order, as in memory), or on a
    seeded sample of them when they would not fit under ``data.memory_limit``; and what it read."""
    per_row = len(scan.features) * BYTES_PER_CELL
    limit = None if spec.memory_limit is None else spec.memory_limit * 2**30
    rows, fit = train, f"all {len(train)} train rows"
    if limit is not None and len(train) * per_row > limit:
        n = min(len(train), max(MIN_FIT_ROWS, int(limit // per_row)))
        rows = np.sort(np.random.default_rng(spec.split_seed).choice(train, n, replace=False))
        fit = (
            f"a uniform sample of {n} of the {len(train)} train rows (seed data.split_seed), since all of "
            f"them would need ~{len(train) * per_row / 2**30:.2g} GiB > data.memory_limit"
        )
    cells = _read_cells(p, params, scan, rows)
    pre = Preprocessing.fit(cells, y[train], task=task, spec=preprocess, names=scan.features, text=True)
    return pre, fit


def _read_cells(p: Path, params: dict[str, Any], scan: _Scan, rows: np.ndarray) -> np.ndarray:
    """The feature cells of the rows ``rows`` (indices among the rows with a target), in that order."""
    which = [scan.header.index(f) for f in scan.features]
    wanted = np.sort(rows)
    found: list[list[str]] = []
    start = 0
    for chunk, _, _ in _chunks(p, params):
        stop = start + len(chunk)
        lo, hi = np.searchsorted(wanted, [start, stop])
        found += [chunk[r - start] for r in wanted[lo:hi].tolist()]
        start = stop
    cells = _cells(list(zip(*found, strict=True)), which)  # in file order
    return cells[np.searchsorted(wanted, rows)]


def _transform(
    p: Path, params: dict[str, Any], scan: _Scan, pre: Preprocessing, path: Path, shape: tuple[int, ...]
) -> None:
    """Pass 3: every row with a target, preprocessed, into the float32 ``.npy`` file ``path``."""
    which = [scan.header.index(f) for f in scan.features]
    n = len(scan.lines)
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, *shape)).flush()
    start = 0
    for chunk, at, _ in _chunks(p, params):
        if not chunk:
            continue
        cells = _cells(list(zip(*chunk, strict=True)), which)
        rows = pre.transform(cells, f"{p} (lines {at[0]}-{at[-1]})")
        # Mapped for one chunk only: the pages written leave this process's resident set with it.
        out = np.lib.format.open_memmap(path, mode="r+")
        out[start : start + len(rows)] = rows
        out.flush()
        del out
        start += len(rows)


def _read(folder: Path) -> CsvTable:
    d = json.loads((folder / "table.json").read_text())
    return CsvTable(
        x_path=folder / "x.npy",
        y=np.load(folder / "y.npy"),
        index={s: np.load(folder / f"{s}.npy") for s in SPLITS},
        preprocessing=Preprocessing.from_json(d["preprocessing"], str(folder / "table.json")),
        task=d["task"],
        shape=tuple(d["shape"]),
        name=d["name"],
        class_names=d["class_names"],
        label_values=d["label_values"],
        feature_names=d["feature_names"],
        meta=d["meta"],
        report=d["report"],
    )
