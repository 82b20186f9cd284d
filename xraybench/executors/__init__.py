"""Where the cases of a run train: in this process, on a Ray cluster, or as Slurm jobs.

An executor takes jobs (``submit``) and hands back each one's results rows (one per seed it trains) as it finishes
(``completions``), in any order; the runner writes results.json after each. Every executor
calls the same function, ``xraybench.train.worker.run_job``. A process that dies is retried up to
``max_retries`` times (``Retries``), then becomes a failed row naming the crash and where the log is.
Ray and submitit are optional extras, imported only when chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from xraybench.train import worker
from xraybench.train.worker import Job

NAMES = ("local", "ray", "slurm")


class ExecutorError(ValueError):
    """The executor cannot start: a missing extra, a flag for another executor, an unreachable cluster."""


@dataclass(frozen=True)
class ExecutorOptions:
    """The command line's executor flags. None: not given (each executor has its default)."""

    name: str = "local"
    device: str = "auto"  # --device: with cpu, no GPU is requested per case
    max_retries: int | None = None
    gpus_per_case: float | None = None
    cpus_per_case: int | None = None
    address: str | None = None  # ray
    placement_timeout: float | None = None  # ray: seconds to wait for a node that fits a case
    partition: str | None = None  # slurm
    account: str | None = None
    time_min: int | None = None
    array_parallelism: int | None = None
    log_dir: Path | None = None
    verbose: bool = False  # the executor's own messages (Ray's log lines and warnings) reach the terminal

    def flags(self, *fields: str) -> list[str]:
        """The command-line spelling of the given fields that were set."""
        return [f"--{f.replace('_', '-')}" for f in fields if getattr(self, f) is not None]


ONLY = {
    "ray": ("address", "placement_timeout"),
    "slurm": ("partition", "account", "time_min", "array_parallelism", "log_dir"),
}
REMOTE = ("max_retries", "gpus_per_case", "cpus_per_case")
DEFAULT_RETRIES = 1


@dataclass(frozen=True)
class Retries:
    """How often the driver resubmits a job whose worker died without a result (killed, out of memory, a lost
    node): ``--max-retries`` times, 1 unless given. Attempts count from 1; a job that dies on its last one is a
    failed row saying how many attempts it had. A job that ran and raised, or reached a time limit, is not
    retried: the same would happen again."""

    limit: int = DEFAULT_RETRIES

    @classmethod
    def of(cls, options: ExecutorOptions) -> Retries:
        return cls(DEFAULT_RETRIES if options.max_retries is None else options.max_retries)

    def again(self, attempt: int) -> bool:
        """Whether a job whose worker died on attempt ``attempt`` goes out again, as attempt ``attempt + 1``."""
        return attempt <= self.limit


class Executor(Protocol):
    name: str
    progress: bool  # whether jobs may draw progress bars on this terminal

    def probe(self, device: str, precision: str) -> dict: ...
    def submit(self, job: Job) -> None: ...
    def completions(self) -> Iterator[tuple[Job, list]]: ...
    def describe(self) -> str: ...
    def close(self) -> None: ...


class LocalExecutor:
    """One case after another in this process (the default): nothing to install, nothing to isolate."""

    name = "local"
    progress = True

    def __init__(self):
        self._queue: list[Job] = []

    def probe(self, device: str, precision: str) -> dict:
        return worker.probe(device, precision)

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def completions(self) -> Iterator[tuple[Job, list]]:
        while self._queue:
            job = self._queue.pop(0)
            yield job, worker.run_job(job)

    def describe(self) -> str:
        return "local (this process)"

    def close(self) -> None:
        self._queue.clear()


def validate(options: ExecutorOptions) -> None:
    """Flags that belong to another executor, or values out of range: one line naming the flag."""
    if options.name not in NAMES:
        raise ExecutorError(f"--executor {options.name}: expected one of {', '.join(NAMES)}")
    for name, fields in ONLY.items():
        if options.name != name and (misplaced := options.flags(*fields)):
            raise ExecutorError(
                f"{misplaced[0]} is an option of --executor {name} (this run: --executor {options.name})"
            )
    if options.name == "local" and (misplaced := options.flags(*REMOTE)):
        raise ExecutorError(
            f"{misplaced[0]} applies to --executor ray or slurm; the local executor runs every case "
            f"in this process on the one device"
        )
    for field, low in (
        ("max_retries", 0),
        ("gpus_per_case", 0),
        ("cpus_per_case", 1),
        ("time_min", 1),
        ("array_parallelism", 1),
        ("placement_timeout", 0),
    ):
        value = getattr(options, field)
        if value is not None and value < low:
            raise ExecutorError(f"--{field.replace('_', '-')} {value}: must be at least {low}")
    if options.gpus_per_case is not None and options.gpus_per_case > 1:
        raise ExecutorError(
            f"--gpus-per-case {options.gpus_per_case:g}: a case trains on one GPU; use 1, 0 (the CPU) "
            f"or, on Ray, a fraction to share a GPU between cases"
        )
    if options.name == "slurm" and options.gpus_per_case not in (None, 0, 1):
        raise ExecutorError(f"--gpus-per-case {options.gpus_per_case:g}: Slurm hands out whole GPUs; use 0 or 1")
    if options.name == "slurm" and options.log_dir is None:
        raise ExecutorError(
            "--executor slurm needs --log-dir DIR: a folder on a filesystem that every node "
            "reads and writes (job scripts, pickled jobs, logs)"
        )


def device_for(device: str, gpus: float) -> str:
    """The device request a job carries: a case given no GPU trains on the CPU, whatever
    CUDA_VISIBLE_DEVICES its worker inherited (Ray 2.x leaves it set for tasks without GPUs)."""
    if gpus:
        return device
    if device == "cuda":
        raise ExecutorError(
            "--device cuda with --gpus-per-case 0: a case with no GPU of its own trains on the "
            "CPU; give each case a GPU (--gpus-per-case 1) or use --device cpu"
        )
    return "cpu"


def create(options: ExecutorOptions) -> Executor:
    """The executor the options name; Ray and submitit are imported only here, and only when chosen."""
    validate(options)
    if options.name == "ray":
        from xraybench.executors.ray_executor import RayExecutor

        return RayExecutor(options)
    if options.name == "slurm":
        from xraybench.executors.slurm_executor import SlurmExecutor

        return SlurmExecutor(options)
    return LocalExecutor()


def require(module: str, extra: str):
    """Import an optional dependency, or fail with the one line that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExecutorError(
            f"--executor {extra} needs the {module} package: pip install 'xraybench[{extra}]'"
        ) from None


def pickle_by_value(builders: dict, cloudpickle) -> None:
    """Ship the modules of models registered outside xraybench by value: the workers never imported them."""
    import sys

    for fn in builders.values():
        module = sys.modules.get(fn.__module__)
        if module is not None and fn.__module__ != "__main__":  # __main__ is pickled by value anyway
            cloudpickle.register_pickle_by_value(module)
