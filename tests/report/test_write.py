"""write_report and the PATHs it understands; a bad PATH is one clear line."""

import json

import pytest

from tunelab.errors import TunelabError
from tunelab.report import build_report, write_report


def test_a_run_directory_gets_report_html_and_json(sources):
    result, run_dir = sources.run()
    path = write_report(result)
    assert path == run_dir / "report.html" and path.read_text().startswith("<!doctype html>")
    model = json.loads((run_dir / "report.json").read_text())
    assert model["kind"] == "run" and model["source"]["run_dir"] == str(run_dir)
    assert build_report(run_dir)[0].to_dict()["sections"] == model["sections"]


def test_an_ablation_keeps_its_result_so_its_directory_rebuilds(sources, tmp_path):
    result = sources.ablation()
    path = write_report(result, out=tmp_path / "abl")
    assert json.loads((tmp_path / "abl" / "result.json").read_text())["variants"][0]["name"] == "base"
    again, where = build_report(tmp_path / "abl")
    assert where == tmp_path / "abl" and again.kind == "ablation" and path.is_file()
    cv = write_report(sources.cv(), out=tmp_path / "cv" / "cv.html")
    assert cv.name == "cv.html" and (tmp_path / "cv" / "cv.json").is_file()
    assert build_report(tmp_path / "cv")[0].kind == "cv"


def test_a_search_directory_and_a_study_name_read_the_storage(sources, tmp_path):
    name, out = sources.search(objectives=1)
    report, where = build_report(out, storage=sources.storage)
    assert report.kind == "search" and where == out
    write_report(out, storage=sources.storage)  # report.json names the study and its storage
    assert build_report(out)[0].source["study"] == name  # found again without --storage
    by_name, _ = build_report(name, storage=sources.storage)
    assert by_name.title == report.title


def test_compress_and_lr_find(sources, tmp_path):
    path = write_report(sources.compress())
    assert path.parent.name == "compress" and build_report(path.parent)[0].kind == "compress"
    write_report(sources.lr_find(), out=tmp_path / "lr")
    assert (tmp_path / "lr" / "lr_find.json").is_file() and build_report(tmp_path / "lr")[0].kind == "lr_find"


@pytest.mark.parametrize("bad", ["does/not/exist", "./nope", "no-such-study"])
def test_a_bad_path_names_what_was_expected(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TunelabError) as e:
        build_report(bad)
    msg = str(e.value)
    assert "\n" not in msg and "run directory" in msg and "--storage" in msg
    assert not (tmp_path / "runs").exists()  # a mistyped study name creates no storage


def test_an_unrelated_directory_and_a_file_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for bad in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(TunelabError, match="run directory"):
            build_report(bad)


def test_every_typed_result_name_is_a_class_that_exists():
    # write.TYPED tells results apart by name (no import of the study modules); a class that
    # moved would silently become "cannot build a report".
    import importlib

    from tunelab.report.write import TYPED

    for name in TYPED:
        module, _, cls = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), cls), type), name
