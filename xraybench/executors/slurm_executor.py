"""Slurm through submitit: the cases go out as one job array, one case per array task.

Each task runs ``xraybench.train.worker.run_job`` with the Python of this process, so the
environment (xraybench installed), the data cache and ``--log-dir`` must be on a filesystem
every node sees. Slurm gives each task its GPU through CUDA_VISIBLE_DEVICES. A task that
dies without a result (killed, out of memory, node failure, time limit) is resubmitted up
to ``max_retries`` times, then is a failed row naming the Slurm state and the log file.

Jobs outlive their driver: every submission is recorded in ``--log-dir/submitted.jsonl`` under the
training's identity (case, seed, configuration hash, data, precision). A driver that dies (SIGKILL, a
dropped ssh session, a rebooted login node) loses nothing: the next one, resuming the run, adopts each
recorded job instead of submitting it again — a finished job's result is read from its pickle, a
queued or running one is waited for. ``cluster="local"`` runs the same code through submitit's local
executor (the tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from xraybench.executors import ExecutorError, ExecutorOptions, Retries, device_for, pickle_by_value, require
from xraybench.train import worker
from xraybench.train.worker import Job

DEFAULT_TIME_MIN = 60
MANIFEST = "submitted.jsonl"
WAITING = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "PREEMPTED")


def parameters(options: ExecutorOptions) -> dict:
    """submitit's parameters for one case: sbatch's --partition, --account, --time, --gpus-per-node, ..."""
    params = {
        "name": "xraybench",
        "nodes": 1,
        "tasks_per_node": 1,
        "timeout_min": options.time_min or DEFAULT_TIME_MIN,
        "gpus_per_node": int(
            options.gpus_per_case if options.gpus_per_case is not None else 0 if options.device == "cpu" else 1
        ),
        "cpus_per_task": options.cpus_per_case or 4,
    }
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
        self.retries = Retries.of(options)
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
        self.manifest = options.log_dir / MANIFEST
        self._earlier = _read_manifest(self.manifest)  # identity → job id, from drivers before this one
        self.adopted = 0

    def probe(self, device: str, precision: str) -> dict:
        """One short job placed like a case tells the nodes' device, what ``auto`` picks there, and the machine
        results.json records — always: the login node this driver runs on is not the machine that trains."""
        device = device_for(device, self.params["gpus_per_node"])
        print("slurm: one short job asks a node for its device, precision and machine (recorded in results.json)")
        probe_job = self._submitted(lambda: self.executor.submit(worker.probe, device, precision))
        try:
            return probe_job.result()
        except self.submitit.core.utils.UncompletedJobError as exc:
            raise ExecutorError(
                f"--executor slurm: the probe job {probe_job.job_id} failed ({_last_line(exc)}); "
                f"log: {probe_job.paths.stderr}"
            ) from None
        finally:
            if not probe_job.done():  # Ctrl-C while it waits in the queue
                probe_job.cancel(check=False)

    def submit(self, job: Job) -> None:
        pickle_by_value(job.builders, self.cloudpickle)
        job = dataclasses.replace(job, device=device_for(job.device, self.params["gpus_per_node"]))
        earlier = self._earlier.get(job.identity) if job.resume else None
        if earlier and (sjob := self._adopt(job, earlier)) is not None:
            self._running.append((sjob, job, 1))
            self.adopted += 1
        else:
            self._queue.append(job)

    def _adopt(self, job: Job, job_id: str):
        """The earlier driver's job for ``job``, if it finished ok or still waits or runs; else None (then it
        is submitted again: a failed or timed-out row is not handed back, nor the job of a reused id)."""
        sjob = self.executor._executor.job_class(folder=self.executor._executor.folder, job_id=job_id)
        try:
            if sjob.submission().args[0].identity != job.identity:  # the id now names another job
                return None
            if sjob.paths.result_pickle.exists():
                outcome, rows = self.submitit.core.utils.pickle_load(sjob.paths.result_pickle)
                finished = outcome == "success" and isinstance(rows, list)  # not a row: an older driver's
                return sjob if finished and all(getattr(row, "ok", False) for row in rows) else None
        except Exception:  # a missing or unreadable pickle: nothing to adopt
            return None
        if isinstance(sjob, self.submitit.local.local.LocalJob):  # it knows its process only in its own driver
            return _OrphanedLocalJob(sjob) if _alive(int(job_id)) else None
        return sjob if sjob.state.split()[0] in WAITING else None

    def launch(self) -> None:
        """Submit the queued jobs as one job array (sbatch --array), and record them for a later driver."""
        if self.adopted:
            print(
                f"slurm: {self.adopted} job(s) of an earlier driver adopted (finished or still queued or running; "
                f"recorded in {self.manifest}), not submitted again"
            )
            self.adopted = 0
        if self._queue:

            def array():
                with self.executor.batch():
                    return [(self.executor.submit(worker.run_job, job), job) for job in self._queue]

            submitted = self._submitted(array)
            self._running += [(sjob, job, 1) for sjob, job in submitted]  # close() can cancel them from here
            self._queue.clear()
            self._record(submitted)

    def _record(self, submitted: list[tuple[object, Job]]) -> None:
        """Append each job's identity and id to the manifest, on disk before the driver waits for anything: one
        O_APPEND write per line, so two drivers sharing --log-dir do not interleave within a line."""
        try:
            self.manifest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for sjob, job in submitted:
                    os.write(fd, (json.dumps({"identity": job.identity, "job_id": str(sjob.job_id)}) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ExecutorError(
                f"{self.manifest}: cannot record the submitted jobs ({exc.strerror}); --log-dir must "
                f"be writable (the jobs just submitted are cancelled)"
            ) from None

    def _submitted(self, submit):
        """``submit()``, with sbatch's refusal (a wrong partition or account, a QOS limit) as one line."""
        try:
            return submit()
        except self.submitit.core.utils.FailedJobError as exc:
            raise ExecutorError(f"--executor slurm: sbatch refused the job ({_last_line(exc)})") from None

    def completions(self) -> Iterator[tuple[Job, list]]:
        self.launch()
        while self._running:
            finished = [entry for entry in self._running if entry[0].done()]
            if not finished:
                time.sleep(self.poll_s)
                continue
            for entry in finished:
                self._running.remove(entry)
                rows = self._rows(*entry)
                if rows is not None:
                    yield entry[1], rows

    def _rows(self, sjob, job: Job, attempt: int) -> list | None:
        """The finished job's rows (one per seed); None when it died and was resubmitted."""
        errors = self.submitit.core.utils
        where = {"slurm_job": sjob.job_id, "log": str(sjob.paths.stderr)}
        try:
            return sjob.result()
        except errors.FailedJobError as exc:  # run_job raised: submitit or the environment, not the case
            return worker.crash_row(
                job, f"the Slurm job {sjob.job_id} raised: {_last_line(exc)}; log: {sjob.paths.stderr}", where
            )
        except errors.UncompletedJobError:  # died without a result: killed, OOM, node failure, time limit
            state = sjob.state
        if state.startswith("TIMEOUT"):  # the same limit would stop it again
            return worker.crash_row(
                job,
                f"the Slurm job {sjob.job_id} reached its time limit of "
                f"{self.params['timeout_min']} min; raise --time-min. Log: "
                f"{sjob.paths.stderr}",
                where,
            )
        if self.retries.again(attempt):
            resubmitted = self._submitted(lambda: self.executor.submit(worker.run_job, job))
            self._running.append((resubmitted, job, attempt + 1))
            self._record([(resubmitted, job)])
            return None
        return worker.crash_row(
            job,
            f"the Slurm job {sjob.job_id} died without a result (state {state}) "
            f"after {attempt} attempt(s); log: {sjob.paths.stderr}",
            where,
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k.removeprefix('slurm_')} {v}" for k, v in self.params.items() if k != "name")
        return (
            f"slurm ({shown}; logs in {self.options.log_dir}; up to {self.retries.limit} resubmission(s) of a dead job)"
        )

    def close(self) -> None:
        for sjob, _, _ in self._running:
            with contextlib.suppress(Exception):  # cancelling is best effort: the job may have just finished
                sjob.cancel(check=False)
        self._running.clear()
        self._queue.clear()


class _OrphanedLocalJob:
    """A local job adopted from a driver that died: submitit's LocalJob polls its process only in the driver
    that started it; here the job is done once its result pickle is written or its process is gone."""

    def __init__(self, job):
        self.job = job

    def done(self) -> bool:
        return self.job.paths.result_pickle.exists() or not _alive(int(self.job.job_id))

    def cancel(self, check: bool = True) -> None:  # LocalJob.cancel needs the process object it lacks here
        with contextlib.suppress(OSError):
            os.kill(int(self.job.job_id), signal.SIGINT)

    def __getattr__(self, name: str):
        return getattr(self.job, name)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, finished but not reaped by its new parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): trust the signal
        return True


def _read_manifest(path) -> dict[str, str]:
    """identity → the latest job id recorded for it; a line cut short by a killed driver is skipped."""
    found = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            found[entry["identity"]] = entry["job_id"]
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _last_line(exc: Exception) -> str:
    """The job's own error from a submitit error: the last line of the traceback it carries (submitit
    appends the log paths after it), else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    return errors[-1] if errors else (lines[0] if lines else type(exc).__name__)
