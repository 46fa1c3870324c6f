"""A user's own data: CSV and NPZ files, and the array conversion they share with the Python API.

The task is inferred from the target unless the recipe says ``task: classification`` or
``task: regression``. The rule (``infer_task``): **classification** when the target holds
non-numeric values (strings, booleans) or integers with at most 20 distinct values; otherwise
**regression**. Class labels map to ``0..C-1`` in sorted order (numeric order for numbers), and
the original labels are kept as ``class_names``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = p.write_text("a,b,label\\n1,2,cat\\n3,4,dog\\n5,6,cat\\n")
    >>> raw = DATASETS.get("csv").build(path=str(p), target="label")
    >>> raw.task, raw.class_names, raw.y.tolist()
    ('classification', ['cat', 'dog'], [0, 1, 0])
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np

from tunelab.data.bundle import DATASETS, RawData, Task
from tunelab.data.table import MISSING_TEXT
from tunelab.errors import DataError, RecipeError, did_you_mean
from tunelab.schema import Doc

TaskOption = Literal["auto", "classification", "regression"]

# Integer targets with this many distinct values or fewer are taken as class labels (digits,
# grades, categories coded as numbers); more distinct integers look like counts or measurements.
MAX_AUTO_CLASSES = 20

TASK_RULE = (
    "classification when the target holds non-numeric values (strings, booleans) or integers with at "
    f"most {MAX_AUTO_CLASSES} distinct values, otherwise regression"
)

# How many offending row numbers an error message lists before "...".
_SHOW_ROWS = 5


# --- targets: task inference and label encoding ------------------------------------------------


def _is_numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "iuf"  # booleans ('b') count as labels, not as numbers


def infer_task(y: Any) -> Task:
    """The task a target implies: classification when it holds non-numeric values (strings,
    booleans) or integers with at most 20 distinct values; otherwise regression.

    Integer-valued floats (``1.0``) count as integers, since a label read from text has no dtype.

    >>> infer_task(["a", "b"]), infer_task([0, 1, 1]), infer_task([0.5, 1.5]), infer_task(list(range(50)))
    ('classification', 'classification', 'regression', 'regression')
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"  # several target columns: a multi-output regression
    y = y.reshape(-1)
    if not _is_numeric(y):
        return "classification"
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    integral = bool(np.all(finite == np.round(finite)))
    if integral and len(np.unique(finite)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _label_text(v: Any) -> str:
    """'3' for 3 and for 3.0, '0.5' for 0.5, 'cat' for 'cat'."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def encode_labels(
    y: np.ndarray, y_test: np.ndarray | None = None, source: str = "y"
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Map labels to int64 codes ``0..C-1`` in sorted order; the same map applies to ``y_test``.

    >>> codes, _, names = encode_labels(np.array(["b", "a", "b"]))
    >>> codes.tolist(), names
    ([1, 0, 1], ['a', 'b'])
    """
    if _is_numeric(y) and y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        bad = np.flatnonzero(~np.isfinite(y))
        raise DataError(
            f"{source}: {len(bad)} class labels are NaN or inf (first at index {bad[0]}); "
            "drop those samples or give them a label"
        )
    if not _is_numeric(y):
        y = y.astype(str)  # booleans and mixed objects become their text
    classes = np.unique(y)
    codes = np.searchsorted(classes, y).astype(np.int64)
    test_codes = None
    if y_test is not None:
        y_test = y_test if _is_numeric(y) else y_test.astype(str)
        test_codes = np.searchsorted(classes, y_test).astype(np.int64)
        known = np.isin(y_test, classes)
        if not np.all(known):
            unknown = sorted({_label_text(v) for v in np.asarray(y_test)[~known]})
            raise DataError(
                f"{source}: the test labels {unknown[:_SHOW_ROWS]} never occur in the training labels "
                f"{[_label_text(c) for c in classes[:MAX_AUTO_CLASSES]]}; a model cannot learn a class "
                "it never sees: drop those test samples or add training samples of that class"
            )
    return codes, test_codes, [_label_text(c) for c in classes]


def _check_task(task: str, path: str) -> None:
    allowed = get_args(TaskOption)
    if task not in allowed:
        hint = did_you_mean(str(task), allowed)
        raise RecipeError(path, task, "must be one of " + ", ".join(allowed), hint)


def arrays_to_raw(
    x: Any,
    y: Any,
    task: TaskOption = "auto",
    x_test: Any = None,
    y_test: Any = None,
    *,
    name: str = "",
    feature_names: Sequence[str] | None = None,
    source: str = "arrays",
) -> RawData:
    """``RawData`` from numpy arrays (or anything ``np.asarray`` reads), inferring the task.

    Classification labels are encoded ``0..C-1`` (``encode_labels``); regression targets become
    float32. ``source`` names the data in error messages.

    >>> raw = arrays_to_raw(np.ones((4, 2)), [10, 20, 10, 20])
    >>> raw.task, raw.y.tolist(), raw.class_names
    ('classification', [0, 1, 0, 1], ['10', '20'])
    """
    _check_task(task, "data.task")
    if (x_test is None) != (y_test is None):
        raise DataError(f"{source}: give both x_test and y_test, or neither (only one was given)")
    x_arr = _features(x, source, "x")
    y_arr = _target(y, len(x_arr), source, "y")
    xt_arr = yt_arr = None
    if x_test is not None:
        xt_arr = _features(x_test, source, "x_test")
        yt_arr = _target(y_test, len(xt_arr), source, "y_test")
        if xt_arr.shape[1:] != x_arr.shape[1:]:
            raise DataError(
                f"{source}: x_test has samples of shape {xt_arr.shape[1:]} but x has {x_arr.shape[1:]}; "
                "both must have the same features"
            )
    y_arr, yt_arr, resolved, names, values = encode_target(y_arr, yt_arr, task, source)
    return RawData(
        x_arr,
        y_arr,
        resolved,
        x_test=xt_arr,
        y_test=yt_arr,
        class_names=names,
        feature_names=list(feature_names) if feature_names is not None else None,
        name=name,
        label_values=values,
    )


def encode_target(
    y: np.ndarray, y_test: np.ndarray | None, task: TaskOption, source: str
) -> tuple[np.ndarray, np.ndarray | None, Task, list[str] | None, list[Any] | None]:
    """``(y, y_test, task, class_names, label_values)``: the task inferred (``task: auto``) and the
    targets encoded for it, as ``arrays_to_raw`` does (shared with the streamed CSV reader).

    >>> y, _, task, names, _ = encode_target(np.array(["b", "a"]), None, "auto", "data")
    >>> y.tolist(), task, names
    ([1, 0], 'classification', ['a', 'b'])
    """
    resolved: Task = infer_task(y) if task == "auto" else task
    names = values = None
    if resolved == "classification":
        if y.ndim != 1:
            raise DataError(
                f"{source}: classification needs one label per sample (y of shape [N]); got y of shape "
                f"{y.shape}. For several numeric targets use task: regression"
            )
        labels = y
        y, y_test, names = encode_labels(y, y_test, source)
        values = label_values(labels, names)
    else:
        y = _regression_target(y, source, "y", task)
        if y_test is not None:
            y_test = _regression_target(y_test, source, "y_test", task)
            if y_test.shape[1:] != y.shape[1:]:
                raise DataError(f"{source}: y_test has shape {y_test.shape} but y has {y.shape}")
    return y, y_test, resolved, names, values


def label_values(labels: np.ndarray, names: list[str]) -> list[Any]:
    """The original label of each class (the order of ``encode_labels``), as plain JSON values:
    numbers stay numbers (``3.0`` read from text becomes ``3``), anything else is its text.

    >>> label_values(np.array([2.0, 10.0, 2.0]), ["2", "10"]), label_values(np.array(["b", "a"]), ["a", "b"])
    ([2, 10], ['a', 'b'])
    """
    if not _is_numeric(labels):
        return list(names)
    out: list[Any] = []
    for v in np.unique(labels).tolist():  # encode_labels' order: sorted, numerically
        out.append(int(v) if isinstance(v, float) and v.is_integer() else v)
    return out


def _features(x: Any, source: str, key: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind in "OUS" and a.ndim == 2 and len(a):
        # A table with text cells: its column types are detected and encoded by the preprocessing.
        return np.where(a == "", None, a).astype(object) if a.dtype.kind != "O" else a
    if a.dtype.kind not in "biuf":
        raise DataError(
            f"{source}: {key} must be numbers, or a table [N, F] of cells (text, numbers, None); got "
            f"values of type {a.dtype} and shape {list(a.shape)}"
        )
    if a.ndim == 0 or len(a) == 0:
        raise DataError(f"{source}: {key} holds no samples (shape {a.shape})")
    if a.ndim == 1:
        a = a[:, None]  # a 1-D x is N samples of one feature
    return a.astype(np.float32)


def _target(y: Any, n: int, source: str, key: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]  # a column vector is one target
    if a.ndim == 0 or a.ndim > 2:
        raise DataError(f"{source}: {key} must have shape [N] or [N, T]; got {a.shape}")
    if len(a) != n:
        x_key = key.replace("y", "x")
        raise DataError(f"{source}: {x_key} has {n} samples but {key} has {len(a)}; they must match")
    return a


def _regression_target(y: np.ndarray, source: str, key: str, task: str) -> np.ndarray:
    if not _is_numeric(y):
        try:
            return y.astype(np.float32)  # numbers stored as text, e.g. np.array(["1.5", "2"])
        except (TypeError, ValueError):
            pass
        first = next((v for v in y.reshape(-1) if not _is_number(v)), y.reshape(-1)[0])
        hint = "" if task == "regression" else f" (inferred by the rule: {TASK_RULE})"
        raise DataError(
            f"{source}: regression needs numeric targets but {key} holds {_label_text(first)!r}{hint}; "
            "use task: classification for labels"
        )
    return y.astype(np.float32)


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, (bool, np.bool_))


# --- csv ---------------------------------------------------------------------------------------


def _check_csv_params(params: Mapping[str, Any], path: str) -> None:
    delimiter = params.get("delimiter", ",")
    if len(delimiter) != 1:
        raise RecipeError(f"{path}.delimiter", delimiter, 'must be one character, e.g. "," ";" or "\\t"')


def _existing_file(path: str, kind: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{kind} file not found: {p} (resolved to {p.resolve()}); check data.path")
    if not p.is_file():
        raise DataError(f"{kind} path is not a file: {p}; data.path must name a single {kind} file")
    return p


def csv_rows(p: Path, delimiter: str) -> Iterator[tuple[list[str], int]]:
    """Each non-blank row of a CSV file (the header first) and its line number, read lazily: the
    one reader of CSV files, for the whole table and for the streamed one (``tunelab.data.stream_csv``)."""
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if "".join(row).strip():  # a blank line, or only empty cells: skipped
                    yield row, reader.line_num
    except UnicodeDecodeError as e:
        raise DataError(
            f"{p}: is not UTF-8 text ({e.reason} at byte {e.start}); save the CSV as UTF-8"
        ) from None
    except csv.Error as e:
        raise DataError(f"{p}: not a readable CSV file ({e})") from None


def csv_header(p: Path, first: tuple[list[str], int] | None) -> list[str]:
    """The column names of the first row ``first`` (None: the file is empty)."""
    if first is None:
        raise DataError(f"{p}: the CSV file is empty; it needs a header row of column names and data rows")
    return [c.strip() for c in first[0]]


def _read_rows(p: Path, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's line number; blank lines are skipped."""
    rows_lines = csv_rows(p, delimiter)
    header = csv_header(p, next(rows_lines, None))
    rows: list[list[str]] = []
    lines: list[int] = []
    for row, line in rows_lines:
        rows.append(row)
        lines.append(line)
    if not rows:
        raise DataError(f"{p}: the CSV file has a header ({', '.join(header)}) but no data rows")
    return header, rows, lines


def _parse_column(values: list[str], column: str, lines: list[int], p: Path, what: str) -> np.ndarray:
    """Floats of one column (NaN for empty cells); a DataError names the first non-numeric cell."""
    cells = [v.strip() for v in values]
    try:
        return np.array([c if c else "nan" for c in cells], dtype=np.float64)
    except ValueError:
        pass  # find the offending cell below, to name it
    out = np.empty(len(cells), dtype=np.float64)
    for i, c in enumerate(cells):
        if c and not _is_number(c):
            raise DataError(
                f"{p}: {what} column {column!r} holds the non-numeric value {c!r} on line {lines[i]} "
                f"(data row {i + 1}); features must be numbers: encode the column as numbers "
                "(e.g. one-hot or ordinal codes) or drop it"
            )
        out[i] = float(c) if c else np.nan
    return out


def _non_finite_error(p: Path, column: str, bad: np.ndarray, lines: list[int], n: int, fix: str) -> DataError:
    where = ", ".join(str(lines[i]) for i in bad[:_SHOW_ROWS]) + (", ..." if len(bad) > _SHOW_ROWS else "")
    return DataError(
        f"{p}: column {column!r} has {len(bad)} of {n} rows empty, NaN or inf (lines {where}); {fix}"
    )


@DATASETS.register(
    "csv",
    "A CSV file with a header row: feature columns (numbers, text, missing values) and one target column.",
    source="file",
    validate=_check_csv_params,
)
def csv_file(
    *,
    path: Annotated[str, Doc("the CSV file (a header row of column names, then one sample per row)")],
    target: Annotated[str, Doc("name of the column to predict; every other column is a feature")],
    task: Annotated[
        TaskOption,
        Doc(f"auto: {TASK_RULE}"),
    ] = "auto",
    delimiter: Annotated[str, Doc('the field separator, e.g. "," ";" or "\\t"')] = ",",
    id_column: Annotated[
        str | None, Doc("a column naming each row (kept out of the features; `tunelab predict` echoes it)")
    ] = None,
) -> RawData:
    """Load a CSV file: every column but ``target`` (and ``id_column``) is a feature.

    The features are kept as text cells (empty or ``NA``-like cells are missing): the recipe's
    ``preprocess:`` section detects each column's type on the train split, imputes, encodes and
    scales it (``tunelab.data.table``). Rows whose target is missing are dropped and counted.

    With ``task: auto`` the target decides: classification when it holds non-numeric values
    (strings, booleans) or integers with at most 20 distinct values; otherwise regression. Class
    labels map to ``0..C-1`` in sorted order and ``class_names`` keeps the labels' text.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "houses.csv"
    >>> _ = p.write_text("rooms,area,price\\n3,70,210.5\\n4,95,299.9\\n2,50,150.0\\n")
    >>> raw = csv_file(path=str(p), target="price")
    >>> raw.task, raw.feature_names, raw.x.shape
    ('regression', ['rooms', 'area'], (3, 2))
    """
    _check_task(task, "data.task")
    _check_csv_params({"delimiter": delimiter}, "data")
    p = _existing_file(path, "CSV")
    header, rows, lines = _read_rows(p, delimiter)
    features = check_header(p, header, target, id_column)
    _check_row_lengths(p, header, rows, lines)
    cols = list(zip(*rows, strict=True))  # rows all have len(header) fields, checked above
    index = {h: j for j, h in enumerate(header)}
    x = _cells(cols, [index[f] for f in features])
    known, y_text = _known_targets(p, target, [c.strip() for c in cols[index[target]]])
    x, lines = x[known], list(np.asarray(lines)[known])
    y = target_values(p, target, y_text, lines, task)
    raw = arrays_to_raw(x, y, task, name=p.stem, feature_names=features, source=str(p))
    raw.meta.update(target_column=target, id_column=id_column, delimiter=delimiter)
    raw.meta["cleaning"] = {
        "rows": {"read": len(rows), "dropped_missing_target": int((~known).sum()), "target": target}
    }
    if raw.task == "regression":
        raw.meta["targets"] = [target]
    return raw


def check_header(p: Path, header: list[str], target: str, id_column: str | None) -> list[str]:
    """The feature columns of a CSV ``header`` (every column but the target and the id column); a
    DataError for a repeated or numeric header, or a target or id column that is not there."""
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{p}: the header repeats the column names {dupes}; give each column a unique name")
    if all(_is_number(h) for h in header):
        raise DataError(
            f"{p}: the first row ({', '.join(header[:_SHOW_ROWS])}, ...) holds only numbers; the CSV needs a "
            "header row of column names as its first line"
        )
    for column, what in ((target, "target"), (id_column, "id")):
        if column is not None and column not in header:
            hint = did_you_mean(column, header)
            raise DataError(
                f"{p}: no {what} column {column!r}; the columns are: {', '.join(header)}"
                + (f" ({hint})" if hint else "")
                + ("; set data.target to one of them" if what == "target" else "; set data.id_column to one "
                   "of them, or drop it")
            )  # fmt: skip
    if id_column == target:
        raise DataError(f"{p}: data.id_column and data.target are both {target!r}; they must differ")
    features = [h for h in header if h not in (target, id_column)]
    if not features:
        raise DataError(f"{p}: the only column is the target {target!r}; a model needs feature columns")
    return features


def target_values(p: Path, target: str, y_text: Sequence[str], lines: Sequence[int], task: str) -> np.ndarray:
    """The known targets' values: floats when every one is a number, else their text (labels); a
    DataError for a non-numeric target with ``task: regression``, naming its line."""
    numeric = all(_is_number(c) for c in y_text)
    if task == "regression" and not numeric:
        i = next(i for i, c in enumerate(y_text) if not _is_number(c))
        raise DataError(
            f"{p}: task is regression but the target column {target!r} holds the non-numeric value "
            f"{y_text[i]!r} on line {lines[i]}; use task: classification for labels, or fix that value"
        )
    return np.array([float(c) for c in y_text]) if numeric else np.array(y_text)


def _known_targets(p: Path, target: str, y_text: list[str]) -> tuple[np.ndarray, list[str]]:
    """Which rows have a target, and those targets: a row without one cannot train or score, so
    it is dropped (and counted in the run's info)."""
    known = np.array([not _missing_label(c) for c in y_text])
    if not known.any():
        raise DataError(f"{p}: the target column {target!r} is empty or missing on every row")
    return known, [c for c, k in zip(y_text, known, strict=True) if k]


def _missing_label(cell: str) -> bool:
    if cell in MISSING_TEXT:
        return True
    try:
        return not math.isfinite(float(cell))
    except ValueError:
        return False  # a text label


def _cells(cols: list[tuple[str, ...]], which: list[int]) -> np.ndarray:
    """The text cells of the columns ``which``, as an object array ``[N, F]`` (None: missing)."""
    out = np.empty((len(cols[0]) if cols else 0, len(which)), dtype=object)
    for k, j in enumerate(which):
        out[:, k] = [None if (t := c.strip()) in MISSING_TEXT else t for c in cols[j]]
    return out


def _check_row_lengths(p: Path, header: list[str], rows: list[list[str]], lines: list[int]) -> None:
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise DataError(
                f"{p}: line {line} has {len(row)} fields but the header has {len(header)} columns; "
                "every row needs one value per column (check for a stray delimiter or a missing value, "
                "or set data.delimiter if the file uses another separator)"
            )


def _parse_features(
    p: Path, header: list[str], cols: list[tuple[str, ...]], lines: list[int], features: list[str]
) -> np.ndarray:
    """float64 ``[N, F]`` of the ``features`` columns; a DataError names a non-numeric or missing value."""
    index = {h: j for j, h in enumerate(header)}
    n = len(lines)
    x = np.empty((n, len(features)), dtype=np.float64)
    for k, name in enumerate(features):
        x[:, k] = _parse_column(list(cols[index[name]]), name, lines, p, "feature")
    bad_cols = [(name, np.flatnonzero(~np.isfinite(x[:, k]))) for k, name in enumerate(features)]
    bad_cols = [(name, bad) for name, bad in bad_cols if len(bad)]
    if bad_cols:
        name, bad = bad_cols[0]
        others = f" (also in {', '.join(repr(c) for c, _ in bad_cols[1:])})" if len(bad_cols) > 1 else ""
        raise _non_finite_error(
            p,
            name,
            bad,
            lines,
            n,
            f"impute them (e.g. with the column's train median) or drop those rows{others}",
        )
    return x


def read_feature_csv(
    path: str | Path,
    features: Sequence[str],
    id_column: str | None = None,
    delimiter: str = ",",
    *,
    cells: bool = False,
) -> tuple[np.ndarray, list[str] | None]:
    """The ``features`` columns of a CSV file, in that order, as float32 ``[N, F]`` (or, with
    ``cells``, the text cells as ``csv_file`` reads a table: an object array, None for a missing
    cell), and the text of its ``id_column`` (None when the file has no such column). Other columns
    are ignored.

    Read, and checked, as training data was read: a missing column is a DataError naming it; as
    numbers, so is a non-numeric cell or an empty/NaN/inf value (a table's cells are checked by
    its preprocessing, which imputes missing values).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "new.csv"
    >>> _ = p.write_text("id,b,a,note\\n7,2,1,x\\n8,4,3,y\\n")
    >>> x, ids = read_feature_csv(p, ["a", "b"], id_column="id")
    >>> x.tolist(), ids
    ([[1.0, 2.0], [3.0, 4.0]], ['7', '8'])
    """
    p = _existing_file(str(path), "CSV")
    header, rows, lines = _read_rows(p, delimiter)
    dupes = sorted({h for h in header if header.count(h) > 1 and h in features})
    if dupes:
        raise DataError(f"{p}: the header repeats the column names {dupes}; give each column a unique name")
    missing = [f for f in features if f not in header]
    if missing:
        more = f", ... ({len(missing)} in all)" if len(missing) > _SHOW_ROWS else ""
        shown = ", ".join(missing[:_SHOW_ROWS]) + more
        hint = did_you_mean(missing[0], header)
        raise DataError(
            f"{p}: missing the feature column(s) {shown}"
            + (f" ({hint})" if hint else "")
            + f"; the model was trained on {len(features)} columns: {', '.join(list(features)[:8])}"
            + (", ..." if len(features) > 8 else "")
            + "; the file has: "
            + ", ".join(header[:8])
            + (", ..." if len(header) > 8 else "")
        )
    _check_row_lengths(p, header, rows, lines)
    cols = list(zip(*rows, strict=True))
    ids = None
    if id_column is not None and id_column in header:
        ids = [c.strip() for c in cols[header.index(id_column)]]
    if cells:
        return _cells(cols, [header.index(f) for f in features]), ids
    x = _parse_features(p, header, cols, lines, list(features))
    return x.astype(np.float32), ids
