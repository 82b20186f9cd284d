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
import dataclasses
import functools
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from xraybench import environment, results
from xraybench.data.cache import CachedData
from xraybench.data.sources import Dataset
from xraybench.models import registry
from xraybench.models.info import model_info
from xraybench.models.weights import WeightsMissing
from xraybench.results import Epoch, Metrics, ModelInfo, Row
from xraybench.train import memory
from xraybench.train.engine import train_case
from xraybench.train.logs import EpochLog
from xraybench.train.objectives import OBJECTIVES
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
    executor: str = "local"
    progress: bool = True  # a per-step bar on stderr (the local executor's terminal)
    builders: dict[str, Callable] = field(default_factory=dict)  # models registered outside xraybench
    resume: bool = True  # an executor may hand back this training's result from an earlier driver (not --force)
    run: str = ""  # the run directory: part of the identity, so another run never receives this one's rows
    tensorboard: bool = False  # TensorBoard event files beside the live CSV log (train/logs.py)
    timeout_s: float | None = None  # --case-timeout: a training past it is stopped and recorded as failed

    @property
    def key(self) -> tuple[str, int]:
        return self.case.id, self.case.train.seed

    @property
    def identity(self) -> str:
        """What makes two jobs the same training: run, case, seed, configuration, data, device, precision,
        determinism."""
        return (
            f"{self.run}|{self.case.id}|seed {self.case.train.seed}|{self.case.config_hash}|"
            f"{getattr(self.data, 'entry', '')}|{self.device}|{self.precision.name}|"
            f"deterministic {self.deterministic}|max {self.max_per_split}"
        )


def run_job(job: Job) -> Row:
    """Train ``job.case`` and return its row (status ok, failed or skipped); never raises for a case's
    own errors, nor for the worker's (a cache not on a shared filesystem, a model it cannot import)."""
    started = time.time()
    try:
        registry.adopt(job.builders)
        device = environment.worker_device(job.device)
        environment.configure(device, deterministic=job.deterministic)
        data = open_dataset(job.data, job.max_per_split)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        row = crash_row(
            job, f"{type(exc).__name__}: {exc} (on the worker, before training)", worker_info(job.executor, None)
        )
        row.traceback = traceback.format_exc(limit=-4)
        return row
    try:
        with time_limit(job.timeout_s):
            log = EpochLog(job.run, job.case.id, job.case.train.seed, tensorboard=job.tensorboard) if job.run else None
            row = train_one(
                job.case,
                data,
                device,
                precision=job.precision,
                eval_batch_size=job.eval_batch_size,
                progress=job.progress,
                log=log,
            )
    except CaseTimeout as exc:
        return crash_row(job, f"timed out: {exc}", {**worker_info(job.executor, device), "started_unix": started})
    row.worker = {**worker_info(job.executor, device), "started_unix": started, "finished_unix": time.time()}
    return row


class CaseTimeout(BaseException):
    """A training ran past --case-timeout. Not an Exception: no ``except Exception`` on the way out (the
    model-cost probe, the engine) may swallow it and let the training run on."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise CaseTimeout in the training once ``seconds`` have passed (SIGALRM: the main thread only, which is
    where every executor calls ``run_job``; elsewhere the executor's own limit is the one that applies)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"no result within {seconds:g} s (--case-timeout {seconds:g})")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
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


def crash_row(job: Job, reason: str, worker: dict) -> Row:
    """The row of a job whose process died (or could not run): failed, with the engine's reason."""
    return results.crash_row(job.case, job.executor, reason, worker)


def train_one(
    case: Case,
    data: Dataset,
    device: torch.device,
    *,
    precision: Precision = FP32,
    eval_batch_size: int = 256,
    progress: bool = True,
    log: EpochLog | None = None,
) -> Row:
    """Train and test one case (one seed); a failure is a row, not an exception. ``log`` receives every
    epoch's row as it happens (the live CSV and TensorBoard files)."""
    row = results.case_row(case)
    try:
        costs = model_info(
            case, device, num_outputs=OBJECTIVES[case.train.loss].num_outputs, autocast=precision.autocast
        )
    except Exception as exc:  # costs are extra information; the case still runs
        costs = {"error": f"{type(exc).__name__}: {exc}"}
    row.model_info = ModelInfo.model_validate(costs)
    steps = case.train.epochs * -(-len(data.splits["train"]) // case.train.batch_size)
    bar = tqdm(
        total=steps,
        desc=case.id,
        unit="step",
        leave=False,
        dynamic_ncols=True,
        disable=None if progress else True,
        file=sys.stderr,
    )

    def on_epoch(epoch_row: dict) -> None:
        if log is not None:
            log.write(epoch_row)
        bar.set_postfix_str(
            f"ep {epoch_row['epoch']}/{case.train.epochs} loss {epoch_row['train_loss']:.3f} "
            f"acc {epoch_row['train_acc']:.3f} val {epoch_row['val_acc']:.3f}"
        )

    def record_op(op: str) -> None:
        row.nondeterministic_ops = sorted({*row.nondeterministic_ops, op})

    def attempt(case: Case) -> dict:
        if log is not None:
            log.start()  # afresh: an out-of-memory retry starts its epochs over
        with environment.keep_freed_memory(), environment.nondeterministic_ops(record_op):
            return train_case(
                case,
                data,
                device,
                eval_batch_size=eval_batch_size,
                precision=precision,
                on_batch=lambda: bar.update(1),
                on_epoch=on_epoch,
            )

    def retry_smaller(case: Case) -> dict:
        """The training ran out of memory: its batch halves (evaluation's halves in the engine, where it runs out)."""
        half = max(1, case.train.batch_size // 2)
        row.retry = f"CUDA out of memory at batch size {case.train.batch_size}; retried with {half}"
        bar.reset(total=case.train.epochs * -(-len(data.splits["train"]) // half))
        case = dataclasses.replace(case, train=dataclasses.replace(case.train, batch_size=half))
        row.config = case.config()
        return attempt(case)

    try:
        outcome = _with_oom_retry(lambda: attempt(case), lambda: retry_smaller(case))
        row.history = [Epoch.model_validate(epoch) for epoch in outcome["history"]]
        row.metrics = Metrics.model_validate(outcome["metrics"])
        row.predictions = {
            split: [results.stored_probability(p) for p in probs] for split, probs in outcome["predictions"].items()
        }
        degenerate = results.degeneracy(row.metrics)
        if degenerate:  # a model no better than one class for every image: said wherever the row is read
            row.warnings = [f"degenerate: {degenerate}"]
    except (KeyboardInterrupt, SystemExit):
        raise
    except WeightsMissing as exc:  # never train a "pretrained" case from random weights
        row.status, row.reason, row.needs = "skipped", str(exc), "weights"
    except Exception as exc:  # a failing case is a result, not the end of the suite
        row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}"
        row.traceback = traceback.format_exc(limit=-4)
    finally:
        bar.close()
        if log is not None:
            log.close()
            if log.error:
                row.log_error = log.error
    row.finished = results.now()
    return row


def _with_oom_retry(first, retry):
    """``first()``; if it runs out of CUDA memory (``memory.is_out_of_memory``), ``retry()`` once (with half the
    batch). Evaluation's out-of-memory errors do not come here: the engine halves its batch and goes on.

    The retry runs after the ``except`` block, not in it: while an exception is being handled,
    its traceback keeps the first attempt's frames alive — model, optimizer state, data and
    activations — and the retry would run out of memory again beside them.
    """
    try:
        return first()
    except Exception as exc:
        if not memory.is_out_of_memory(exc):
            raise
    memory.release()  # frames of the first attempt may sit in reference cycles, their blocks in the cache
    return retry()
