"""Ray core tasks: one task per case, ``num_gpus`` per task.

Ray sets CUDA_VISIBLE_DEVICES for each GPU task, so a case uses device 0 of what it sees,
and with ``max_calls=1`` every GPU case gets a fresh worker process (its CUDA memory goes
with it). A case given no GPU trains on the CPU: Ray 2.x leaves CUDA_VISIBLE_DEVICES alone
for such tasks, so the device is set, not found. A worker that dies (SIGKILL, the kernel's or
Ray's OOM killer, a lost node) is resubmitted by the driver up to ``max_retries`` times —
not by Ray, whose OOM killer retries its victims without limit — then the case is a failed
row naming the crash and where the worker logs are. ``--address`` reaches an existing
cluster; without it a local Ray instance is started here and shut down at the end. A
process that has already called ``ray.init`` (a notebook, a test) is used as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from xraybench.train import worker
from xraybench.executors import ExecutorError, ExecutorOptions, device_for, pickle_by_value, require
from xraybench.train.worker import Job

DIED = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ActorDiedError")


class RayExecutor:
    name = "ray"
    progress = False

    def __init__(self, options: ExecutorOptions):
        self.ray = ray = require("ray", "ray")
        self.options = options
        self.initialised_here = False
        if not ray.is_initialized():
            try:
                ray.init(address=options.address, include_dashboard=False, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"--address {options.address}: cannot reach a Ray cluster "
                                    f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            self.initialised_here = True
        try:
            self._check_resources(options)
        except ExecutorError:
            self.close()
            raise
        self.max_retries = 1 if options.max_retries is None else options.max_retries
        # Ray itself retries nothing: its OOM killer would retry without limit. The driver resubmits.
        self._task = ray.remote(num_gpus=self.gpus, num_cpus=self.cpus, max_retries=0, retry_exceptions=False,
                                max_calls=1 if self.gpus else 0)(worker.run_job)
        self._pending: dict = {}  # object ref → (job, attempt)

    def _check_resources(self, options: ExecutorOptions) -> None:
        resources = self.ray.cluster_resources()
        self.cluster_gpus, self.cluster_cpus = resources.get("GPU", 0), resources.get("CPU", 0)
        self.gpus = options.gpus_per_case if options.gpus_per_case is not None else \
            (1 if self.cluster_gpus and options.device != "cpu" else 0)
        self.cpus = options.cpus_per_case or 1
        if self.gpus > self.cluster_gpus:
            raise ExecutorError(f"--gpus-per-case {self.gpus:g}: the Ray cluster has {self.cluster_gpus:g} GPU(s); "
                                f"use --gpus-per-case 0 to train on its CPUs")
        if self.cpus > self.cluster_cpus:
            raise ExecutorError(f"--cpus-per-case {self.cpus}: the Ray cluster has {self.cluster_cpus:g} CPU(s)")

    def probe(self, device: str, precision: str) -> dict:
        """Ask one task placed like a case what it finds (the driver may have no GPU of its own)."""
        device = device_for(device, self.gpus)
        task = self.ray.remote(num_gpus=self.gpus, num_cpus=self.cpus, max_calls=1 if self.gpus else 0)(worker.probe)
        return self.ray.get(task.remote(device, precision))

    def submit(self, job: Job, attempt: int = 1) -> None:
        pickle_by_value(job.builders, self.ray.cloudpickle)
        job = dataclasses.replace(job, device=device_for(job.device, self.gpus))
        self._pending[self._task.remote(job)] = job, attempt

    def completions(self) -> Iterator[tuple[Job, dict]]:
        while self._pending:
            (ref,), _ = self.ray.wait(list(self._pending), num_returns=1)
            job, attempt = self._pending.pop(ref)
            try:
                row = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:  # run_job raised (it returns a case's own errors)
                row = worker.crash_row(job, f"{type(exc.cause).__name__}: {exc.cause} (in a Ray worker)",
                                       {"log": self._logs()})
            except self.ray.exceptions.RayError as exc:  # the worker process or its node died, or Ray gave up
                if type(exc).__name__ in DIED and attempt <= self.max_retries:
                    self.submit(job, attempt + 1)
                    continue
                first_line = next((line for line in str(exc).splitlines() if line.strip()), "").strip()
                what = "the Ray worker died" if type(exc).__name__ in DIED else "Ray could not run the case"
                row = worker.crash_row(job, f"{type(exc).__name__}: {what}, {attempt} attempt(s) ({first_line}); "
                                            f"worker logs: {self._logs()}", {"log": self._logs()})
            yield job, row

    def _logs(self) -> str:
        try:
            from ray._private import worker as ray_worker
            return ray_worker._global_node.get_logs_dir_path() + " (python-core-worker-*.log, worker-*.err)"
        except Exception:  # a client connection, or the private API moved
            return "/tmp/ray/session_latest/logs on the node that ran it"

    def describe(self) -> str:
        where = f"cluster at {self.options.address}" if self.options.address else \
            ("local instance" if self.initialised_here else "the Ray instance of this process")
        return (f"ray ({where}: {self.cluster_gpus:g} GPU(s), {self.cluster_cpus:g} CPU(s); per case {self.gpus:g} "
                f"GPU, {self.cpus} CPU; up to {self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'} "
                f"of a dead worker)")

    def close(self) -> None:
        for ref in getattr(self, "_pending", {}):
            self.ray.cancel(ref, force=True)
        self._pending = {}
        if self.initialised_here:
            self.ray.shutdown()
            self.initialised_here = False

