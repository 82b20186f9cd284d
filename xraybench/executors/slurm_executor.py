"""Slurm through submitit: the cases go out as one job array, one case per array task.

Each task runs ``xraybench.worker.run_job`` with the Python of this process, so the
environment (xraybench installed), the data cache and ``--log-dir`` must be on a filesystem
every node sees. Slurm gives each task its GPU through CUDA_VISIBLE_DEVICES. A task that
dies without a result (killed, out of memory, node failure, time limit) is resubmitted up
to ``max_retries`` times, then is a failed row naming the Slurm state and the log file.
``cluster="local"`` runs the same code through submitit's local executor (the tests).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Iterator

from xraybench.train import worker
from xraybench.executors import ExecutorError, ExecutorOptions, device_for, pickle_by_value, require
from xraybench.train.worker import Job

DEFAULT_TIME_MIN = 60


def parameters(options: ExecutorOptions) -> dict:
    """submitit's parameters for one case: sbatch's --partition, --account, --time, --gpus-per-node, ..."""
    params = {"name": "xraybench", "nodes": 1, "tasks_per_node": 1,
              "timeout_min": options.time_min or DEFAULT_TIME_MIN,
              "gpus_per_node": int(options.gpus_per_case if options.gpus_per_case is not None
                                   else 0 if options.device == "cpu" else 1),
              "cpus_per_task": options.cpus_per_case or 4}
    for field in ("partition", "account", "array_parallelism"):
        if getattr(options, field) is not None:
            params[f"slurm_{field}"] = getattr(options, field)
    return params


class SlurmExecutor:
    name = "slurm"
    progress = False
    poll_s = 2.0

    def __init__(self, options: ExecutorOptions, cluster: str = "slurm"):
        self.submitit = submitit = require("submitit", "slurm")
        self.cloudpickle = require("cloudpickle", "slurm")
        self.options = options
        self.max_retries = 1 if options.max_retries is None else options.max_retries
        self.params = parameters(options)
        try:
            self.executor = submitit.AutoExecutor(folder=options.log_dir / "%j", cluster=cluster)
            self.executor.update_parameters(**self.params)
        except RuntimeError as exc:  # "Could not detect srun": not on a Slurm login node
            raise ExecutorError(f"--executor slurm: {exc}") from None
        if cluster == "local":
            self.poll_s = 0.2
        self._queue: list[Job] = []
        self._running: list[tuple[object, Job, int]] = []  # (submitit job, job, attempt)

    def probe(self, device: str, precision: str) -> dict:
        """One short job placed like a case tells the nodes' device and what ``auto`` picks there."""
        device = device_for(device, self.params["gpus_per_node"])
        if device != "auto" and precision != "auto":
            from xraybench.train.precision import choose
            return {"device": device, "precision": choose(precision, None), "slow_warning": None}
        print("slurm: one short job asks a node for its device and precision "
              "(--device and --precision given together skip this)")
        probe_job = self._submitted(lambda: self.executor.submit(worker.probe, device, precision))
        try:
            return probe_job.result()
        except self.submitit.core.utils.UncompletedJobError as exc:
            raise ExecutorError(f"--executor slurm: the probe job {probe_job.job_id} failed ({_last_line(exc)}); "
                                f"log: {probe_job.paths.stderr}") from None
        finally:
            if not probe_job.done():  # Ctrl-C while it waits in the queue
                probe_job.cancel(check=False)

    def submit(self, job: Job) -> None:
        pickle_by_value(job.builders, self.cloudpickle)
        self._queue.append(dataclasses.replace(job, device=device_for(job.device, self.params["gpus_per_node"])))

    def launch(self) -> None:
        """Submit the queued jobs as one job array (sbatch --array)."""
        if self._queue:
            def array():
                with self.executor.batch():
                    return [(self.executor.submit(worker.run_job, job), job) for job in self._queue]
            self._running += [(sjob, job, 1) for sjob, job in self._submitted(array)]
            self._queue.clear()

    def _submitted(self, submit):
        """``submit()``, with sbatch's refusal (a wrong partition or account, a QOS limit) as one line."""
        try:
            return submit()
        except self.submitit.core.utils.FailedJobError as exc:
            raise ExecutorError(f"--executor slurm: sbatch refused the job ({_last_line(exc)})") from None

    def completions(self) -> Iterator[tuple[Job, dict]]:
        self.launch()
        while self._running:
            finished = [entry for entry in self._running if entry[0].done()]
            if not finished:
                time.sleep(self.poll_s)
                continue
            for entry in finished:
                self._running.remove(entry)
                row = self._row(*entry)
                if row is not None:
                    yield entry[1], row

    def _row(self, sjob, job: Job, attempt: int) -> dict | None:
        """The finished job's row; None when it died and was resubmitted."""
        errors = self.submitit.core.utils
        where = {"slurm_job": sjob.job_id, "log": str(sjob.paths.stderr)}
        try:
            return sjob.result()
        except errors.FailedJobError as exc:  # run_job raised: submitit or the environment, not the case
            return worker.crash_row(job, f"the Slurm job {sjob.job_id} raised: {_last_line(exc)}; "
                                         f"log: {sjob.paths.stderr}", where)
        except errors.UncompletedJobError:  # died without a result: killed, OOM, node failure, time limit
            state = sjob.state
        if state.startswith("TIMEOUT"):  # the same limit would stop it again
            return worker.crash_row(job, f"the Slurm job {sjob.job_id} reached its time limit of "
                                         f"{self.params['timeout_min']} min; raise --time-min. Log: "
                                         f"{sjob.paths.stderr}", where)
        if attempt <= self.max_retries:
            resubmitted = self._submitted(lambda: self.executor.submit(worker.run_job, job))
            self._running.append((resubmitted, job, attempt + 1))
            return None
        return worker.crash_row(job, f"the Slurm job {sjob.job_id} died without a result (state {state}) "
                                     f"after {attempt} attempt(s); log: {sjob.paths.stderr}", where)

    def describe(self) -> str:
        shown = ", ".join(f"{k.removeprefix('slurm_')} {v}" for k, v in self.params.items() if k != "name")
        return f"slurm ({shown}; logs in {self.options.log_dir}; up to {self.max_retries} resubmission(s) of a dead job)"

    def close(self) -> None:
        for sjob, _, _ in self._running:
            try:
                sjob.cancel(check=False)
            except Exception:  # cancelling is best effort: the job may have just finished
                pass
        self._running.clear()
        self._queue.clear()


def _last_line(exc: Exception) -> str:
    """The job's own error from a submitit error: the last line of the traceback it carries (submitit
    appends the log paths after it), else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    return errors[-1] if errors else (lines[0] if lines else type(exc).__name__)
