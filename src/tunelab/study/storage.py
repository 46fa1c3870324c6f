"""Where studies live: an Optuna RDB storage (SQLite by default, PostgreSQL to scale out).

Every study type keeps its runs as Optuna trials, so a crash loses no completed run, running the
same command again resumes, and any number of machines can join through one database.

* Default: ``sqlite:///runs/studies.db``. SQLite in WAL mode with a generous busy timeout lets
  the local ``--workers K`` processes write without "database is locked" failures (trials take
  seconds; their writes take milliseconds, so waiting for the lock is cheap).
* ``postgresql://user@host/db``: many machines; `tunelab worker` joins a study from anywhere.

Heartbeats are on: a worker that dies mid-trial stops beating, and after ``GRACE_SECONDS`` the
next worker to touch the storage marks that trial FAIL; ``RetryFailedTrialCallback`` enqueues a
copy with the same parameters, so the work is redone exactly once and nothing completed is lost.
The storage stays readable by ``optuna-dashboard URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback

from tunelab.errors import TunelabError

DEFAULT_STORAGE = "sqlite:///runs/studies.db"
# A beat every 5 s; a trial silent for 20 s is declared dead. Short enough that a killed worker's
# trial is retried within a test, long enough that a busy 2-core machine never misses four beats.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
MAX_RETRY = 3  # a trial that kills its worker three times is a bug in the recipe, not bad luck


def storage_url(url: str | None) -> str:
    return url or DEFAULT_STORAGE


def open_storage(url: str | None = None, *, heartbeat: bool = True) -> RDBStorage:
    """An RDBStorage for ``url`` (default SQLite file under runs/), with heartbeats and retries.

    >>> s = open_storage("sqlite:///:memory:")  # doctest: +SKIP
    """
    url = storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif not url.startswith(("postgresql", "mysql")):
        raise TunelabError(
            f"--storage {url}: not a supported URL; use sqlite:///path.db or postgresql://user@host/db"
        )
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {
            "heartbeat_interval": HEARTBEAT_SECONDS,
            "grace_period": GRACE_SECONDS,
            "failed_trial_callback": RetryFailedTrialCallback(max_retry=MAX_RETRY),
        }
    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as e:  # connection refused, bad credentials, missing driver
        raise TunelabError(f"--storage {url}: cannot open ({type(e).__name__}: {e})") from None
    if url.startswith("sqlite:///"):
        _wal(storage)
    return storage


def _wal(storage: RDBStorage) -> None:
    # WAL lets readers proceed while one process writes; set once per database file.
    with storage.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def list_studies(url: str | None = None) -> list[optuna.study.StudySummary]:
    """Summaries of every study in the storage."""
    return optuna.study.get_all_study_summaries(open_storage(url, heartbeat=False))
