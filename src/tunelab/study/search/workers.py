"""Workers: processes that run trials of one search study until its budget is spent.

The budget is exact across workers: a worker starts a trial only while COMPLETE + PRUNED + RUNNING
trials are fewer than the budget, and a trial that two workers started at the same moment past the
budget is dropped before it trains (``tunelab.study.search.trial``). Optuna's ``MaxTrialsCallback``
counts only trials that have ended, so two workers finishing together would overshoot; counting
running trials closes that gap. When the running trials fill the budget, idle workers wait: if a
worker dies, its trial is failed by the heartbeat check (``optuna.storages.fail_stale_trials``) and
retried with the same parameters (``RetryHeartbeatStaleTrialCallback``, up to 3 times) by whoever
is left.

``--workers K`` starts K ``tunelab worker`` processes here, each with ``cores // K`` torch threads.
On a machine with GPUs each worker sees one of them (``CUDA_VISIBLE_DEVICES``, round-robin over
the visible GPUs), and K defaults to their number (``gpu_slots``, ``default_workers``). With
``--trial-nproc P`` each trial trains on P DDP processes (``ddp_trial``): each worker then sees
its own P GPUs, K defaults to GPUs // P, and K * P > GPUs is refused; without GPUs the P
processes share the worker's cores (gloo).
Single-worker studies are reproducible: the sampler's seed comes from ``train.seed`` (and the
number of trials already in the study, so a resumed study draws new points instead of repeating
its first ones).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import RecipeError, TunelabError
from tunelab.redact import mask_url
from tunelab.study.search.config import StudyConfig
from tunelab.study.search.ddp_trial import check_batch_splits
from tunelab.study.search.options import DEFAULT_OUT
from tunelab.study.search.samplers import make_pruner, make_sampler
from tunelab.study.search.trial import TrialRunner
from tunelab.study.storage import (
    STORAGE_ENV,
    load_named_study,
    open_storage,
    optuna_quiet,
    process_local,
    storage_url,
)

# A worker waiting for the last running trials looks again this often (seconds); the heartbeat
# grace period, not this, bounds how long a dead worker's trial goes unnoticed.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Counts:
    done: int  # COMPLETE + PRUNED: what the budget counts
    running: int
    errors: int  # FAIL with an error of the trial's own (not a dead worker, not dropped)


def count_trials(study: optuna.Study) -> Counts:
    """The study's trials by what the budget makes of them."""
    done = running = errors = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
        elif t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            errors += 1
    return Counts(done, running, errors)


def _fail_stale(study: optuna.Study) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def worker_seed(base: int, index: int, existing: int) -> int:
    """A sampler seed from the recipe's seed, the worker's index and the trials already there.

    Distinct workers and resumed studies get distinct streams; the same study started the same
    way gets the same one.

    >>> worker_seed(0, 0, 0) == worker_seed(0, 0, 0) != worker_seed(0, 1, 0)
    True
    """
    return int(np.random.SeedSequence([base, index, existing]).generate_state(1)[0])


def trial_seconds(study: optuna.Study, last: int = 10) -> float | None:
    """What a trial takes: the median wall time of the study's last ``last`` complete trials
    (None before the first completes). Pruned trials are left out: any trial may run to its end.

    >>> trial_seconds(optuna.create_study()) is None
    True
    """
    done = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.datetime_complete is not None and t.datetime_start is not None
    ]
    return float(np.median(done[-last:])) if done else None


def run_worker(
    study_name: str,
    storage: str | None = None,
    *,
    threads: int | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    on_trial: Callable[[FrozenTrial, list[str]], None] | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    trial_nproc: int = 1,
) -> int:
    """Run trials of an existing search study until its budget is spent; return how many ran.

    Needs only the study's name and storage: the recipe, objectives, sampler, pruner and budget
    are read from the study. ``seed`` seeds this worker's sampler (None: fresh entropy, as for a
    worker joining from another machine). ``timeout`` (seconds): start no trial after it.
    ``deadline`` (a ``time.time()`` instant, shared by every worker of a time budget): start no
    trial that cannot end before it, as ``trial_seconds`` estimates from the trials so far, and
    stop a trial that is still training at it (``Deadline``: the trial ends PRUNED).
    ``on_trial(trial, objective_names)`` is called with each trial this worker ends. A running
    trial keeps its checkpoint in ``<out_dir>/<study>/trials/<number>/``: when its worker dies,
    the retry continues from there if it runs where that directory is (this machine, or a shared
    filesystem), else it starts again. ``trial_nproc`` P > 1: each trial trains on P DDP
    processes of this machine (``tunelab.study.search.ddp_trial``), on this worker's GPUs (at least
    P of them, one per process) or sharing its cores (``threads`` split between them).

    >>> run_worker("mnist1d_search", "postgresql://tunelab@db/studies")  # doctest: +SKIP
    3
    """
    url = storage_url(storage)
    check_trial_nproc(trial_nproc, url)
    store = open_storage(url)
    probe = load_named_study(study_name, store, url)
    config = StudyConfig.from_attrs(probe.user_attrs, study_name)
    check_batch_splits(config.recipe(), trial_nproc)
    threads = _trial_threads(threads, trial_nproc, config)
    study = optuna.load_study(
        study_name=study_name,
        storage=store,
        sampler=make_sampler(config.sampler, seed, len(config.objectives)),
        pruner=make_pruner(config.pruner, config.recipe().train.epochs),
    )
    runner = TrialRunner(
        config, threads, checkpoints=out_dir, deadline=deadline, nproc=trial_nproc, storage=url
    )
    names = [o.name for o in config.objectives]
    callbacks = [lambda _study, trial: on_trial(trial, names)] if on_trial is not None else None
    started = time.monotonic()
    ran = 0
    with optuna_quiet():
        while timeout is None or time.monotonic() - started < timeout:
            # The budget is re-read each time: `tunelab search --trials N` on a running study raises it.
            budget = StudyConfig.from_attrs(study.user_attrs, study_name).trials
            _fail_stale(study)
            c = count_trials(study)
            if c.done >= budget or not _time_for_a_trial(study, deadline):
                break
            if c.errors >= budget:
                raise TunelabError(f"study {study_name}: {c.errors} trials failed: {_first_error(study)}")
            if c.done + c.running >= budget:
                # The last trials are running elsewhere; if their worker dies, one of them comes
                # back here as a retry once its heartbeat goes stale.
                time.sleep(POLL_SECONDS)
                continue
            runner.budget = budget
            study.optimize(
                runner,
                n_trials=1,
                catch=(TunelabError,),
                callbacks=callbacks,
                gc_after_trial=False,
                show_progress_bar=False,
            )
            ran += 1
    return ran


def _trial_threads(threads: int | None, trial_nproc: int, config: StudyConfig) -> int | None:
    """The torch threads of a trial's process(es): this process's (set here), or with DDP trials
    each process's share of them, after checking that this worker has a GPU for each process."""
    if trial_nproc > 1:
        check_gpu_share(1, trial_nproc, trial_gpus(config.recipe().train.device))
        # The trial's processes train, not this one: they share its cores.
        return max(1, (threads or available_cores()) // trial_nproc)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return threads


def _time_for_a_trial(study: optuna.Study, deadline: float | None) -> bool:
    if deadline is None:
        return True
    left = deadline - time.time()
    need = trial_seconds(study)
    return left > 0 and (need is None or need <= left)


def _first_error(study: optuna.Study) -> str:
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if "error" in t.user_attrs:
            return f"trial {t.number}: {t.user_attrs['error']}"
    return "no message"


def _wait_all(procs: Sequence[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.0, deadline - time.monotonic()))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def trial_gpus(device: str) -> list[str]:
    """The GPUs the trials of a recipe with ``train.device`` ``device`` train on: the visible ones,
    none for ``cpu``."""
    return [] if device == "cpu" else visible_gpus()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them ([] without CUDA)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip():
        return [d.strip() for d in listed.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


def default_workers(gpus: Sequence[str], trial_nproc: int = 1) -> int:
    """``--workers`` when not given: one per ``trial_nproc`` GPUs, else 1.

    >>> default_workers(["0", "1", "2", "3"], trial_nproc=2), default_workers([], trial_nproc=2)
    (2, 1)
    """
    return max(1, len(gpus) // trial_nproc)


def gpu_slots(workers: int, gpus: Sequence[str], trial_nproc: int = 1) -> list[str | None]:
    """Each worker's ``CUDA_VISIBLE_DEVICES`` (None: no GPU, the CPU's cores are shared).

    One process per trial: each worker its GPU, round-robin over ``gpus``; more workers than GPUs
    share them in turn, each training on its ``cuda:0``. ``trial_nproc`` P > 1 (DDP trials): each
    worker its own P GPUs, a contiguous slice (worker i the GPUs i*P .. i*P+P-1), each process of
    a trial on one of them; more than ``len(gpus) // P`` workers is refused (``check_gpu_share``).

    >>> gpu_slots(3, ["0", "1"])
    ['0', '1', '0']
    >>> gpu_slots(2, ["0", "1", "2", "3"], trial_nproc=2)
    ['0,1', '2,3']
    >>> gpu_slots(2, [], trial_nproc=2)
    [None, None]
    """
    if not gpus:
        return [None] * workers
    if trial_nproc == 1:
        return [gpus[i % len(gpus)] for i in range(workers)]
    check_gpu_share(workers, trial_nproc, gpus)
    return [",".join(gpus[i * trial_nproc : (i + 1) * trial_nproc]) for i in range(workers)]


def check_gpu_share(workers: int, trial_nproc: int, gpus: Sequence[str]) -> None:
    """Refuse DDP trials that would put two processes on one GPU (NCCL needs a GPU per process).

    Without GPUs any number goes: the processes share the CPU's cores (gloo).
    """
    if not gpus or trial_nproc == 1 or workers * trial_nproc <= len(gpus):
        return
    seen = f"{len(gpus)} visible ({','.join(gpus)})"
    if trial_nproc > len(gpus):
        raise TunelabError(
            f"--trial-nproc {trial_nproc}: each trial needs {trial_nproc} GPUs, one per process; {seen}: "
            f"use --trial-nproc {len(gpus)} or fewer"
        )
    raise TunelabError(
        f"--workers {workers} x --trial-nproc {trial_nproc} needs {workers * trial_nproc} GPUs, one per "
        f"process; {seen}: use --workers {len(gpus) // trial_nproc} or fewer (the default), "
        "or a smaller --trial-nproc"
    )


def check_trial_nproc(trial_nproc: int, storage: str) -> None:
    """``--trial-nproc``: at least 1, and above 1 a storage that other processes can open."""
    if trial_nproc < 1:
        raise RecipeError("--trial-nproc", trial_nproc, "must be >= 1 (processes per trial)")
    if trial_nproc > 1 and process_local(storage):
        raise TunelabError(
            f"--trial-nproc {trial_nproc} with --storage {mask_url(storage)}: the processes of a trial "
            "report to the study through its storage, and an in-memory database lives inside one "
            "process; use a file (sqlite:///runs/studies.db, the default) or a database server"
        )


def run_local_workers(
    study_name: str,
    storage: str,
    workers: int,
    *,
    base_seed: int,
    existing: int,
    timeout: float | None = None,
    quiet: bool = True,
    threads: int | None = None,
    deadline: float | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    gpus: Sequence[str] | None = None,
    trial_nproc: int = 1,
) -> list[int]:
    """Run ``workers`` `tunelab worker` processes on this machine, ``cores // workers`` threads each
    (or ``threads``), each on its own GPU of ``gpus`` (default: the visible ones; see ``gpu_slots``),
    or its own ``trial_nproc`` GPUs when each trial trains on ``trial_nproc`` processes.

    Returns their exit codes. Each worker prints its own errors on stderr.
    """
    threads = threads or max(1, available_cores() // workers)
    env = dict(os.environ)
    # Native thread pools (OpenMP, MKL) size themselves from these before torch can cap them.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # OpenMP threads that spin while waiting burn the cores the other workers need; on a busy
    # 2-core machine a 2-thread worker ran 5x slower spinning than sleeping (PASSIVE).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The URL goes through the environment, not the command line: `ps` shows any user's argv,
    # and the URL may hold a password.
    env[STORAGE_ENV] = storage
    procs = []
    slots = gpu_slots(workers, visible_gpus() if gpus is None else gpus, trial_nproc)
    for i in range(workers):
        cmd = [
            sys.executable,
            "-m",
            "tunelab.cli",
            "worker",
            "--study",
            study_name,
            "--threads",
            str(threads),
            "--seed",
            str(worker_seed(base_seed, i, existing)),
            "--out",
            str(out_dir),
        ]
        if timeout is not None:
            cmd += ["--timeout", str(timeout)]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        if trial_nproc > 1:
            cmd += ["--trial-nproc", str(trial_nproc)]
        if quiet:
            cmd.append("--quiet")
        own = env if slots[i] is None else {**env, "CUDA_VISIBLE_DEVICES": slots[i]}
        procs.append(subprocess.Popen(cmd, env=own, stdin=subprocess.DEVNULL))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C on a terminal reaches the workers too: give them a moment to mark their trials
        # failed and exit, and only then pass the interrupt on to any that did not get it.
        _wait_all(procs, 5)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _wait_all(procs, 30)
        for p in procs:
            if p.poll() is None:
                p.kill()  # its running trial goes stale and is retried on the next run
        raise
    return codes
