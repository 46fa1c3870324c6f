"""Where studies live: an Optuna RDB storage (SQLite by default, PostgreSQL to scale out).

Every study type keeps its runs as Optuna trials, so a crash loses no completed run, running the
same command again resumes, and any number of machines can join through one database.

* Default: ``sqlite:///runs/studies.db``. SQLite in WAL mode with a generous busy timeout lets
  the local ``--workers K`` processes write without "database is locked" failures (trials take
  seconds; their writes take milliseconds, so waiting for the lock is cheap).
* ``postgresql://user@host/db``: many machines; `tunelab worker` joins a study from anywhere.
  tunelab picks the installed driver (psycopg 3, else psycopg2); other tools given the same
  database, optuna-dashboard included, need the driver in the URL when only psycopg2 is there:
  ``postgresql+psycopg2://user@host/db``.

Heartbeats are on: a worker that dies mid-trial stops beating, and after the grace period the
next worker to start a trial marks that trial FAIL (``optuna.storages.fail_stale_trials``, which
``study.optimize`` calls before each trial); ``RetryHeartbeatStaleTrialCallback`` enqueues a copy
with the same parameters, so the work is redone exactly once and nothing completed is lost.
The beat and the grace period default to ``HEARTBEAT_SECONDS`` / ``GRACE_SECONDS`` and can be set
with the environment variables ``TUNELAB_HEARTBEAT_SECONDS`` / ``TUNELAB_GRACE_SECONDS`` (tests
use a 1 s beat so a killed worker's trial is retried within seconds).
A password never shows: every message, table, JSON field and file shows the URL through
``tunelab.redact.mask_url`` (``postgresql://bob:***@host/db``). To keep it off the command line
(and out of ``ps`` and shell history) too, give the URL in ``TUNELAB_STORAGE`` instead of
``--storage``, or leave the password out of the URL and let the driver read ``PGPASSWORD`` or
``~/.pgpass``. Local workers get the URL through ``TUNELAB_STORAGE``, never on their command line.
The storage stays readable by ``optuna-dashboard URL``: it is Optuna's own RDB schema, and
tunelab keeps what a trial did in plain user attributes (overrides, val metrics, epochs, worker),
and every study it makes records its kind (``KIND_ATTR``: search, ablation, cv).
Optuna's own log lines are off while tunelab works on a study (``optuna_quiet``): it reports
studies and trials itself.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from tunelab.errors import TunelabError, did_you_mean
from tunelab.redact import mask_url, redact_text, url_secrets

DEFAULT_STORAGE = "sqlite:///runs/studies.db"
# The storage URL when --storage is not given: keeps a password off command lines.
STORAGE_ENV = "TUNELAB_STORAGE"
# A beat every 5 s; a trial silent for 20 s is declared dead. Short enough that a killed worker's
# trial is retried within a test, long enough that a busy 2-core machine never misses four beats.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
MAX_RETRY = 3  # a trial that kills its worker three times is a bug in the recipe, not bad luck
HEARTBEAT_ENV = "TUNELAB_HEARTBEAT_SECONDS"
GRACE_ENV = "TUNELAB_GRACE_SECONDS"
KIND_ATTR = "tunelab_kind"  # the study user attribute every tunelab study records its kind in


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna logs only errors inside the block, and as before after it.

    Optuna logs each study it creates, each trial, and a traceback for each failed trial (at
    INFO and WARNING); tunelab reports its studies and trials itself, and keeps the messages.
    """
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds, from the environment or the defaults.

    >>> heartbeat_settings()  # doctest: +SKIP
    (5, 20)
    """
    beat = _env_seconds(HEARTBEAT_ENV, HEARTBEAT_SECONDS)
    grace = _env_seconds(GRACE_ENV, GRACE_SECONDS)
    if grace <= beat:
        # A trial must be allowed to miss at least one beat, or a slow write marks a live trial dead.
        raise TunelabError(
            f"{GRACE_ENV}={grace}: must be greater than {HEARTBEAT_ENV}={beat} (about 4x is safe)"
        )
    return beat, grace


def _env_seconds(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        # Optuna's RDBStorage takes whole seconds.
        raise TunelabError(f"{name}={text!r}: must be a whole number of seconds >= 1")
    return value


def storage_url(url: str | None) -> str:
    """``url``, else ``$TUNELAB_STORAGE``, else the default SQLite file.

    >>> storage_url("sqlite:///a.db")
    'sqlite:///a.db'
    """
    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def process_local(url: str) -> bool:
    """Whether the storage at ``url`` lives inside the process that opens it (in-memory SQLite):
    other processes opening the same URL get a database of their own.

    >>> process_local("sqlite:///:memory:"), process_local("sqlite:///runs/studies.db")
    (True, False)
    """
    if not url.startswith("sqlite:///"):
        return False
    path = url[len("sqlite:///") :]
    return path.split("?", 1)[0] in ("", ":memory:") or "mode=memory" in path


def open_storage(url: str | None = None, *, heartbeat: bool = True) -> RDBStorage:
    """An RDBStorage for ``url`` (default SQLite file under runs/), with heartbeats and retries.

    >>> s = open_storage("sqlite:///:memory:")  # doctest: +SKIP
    """
    url = storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            try:
                Path(path.split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a file where a directory should be, no permission
                raise TunelabError(
                    f"--storage {mask_url(url)}: cannot create the directory of its file ({e.strerror}); "
                    "choose a path in a writable directory"
                ) from None
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith("postgresql"):
        url = _postgres_driver(url)
    elif not url.startswith("mysql"):
        raise TunelabError(
            f"--storage {mask_url(url)}: not a supported URL; use sqlite:///path.db or "
            "postgresql://user@host/db"
        )
    kwargs: dict[str, Any] = {}
    if heartbeat:
        beat, grace = heartbeat_settings()
        kwargs = {"heartbeat_interval": beat, "grace_period": grace}
    try:
        with warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna since 2.9; the warning would repeat per worker.
            warnings.simplefilter("ignore", ExperimentalWarning)
            if heartbeat:
                # Optuna 4.9 renamed failed_trial_callback / RetryFailedTrialCallback to these.
                kwargs["heartbeat_stale_trial_callback"] = RetryHeartbeatStaleTrialCallback(MAX_RETRY)
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as e:  # connection refused, bad credentials, missing driver
        # The driver's or SQLAlchemy's text may quote the URL or the password: masked as well.
        reason = redact_text(f"{type(e).__name__}: {e}", url_secrets(url))
        raise TunelabError(f"--storage {mask_url(url)}: cannot open ({reason})") from None
    if url.startswith("sqlite:///"):
        _wal(storage)
    return storage


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; with only psycopg2 installed
    (``psycopg2-binary``, the dev extra) the URL names it explicitly instead.
    """
    if not url.startswith("postgresql://"):
        return url  # the user named a driver: postgresql+psycopg2://, postgresql+psycopg://
    for module, scheme in (("psycopg", "postgresql+psycopg://"), ("psycopg2", "postgresql+psycopg2://")):
        try:
            __import__(module)
        except ImportError:
            continue
        return scheme + url[len("postgresql://") :]
    raise TunelabError(
        f"--storage {mask_url(url)}: no PostgreSQL driver is installed; pip install 'psycopg[binary]' "
        "(or psycopg2-binary)"
    )


def _wal(storage: RDBStorage) -> None:
    # WAL lets readers proceed while one process writes; set once per database file.
    with storage.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def load_named_study(name: str, store: RDBStorage, url: str, hint: str = "") -> optuna.Study:
    """``optuna.load_study``, with one clear error for a name the storage does not hold: the
    storage (password masked), the closest names, and ``hint`` (what else the caller accepts)."""
    try:
        return optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.study.get_all_study_summaries(store, include_best_trial=False)]
        close = did_you_mean(name, names)
        raise TunelabError(
            f"study {name!r} is not in {mask_url(url)}"
            + (f" ({close})" if close else "")
            + f"; {hint or '`tunelab studies --storage URL` lists them'}"
        ) from None
