"""tunelab.study.storage: SQLite in WAL mode, heartbeat settings from the environment, the URL from
the argument or TUNELAB_STORAGE, clear errors for a bad URL (password masked), Optuna kept quiet."""

from __future__ import annotations

import sqlite3
import sys

import optuna
import pytest

from tunelab.errors import TunelabError
from tunelab.study.storage import (
    DEFAULT_STORAGE,
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    _postgres_driver,
    heartbeat_settings,
    open_storage,
    optuna_quiet,
    storage_url,
)


def test_sqlite_is_opened_in_wal_mode_with_its_directory_made(tmp_path):
    path = tmp_path / "deep" / "dir" / "studies.db"
    storage = open_storage(f"sqlite:///{path}")
    assert path.parent.is_dir()
    # A new connection reads the mode from the file: WAL is set once per database and persists.
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert storage.heartbeat_interval == HEARTBEAT_SECONDS and storage.grace_period == GRACE_SECONDS
    assert open_storage(f"sqlite:///{path}", heartbeat=False).heartbeat_interval is None


def test_heartbeat_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "2")
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "7")
    assert heartbeat_settings() == (2, 7)
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    assert (storage.heartbeat_interval, storage.grace_period) == (2, 7)
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "2")
    with pytest.raises(TunelabError, match="TUNELAB_GRACE_SECONDS=2: must be greater than"):
        heartbeat_settings()
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", "0.5")
    with pytest.raises(TunelabError, match="whole number of seconds"):
        heartbeat_settings()
    monkeypatch.setenv("TUNELAB_HEARTBEAT_SECONDS", " ")  # blank: the default
    monkeypatch.setenv("TUNELAB_GRACE_SECONDS", "30")
    assert heartbeat_settings() == (HEARTBEAT_SECONDS, 30)


def test_the_url_is_the_argument_else_the_environment_else_the_default(monkeypatch):
    monkeypatch.delenv("TUNELAB_STORAGE", raising=False)
    assert storage_url(None) == DEFAULT_STORAGE
    monkeypatch.setenv("TUNELAB_STORAGE", "postgresql://db/x")
    assert storage_url(None) == "postgresql://db/x" and storage_url("sqlite:///a.db") == "sqlite:///a.db"


def test_an_unsupported_url_is_one_clear_error_without_the_password():
    with pytest.raises(TunelabError) as e:
        open_storage("redis://bob:hunter2@cache/0")
    assert "not a supported URL; use sqlite:///path.db or postgresql://user@host/db" in str(e.value)
    assert "hunter2" not in str(e.value) and "bob:***@cache" in str(e.value)


def test_a_file_in_an_impossible_place_says_why_without_the_password(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TunelabError) as e:
        open_storage(f"sqlite:///{blocker}/sub/studies.db?password=hunter2")
    assert "cannot create the directory of its file (Not a directory)" in str(e.value)
    assert "hunter2" not in str(e.value)
    with pytest.raises(TunelabError, match=r"cannot open \(OperationalError: .*unable to open database file"):
        open_storage(f"sqlite:///{tmp_path}")  # a directory, not a database file


def test_postgres_urls_name_the_installed_driver(monkeypatch):
    named = "postgresql+psycopg2://bob@db/x"
    assert _postgres_driver(named) == named  # a driver the user named is kept
    monkeypatch.setitem(sys.modules, "psycopg", None)  # importing it raises ImportError
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(
        TunelabError, match=r"no PostgreSQL driver is installed; pip install 'psycopg\[binary\]'"
    ):
        _postgres_driver("postgresql://bob:hunter2@db/x")


def test_optuna_is_quiet_inside_and_as_before_after():
    optuna.logging.set_verbosity(optuna.logging.INFO)
    with optuna_quiet():
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    with pytest.raises(ValueError), optuna_quiet():
        raise ValueError
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
