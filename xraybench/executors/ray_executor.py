"""Ray actors: one per slot (a case's ``num_gpus`` and ``num_cpus``), each training case after case.

An actor keeps its process, so a case after its first pays no process start, torch import, CUDA context or data
mapping (benchmarks/ray_overhead.py). It keeps its GPU too: Ray sets CUDA_VISIBLE_DEVICES when it creates an actor
and never for its method calls, so every case of an actor runs on the GPU its CUDA context was made for, device 0
of what it sees. (A task worker reused across GPU tasks, ``max_calls=0``, may be handed another GPU id than the one
its context was made for, and would train there beside another case.) Between cases the actor gives its cached
CUDA memory back. A case given no GPU trains on the CPU: Ray 2.x leaves CUDA_VISIBLE_DEVICES alone for such actors,
so the device is set, not found. The driver starts as many actors as the live nodes can run at once (more as the
autoscaler adds nodes) and queues the other cases. An actor that dies (SIGKILL, the kernel's or Ray's OOM killer, a
lost node) is replaced, and its case resubmitted by the driver up to ``max_retries`` times — not by Ray — then the
case is a failed row naming the crash and where the worker logs are. ``--address`` reaches an existing
cluster; without it a local Ray instance is started here and shut down at the end. A
process that has already called ``ray.init`` (a notebook, a test) is used as it is.

A case's resources must fit one node, not the cluster's totals: the request is checked against
each live node before anything is submitted. Where none fits yet (GPU workers scaled to zero on an
autoscaling or KubeRay cluster) the driver waits up to ``--placement-timeout`` for the autoscaler,
then stops with one line naming what was asked and what the cluster offers. ``--device cuda`` never
falls back to the CPU; ``auto`` trains on CPUs only where the cluster has no GPU and says so.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterator

from xraybench.executors import ExecutorError, ExecutorOptions, Retries, device_for, pickle_by_value, require
from xraybench.train import memory, worker
from xraybench.train.worker import Job

# Errors after which a process's CUDA context stays broken (every later kernel fails): its actor is replaced.
CUDA_CONTEXT_LOST = ("CUDA error", "AcceleratorError", "device-side assert", "illegal memory access")
DIED = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ActorDiedError", "ActorUnavailableError")
DEFAULT_PLACEMENT_TIMEOUT_S = 300.0
POLL_S = 2.0
PROBE_RUN_S = 120.0  # the probe's own run (a fresh worker imports torch), on top of the placement timeout


def fitting_nodes(nodes: list[dict], gpus: float, cpus: float) -> list[dict]:
    """The live nodes (``ray.nodes()``) with at least ``gpus`` GPUs and ``cpus`` CPUs of their own."""
    return [
        n
        for n in nodes
        if n.get("Alive") and n["Resources"].get("GPU", 0) >= gpus and n["Resources"].get("CPU", 0) >= cpus
    ]


def slots(nodes: list[dict], gpus: float, cpus: float) -> int:
    """How many cases the live nodes can train at once, each within one node."""
    total = 0
    for node in nodes:
        if node.get("Alive"):
            have = node["Resources"]
            fits = [have.get("CPU", 0) // cpus] + ([have.get("GPU", 0) // gpus] if gpus else [])
            total += int(min(fits))
    return total


class CaseWorker:
    """The actor of one slot: ``worker.run_job`` case after case in one process, on the GPU it was created with."""

    def run(self, job: Job) -> list:
        try:
            return worker.run_job(job)
        finally:
            memory.release()  # the next case starts from an empty CUDA cache: its reserved peak is its own


def offer(nodes: list[dict]) -> str:
    """What the live nodes have, e.g. "2 node(s): 8 CPU + 0 GPU, 8 CPU + 0 GPU"."""
    live = [n["Resources"] for n in nodes if n.get("Alive")]
    return f"{len(live)} node(s): " + ", ".join(f"{r.get('CPU', 0):g} CPU + {r.get('GPU', 0):g} GPU" for r in live)


class RayExecutor:
    name = "ray"
    progress = False

    def __init__(self, options: ExecutorOptions):
        self.ray = ray = require("ray", "ray")
        self.options = options
        self.initialised_here = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=options.address,
                    include_dashboard=False,
                    log_to_driver=options.verbose,
                    logging_level=logging.INFO if options.verbose else logging.ERROR,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(
                    f"--address {options.address}: cannot reach a Ray cluster "
                    f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                ) from None
            self.initialised_here = True
        self.placement_timeout_s = (
            DEFAULT_PLACEMENT_TIMEOUT_S if options.placement_timeout is None else options.placement_timeout
        )
        try:
            self._place(options)
        except BaseException:  # a refusal, Ctrl-C while waiting, or Ray failing: stop what this started
            self.close()
            raise
        self.retries = Retries.of(options)
        # Ray itself restarts and retries nothing: the driver replaces a dead actor and resubmits its case.
        self._actor = ray.remote(num_gpus=self.gpus, num_cpus=self.cpus, max_restarts=0, max_task_retries=0)(CaseWorker)
        self._actors: list = []  # alive: busy or idle
        self._idle: list = []
        self._queue: deque[tuple[Job, int]] = deque()  # cases waiting for an actor
        self._pending: dict = {}  # object ref → (job, attempt, actor)
        self._asked = 0  # cases the autoscaler was last asked to make room for

    def _place(self, options: ExecutorOptions) -> None:
        """Per-case resources that fit one live node, waiting up to the placement timeout for the autoscaler."""
        resources = self.ray.cluster_resources()
        self.cluster_gpus, self.cluster_cpus = resources.get("GPU", 0), resources.get("CPU", 0)
        if options.gpus_per_case is not None:
            self.gpus = options.gpus_per_case
        elif options.device == "cuda":
            self.gpus = 1  # asked for: wait for a GPU node rather than train on CPUs
        else:
            self.gpus = 1 if self.cluster_gpus and options.device != "cpu" else 0
            if not self.gpus and options.device == "auto":
                print(
                    "ray: the cluster has no GPU now, so cases train on CPUs (--device cuda waits up to "
                    "--placement-timeout for the autoscaler to start a GPU node)"
                )
        self.cpus = options.cpus_per_case or 1
        deadline, asked = time.monotonic() + self.placement_timeout_s, False
        try:
            while not fitting_nodes(nodes := self.ray.nodes(), self.gpus, self.cpus):
                if time.monotonic() >= deadline:
                    raise ExecutorError(
                        f"ray: no node can take a case asking for {self.gpus:g} GPU and {self.cpus} "
                        f"CPU (--gpus-per-case, --cpus-per-case) within --placement-timeout "
                        f"{self.placement_timeout_s:g} s; the cluster offers {offer(nodes)}"
                    )
                if not asked:
                    print(
                        f"ray: no node has {self.gpus:g} GPU and {self.cpus} CPU yet ({offer(nodes)}); asking the "
                        f"autoscaler for one and waiting up to {self.placement_timeout_s:g} s"
                    )
                    self._ask_autoscaler([{"GPU": self.gpus, "CPU": self.cpus}] if self.gpus else [{"CPU": self.cpus}])
                    asked = True
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        finally:
            if asked:  # the request persists until replaced: withdraw it, found or not (the tasks hold the node)
                self._ask_autoscaler([])
        resources = self.ray.cluster_resources()
        self.cluster_gpus, self.cluster_cpus = resources.get("GPU", 0), resources.get("CPU", 0)

    def _ask_autoscaler(self, bundles: list[dict]) -> None:
        """An autoscaler starts nodes for pending work only; ask it for a node of this shape now (no-op where
        the cluster does not autoscale; a client connection may not offer the call)."""
        try:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)
        except Exception:  # a hint only
            pass

    def probe(self, device: str, precision: str) -> dict:
        """Ask one task placed like a case what it finds (the driver may have no GPU of its own)."""
        device = device_for(device, self.gpus)
        task = self.ray.remote(num_gpus=self.gpus, num_cpus=self.cpus, max_calls=1 if self.gpus else 0)(worker.probe)
        ref = task.remote(device, precision)
        try:
            return self.ray.get(ref, timeout=self.placement_timeout_s + PROBE_RUN_S)
        except self.ray.exceptions.GetTimeoutError:
            self.ray.cancel(ref, force=True)
            raise ExecutorError(
                f"ray: the probe task ({self.gpus:g} GPU, {self.cpus} CPU) did not return within "
                f"--placement-timeout {self.placement_timeout_s:g} s + {PROBE_RUN_S:g} s; the "
                f"cluster offers "
                f"{offer(self.ray.nodes())}"
            ) from None

    def submit(self, job: Job, attempt: int = 1) -> None:
        pickle_by_value(job.builders, self.ray.cloudpickle)
        self._queue.append((dataclasses.replace(job, device=device_for(job.device, self.gpus)), attempt))
        self._dispatch()

    def _dispatch(self) -> None:
        """Queued cases to idle actors; a new actor while the live nodes can run one more case at once."""
        while self._queue:
            if not self._idle:
                if len(self._actors) >= max(1, slots(self.ray.nodes(), self.gpus, self.cpus)):
                    self._room_for(len(self._actors) + len(self._queue))
                    return
                self._actors.append(actor := self._actor.remote())
                self._idle.append(actor)
            actor = self._idle.pop()
            job, attempt = self._queue.popleft()
            self._pending[actor.run.remote(job)] = job, attempt, actor

    def _room_for(self, cases: int) -> None:
        """An autoscaler sees the actors, not this queue: ask it for room for every case at once (once per count;
        withdrawn at ``close``)."""
        if cases != self._asked:
            self._ask_autoscaler([{"GPU": self.gpus, "CPU": self.cpus} if self.gpus else {"CPU": self.cpus}] * cases)
            self._asked = cases

    def _retire(self, actor) -> None:
        self.ray.kill(actor)
        self._actors.remove(actor)

    def completions(self) -> Iterator[tuple[Job, list]]:
        while self._pending:
            ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=POLL_S)
            if not ready:  # a bounded wait: Ctrl-C and SIGTERM are handled between polls
                self._dispatch()  # a node the autoscaler added takes queued cases
                continue
            ref = ready[0]
            job, attempt, actor = self._pending.pop(ref)
            try:
                rows = self.ray.get(ref)
                if any(sticky in (row.reason or "") for row in rows for sticky in CUDA_CONTEXT_LOST):
                    self._retire(actor)  # its CUDA context is unusable: the next case gets a fresh actor
                else:
                    self._idle.append(actor)
            except self.ray.exceptions.RayTaskError as exc:  # run_job raised (it returns a case's own errors)
                self._idle.append(actor)
                rows = worker.crash_row(
                    job, f"{type(exc.cause).__name__}: {exc.cause} (in a Ray worker)", {"log": self._logs()}
                )
            except self.ray.exceptions.RayError as exc:  # the actor's process or its node died, or Ray gave up
                self._retire(actor)  # dead, or unreachable: either way out of the pool, its slot free
                if type(exc).__name__ in DIED and self.retries.again(attempt):
                    self.submit(job, attempt + 1)
                    continue
                first_line = next((line for line in str(exc).splitlines() if line.strip()), "").strip()
                what = "the Ray worker died" if type(exc).__name__ in DIED else "Ray could not run the case"
                rows = worker.crash_row(
                    job,
                    f"{type(exc).__name__}: {what}, {attempt} attempt(s) ({first_line}); worker logs: {self._logs()}",
                    {"log": self._logs()},
                )
            self._dispatch()
            yield job, rows

    def _logs(self) -> str:
        try:
            from ray._private import worker as ray_worker

            return ray_worker._global_node.get_logs_dir_path() + " (python-core-worker-*.log, worker-*.err)"
        except Exception:  # a client connection, or the private API moved
            return "/tmp/ray/session_latest/logs on the node that ran it"

    def describe(self) -> str:
        where = (
            f"cluster at {self.options.address}"
            if self.options.address
            else ("local instance" if self.initialised_here else "the Ray instance of this process")
        )
        return (
            f"ray ({where}: {self.cluster_gpus:g} GPU(s), {self.cluster_cpus:g} CPU(s); per case {self.gpus:g} "
            f"GPU, {self.cpus} CPU; up to {self.retries.limit} retr{'y' if self.retries.limit == 1 else 'ies'} "
            f"of a dead worker)"
        )

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):  # ray.cancel(force=True) is refused for actor tasks
            self.ray.kill(actor)
        self._actors, self._idle, self._pending, self._queue = [], [], {}, deque()
        if getattr(self, "_asked", 0):
            self._ask_autoscaler([])
            self._asked = 0
        if self.initialised_here:
            self.ray.shutdown()
            self.initialised_here = False
