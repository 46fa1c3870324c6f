"""``write_report(source, out=...)``: build the report model of a run or a study and write it as
``report.html`` and ``report.json``.

A source is a typed result (``RunResult``, ``SearchResult``, ``AblationResult``, ``CVResult``,
``CompressResult``, ``LRFindResult``) or a path: a run directory, the output directory of
``search`` / ``ablate`` / ``cv`` (``runs/studies/<study>/``) or ``compress`` (``RUN_DIR/compress/``),
a directory an lr-find wrote, or a study name in ``storage``. What each directory holds:

* a run: ``recipe.yaml`` and ``result.json`` (``tunelab train``);
* an ablation or a cross-validation: ``result.json``, the command's ``--json`` (written here);
* a search: ``report.json`` naming the study and its storage, and ``best.yaml``; its trials are
  read back from the storage, so the report shows the study as it is now;
* a compression: ``result.json`` with its ``rows``;
* an lr-find: ``lr_find.json``;
* an auto run (``tunelab auto``): ``auto.json``.

    >>> from tunelab.report import write_report
    >>> write_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.io import atomic_write_text, finite
from tunelab.redact import mask_url
from tunelab.report.model import Report
from tunelab.study.search.options import DEFAULT_OUT

EXPECTED = (
    "a run directory (recipe.yaml + result.json), the output directory of search, ablate, cv or compress "
    "(report.json or result.json), a directory with lr_find.json or auto.json, or a study name with "
    "--storage URL"
)


def _kind_of_result(d: Mapping[str, Any]) -> str | None:
    """Which command wrote this ``result.json`` (or ``--json``), from its keys."""
    if "rows" in d and "run_dir" in d:
        return "compress"
    if "variants" in d and "seeds" in d:
        return "ablation"
    if "folds" in d and "chosen" in d:
        return "cv"
    if "status" in d and "history" in d:
        return "run"
    return None


def _build_dict(kind: str, d: Mapping[str, Any], out_dir: str | None) -> Report:
    if kind == "ablation":
        from tunelab.report.pages.ablation import build_ablation_report

        return build_ablation_report(d, out_dir)
    if kind == "cv":
        from tunelab.report.pages.cv import build_cv_report

        return build_cv_report(d, out_dir)
    if kind == "compress":
        from tunelab.report.pages.compress import build_compress_report

        return build_compress_report(d, out_dir)
    if kind == "auto":
        from tunelab.report.pages.auto import build_auto_report

        return build_auto_report(d, out_dir)
    from tunelab.report.pages.lr_find import build_lr_find_report

    return build_lr_find_report(d, out_dir)


# Typed results by their class's full name: telling them apart needs no import of the study
# modules (optuna, scipy, scikit-learn), so `tunelab train` pays only for what a run report needs.
# tests/report/test_write.py checks that every name is a class that exists.
TYPED = {
    "tunelab.runs.RunResult": "run",
    "tunelab.study.search.results.SearchResult": "search",
    "tunelab.study.ablation_analysis.AblationResult": "ablation",
    "tunelab.study.cv.CVResult": "cv",
    "tunelab.study.compress.CompressResult": "compress",
    "tunelab.lr_find.LRFindResult": "lr_find",
}


def typed_kind(source: Any) -> str | None:
    """ "run", "search", ... for a typed result; None for anything else.

    >>> typed_kind("runs/demo") is None
    True
    """
    return TYPED.get(f"{type(source).__module__}.{type(source).__qualname__}")


def build_report(source: Any, *, storage: str | None = None) -> tuple[Report, Path]:
    """(the report model, the directory its files go to by default) for any ``source``."""
    kind = typed_kind(source)
    if kind == "run":
        from tunelab.report.pages.run import build_run_report, run_files

        if source.run_dir is None:
            raise TunelabError(
                "this run wrote no run directory (save=False): pass out= to say where the report goes"
            )
        return build_run_report(run_files(source)), Path(source.run_dir)
    if kind == "search":
        from tunelab.report.pages.search import build_search_report

        url = storage or source.storage
        return build_search_report(source.study, url, source.out_dir), Path(source.out_dir)
    if kind in ("ablation", "cv", "lr_find"):
        name = getattr(source, "study_name", "NAME")
        raise TunelabError(
            f"a {type(source).__name__} has no directory of its own: call write_report(result, out=DIR)"
            + (f", e.g. out='{DEFAULT_OUT}/{name}'" if kind != "lr_find" else "")
        )
    if kind == "compress":
        out = Path(source.run_dir) / "compress"
        return _build_dict("compress", source.to_dict(), str(out)), out
    if isinstance(source, (str, Path)):
        return _from_path(source, storage)
    raise TunelabError(f"cannot build a report from a {type(source).__name__}; give {EXPECTED}")


def _from_path(source: str | Path, storage: str | None) -> tuple[Report, Path]:
    path = Path(source)
    if path.is_dir():
        return _from_dir(path, storage)
    if path.exists():
        raise TunelabError(f"{path}: is a file; give {EXPECTED}")
    if "/" in str(source) or str(source).startswith("."):
        raise TunelabError(f"{path}: no such directory; give {EXPECTED}")
    return _from_study(str(source), storage)


def _from_dir(path: Path, storage: str | None) -> tuple[Report, Path]:
    from tunelab.report.pages.run import build_run_report, is_run_dir, read_run_dir

    if is_run_dir(path):
        return build_run_report(read_run_dir(path)), path
    result = path / "result.json"
    if result.is_file():
        d = json.loads(result.read_text())
        kind = _kind_of_result(d)
        if kind in ("ablation", "cv", "compress"):
            return _build_dict(kind, d, str(path)), path
    if (path / "auto.json").is_file():
        return _build_dict("auto", json.loads((path / "auto.json").read_text()), str(path)), path
    saved = path / "report.json"
    if saved.is_file():
        src = json.loads(saved.read_text()).get("source") or {}
        if src.get("kind") == "search":
            return _search(src["study"], storage or _reusable(src.get("storage")), path), path
    if (path / "best.yaml").is_file():  # a search's output directory written before report.json
        return _search(path.name, storage, path), path
    if (path / "lr_find.json").is_file():
        return _build_dict("lr_find", json.loads((path / "lr_find.json").read_text()), str(path)), path
    raise TunelabError(f"{path}: nothing to report on here; give {EXPECTED}")


def _reusable(url: str | None) -> str | None:
    """A storage URL recorded in report.json, unless its password was masked there."""
    return None if not url or "***" in url else url


def _search(study: str, storage: str | None, out: Path) -> Report:
    from tunelab.report.pages.search import build_search_report

    return build_search_report(study, storage, out)


def _from_study(name: str, storage: str | None) -> tuple[Report, Path]:
    """A study name: a search is read from the storage; an ablation or a cross-validation from
    the result its command kept in ``runs/studies/<name>/``."""
    import optuna

    from tunelab.study.storage import KIND_ATTR, open_storage, storage_url

    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        # Opening a missing SQLite file would create it: a mistyped PATH must leave nothing behind.
        raise TunelabError(f"{name}: neither a directory nor a study (there is no {url}); give {EXPECTED}")
    try:
        attrs = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False)).user_attrs
    except KeyError:
        raise TunelabError(
            f"{name}: neither a directory nor a study in {mask_url(url)}; give {EXPECTED}"
        ) from None
    out = Path(DEFAULT_OUT) / name
    if attrs.get(KIND_ATTR) == "search":
        return _search(name, url, out), out
    if (out / "result.json").is_file():
        return _from_dir(out, storage)
    kind = str(attrs.get(KIND_ATTR, "non-tunelab"))
    article = "an" if kind[:1] in "aeiou" else "a"
    raise TunelabError(
        f"study {name!r} is {article} {kind} study and {out}/result.json is missing: run its command "
        "again (it reads "
        "every finished run back from the storage and writes the report), or give its --out directory"
    )


def write_report(
    source: Any,
    out: str | Path | None = None,
    *,
    storage: str | None = None,
    result_json: Mapping[str, Any] | None = None,
) -> Path:
    """Build the report of ``source`` and write ``report.html`` and ``report.json``; return the
    HTML file's path.

    Args:
        source: a typed result or a path (see the module docstring).
        out: an ``.html`` file, or a directory to write ``report.html`` in (default: the run
            directory or the study's output directory).
        storage: the storage URL of a study (default: the one the result or directory names).
        result_json: written beside the report as ``result.json`` (an ablation's or a CV's
            ``--json``), so ``tunelab report DIR`` can rebuild it later.

    >>> path = write_report(fit(recipe))  # doctest: +SKIP
    """
    kind = typed_kind(source)
    if kind in ("ablation", "cv"):
        if out is None:
            out = Path(DEFAULT_OUT) / source.study_name
        data = _masked(source.to_dict())
        html = _html_path(out)
        report = _build_dict(kind, data, str(html.parent))
        result_json = data
    elif kind == "lr_find":
        if out is None:
            raise TunelabError("an lr-find result has no directory of its own: give out=DIR")
        html = _html_path(out)
        result_json = None
        report = _build_dict("lr_find", source.to_dict(), str(html.parent))
        _mkdir(html)
        atomic_write_text(html.parent / "lr_find.json", json.dumps(finite(source.to_dict()), indent=2))
    else:
        report, where = build_report(source, storage=storage)
        html = _html_path(out if out is not None else where)
    return save(report, html, result_json)


def _masked(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "storage": mask_url(d.get("storage") or "")} if "storage" in d else d


def _html_path(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() in (".html", ".htm"):
        return out
    return out / "report.html"


def save(report: Report, html: Path, result_json: Mapping[str, Any] | None = None) -> Path:
    """Write ``html`` and the model beside it (``report.json``, or ``<name>.json``)."""
    from tunelab.report.html import render_html

    _mkdir(html)
    if result_json is not None:
        atomic_write_text(html.parent / "result.json", json.dumps(finite(dict(result_json)), indent=2))
    atomic_write_text(html.with_suffix(".json"), json.dumps(report.to_dict(), indent=2))
    atomic_write_text(html, render_html(report))
    return html


def _mkdir(html: Path) -> None:
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TunelabError(f"--out {html}: cannot create its directory ({e.strerror})") from None
