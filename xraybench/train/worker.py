"""Train one case and return its results row: the function every executor calls.

``run_job(job)`` runs in the driver's process (the local executor), in a Ray worker or in a
Slurm job. Everything it needs travels in the ``Job``: the case as planned (profile, seed,
random initialisation applied), where the decoded data lies in the cache, and how to train
(device request, precision, determinism). It returns the row; only the driver writes results.json (the
worker writes the live per-epoch logs under the run directory: train/logs.py). A case that raises becomes
a failed row; a process that dies is the executor's to report (``crash_row``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from xraybench import environment, results
from xraybench.data.cache import CachedData
from xraybench.data.sources import Dataset
from xraybench.models import registry
from xraybench.results import Row
from xraybench.train import trainings
from xraybench.train.logs import EpochLog
from xraybench.train.precision import FP32, Precision

if TYPE_CHECKING:
    from xraybench.cases import Case


@dataclass(frozen=True)
class Job:
    case: Case  # as planned: profile, seed and random initialisation applied
    data: CachedData
    max_per_split: int | None
    eval_batch_size: int
    device: str = "auto"  # resolved where the job runs: auto, cpu or cuda
    precision: Precision = FP32
    deterministic: bool = False
    tf32: bool = False  # fp32 products in TF32 on CUDA (--tf32)
    executor: str = "local"
    progress: bool = True  # a per-step bar on stderr (the local executor's terminal)
    builders: dict[str, Callable] = field(default_factory=dict)  # models registered outside xraybench
    resume: bool = True  # an executor may hand back this training's result from an earlier driver (not --force)
    run: str = ""  # the run directory: part of the identity, so another run never receives this one's rows
    tensorboard: bool = False  # TensorBoard event files beside the live CSV log (train/logs.py)
    timeout_s: float | None = None  # --case-timeout: a training past it is stopped and recorded as failed
    more_seeds: tuple[Case, ...] = ()  # the case's other seeds, trained in the same pass (train/seed_batch.py)

    @property
    def cases(self) -> tuple[Case, ...]:
        """The trainings of this job: the case, once per seed."""
        return self.case, *self.more_seeds

    @property
    def identity(self) -> str:
        """What makes two jobs the same training: run, case, seeds, configuration, data, device, precision,
        determinism."""
        seeds = ",".join(str(c.train.seed) for c in self.cases)
        return (
            f"{self.run}|{self.case.id}|seed {seeds}|{self.case.config_hash}|"
            f"{getattr(self.data, 'entry', '')}|{self.device}|{self.precision.name}|"
            f"deterministic {self.deterministic}|tf32 {self.tf32}|max {self.max_per_split}"
        )


def run_job(job: Job) -> list[Row]:
    """Train the job's seeds (``job.cases``: one, or several in one pass) and return a row for each (status ok,
    failed or skipped); never raises for a case's own errors, nor for the worker's (a cache not on a shared
    filesystem, a model it cannot import)."""
    started = time.time()
    try:
        registry.adopt(job.builders)
        device = environment.worker_device(job.device)
        environment.configure(device, deterministic=job.deterministic, tf32=job.tf32)
        data = open_dataset(job.data, job.max_per_split)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        rows = crash_row(
            job, f"{type(exc).__name__}: {exc} (on the worker, before training)", worker_info(job.executor, None)
        )
        for row in rows:
            row.traceback = traceback.format_exc(limit=-4)
        return rows
    settings = dict(precision=job.precision, eval_batch_size=job.eval_batch_size, progress=job.progress)
    try:
        with time_limit(job.timeout_s, len(job.cases)):
            logs = [
                EpochLog(job.run, c.id, c.train.seed, tensorboard=job.tensorboard) if job.run else None
                for c in job.cases
            ]
            if job.more_seeds:
                rows = trainings.train_together(job.cases, data, device, logs=logs, **settings)
            else:
                rows = [trainings.train_one(job.case, data, device, log=logs[0], **settings)]
    except CaseTimeout as exc:
        return crash_row(job, f"timed out: {exc}", {**worker_info(job.executor, device), "started_unix": started})
    for row in rows:
        row.worker = {**worker_info(job.executor, device), "started_unix": started, "finished_unix": time.time()}
    return rows


class CaseTimeout(BaseException):
    """A training ran past --case-timeout. Not an Exception: no ``except Exception`` on the way out (the
    model-cost probe, the engine) may swallow it and let the training run on."""


@contextlib.contextmanager
def time_limit(seconds: float | None, trainings: int = 1):
    """Raise CaseTimeout once ``seconds`` per training have passed (a pass of K seeds gets K times the limit).
    SIGALRM: the main thread only, which is where every executor calls ``run_job``; elsewhere the executor's own
    limit is the one that applies."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    each = f" × {trainings} seeds in one pass" if trainings > 1 else ""

    def expire(signum, frame):
        raise CaseTimeout(f"no result within {seconds * trainings:g} s (--case-timeout {seconds:g}{each})")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds * trainings)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


def probe(device: str, precision: str) -> dict:
    """Where jobs would run: the device they resolve to, the precision ``auto`` picks there, the worker's
    machine and software (the driver may be a login node with neither its GPU nor its threads);
    {"error": ...} for a request the worker cannot meet (--device cuda without a GPU)."""
    from xraybench.train import precision as precision_mod

    try:
        resolved = environment.worker_device(device)
        chosen = precision_mod.choose(precision, resolved)
    except ValueError as exc:  # DeviceError, PrecisionError: the user's to fix
        return {"error": str(exc)}
    return {
        "device": resolved.type,
        "precision": chosen,
        "slow_warning": precision_mod.slow_warning(chosen, resolved),
        # Why a machine that seems to have a GPU trains on the CPU (a driver too old for this torch), for the
        # driver to print: a Slurm or Ray worker's stderr is not the user's terminal.
        "device_note": environment.cpu_fallback_note() if device == "auto" and resolved.type == "cpu" else None,
        "worker": worker_info("probe", resolved),
        "machine_info": environment.machine_info(),
        "software": environment.software_info(resolved),
    }


@functools.lru_cache(maxsize=4)
def open_dataset(data: CachedData, max_per_split: int | None) -> Dataset:
    """Mapped once per process and image size: a reused worker (Ray's CPU workers, the local executor)
    keeps it for the next case."""
    return data.open().limited(max_per_split)


def worker_info(executor: str, device: torch.device | None) -> dict:
    """Which process and device ran a case (the report lists them)."""
    gpu = torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else None
    return {
        "executor": executor,
        "host": socket.gethostname() or platform.node(),
        "pid": os.getpid(),
        "device": str(device) if device is not None else "unknown",
        "gpu": gpu,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def crash_row(job: Job, reason: str, worker: dict) -> list[Row]:
    """The rows of a job whose process died (or could not run): failed, with the engine's reason."""
    return [results.crash_row(case, job.executor, reason, worker) for case in job.cases]
