"""Benchmark: Ray's per-case overhead with a fresh worker per case and with reused workers (issue 35 item 3).

    python benchmarks/ray_overhead.py [--cases 8] [--slots 2] [--modes fresh reused actor]

Why: RayExecutor used to give every GPU case a fresh worker process (``max_calls=1``), so each case paid the
process start, the import of torch and xraybench, mapping the data and every first-use cost again (on a GPU
also the CUDA context and cuDNN's autotuning). It now runs each slot's cases in one actor
(``ray_executor.CaseWorker``). This measures on the CPU, with the same tiny trainings (HW3 cases at the smoke
profile on the built-in synthetic data), what a fresh worker costs per case against a reused one:

- ``fresh``: a task with ``max_calls=1``, the executor's GPU behaviour before issue 35;
- ``reused``: a task with ``max_calls=0`` (on a GPU it is unsafe: a reused worker may be handed another GPU id
  than the one its CUDA context was made for);
- ``actor``: the executor's own ``CaseWorker``, one actor per slot running ``worker.run_job`` case after case
  (an actor holds the GPU it was created with for its whole life).

Each mode runs in its own local Ray instance (a worker that imported torch for one mode would otherwise serve
the next), with one CPU per case. The driver keeps at most ``--slots`` cases in flight, so a case's driver
wall time runs from its submission to its row, with no queueing in it. The overhead of a case is that wall
time less the training's own ``metrics.wall_time_s``, split into the part outside ``run_job`` (Ray, the
worker process, imports) and the part inside it but outside the timed training (the data mapping, the model's
costs, building the model). For the modes that reuse a process, the first case of each process and the later
ones are shown apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import ray
from tabulate import tabulate

from xraybench.cases import PROFILES, apply_profile, load_cases, select
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.executors import ray_executor
from xraybench.train import worker
from xraybench.train.worker import Job

MODES = ("fresh", "reused", "actor")


@dataclasses.dataclass
class Done:
    """One case as the driver saw it."""

    index: int
    pid: int | None
    wall_s: float  # submission to result, on the driver
    in_job_s: float  # run_job's own span, on the worker
    train_s: float  # the trainings' metrics.wall_time_s
    ok: bool
    first: bool = False  # the first case its worker process ran


class CaseWorker(ray_executor.CaseWorker):
    """The executor's actor, which can also say where its methods run."""

    def on_main_thread(self) -> bool:
        """run_job's --case-timeout uses SIGALRM, which only the main thread receives."""
        return threading.current_thread() is threading.main_thread()


def make_jobs(n: int, root: Path) -> list[Job]:
    """``n`` trainings: the HW3 cases at the smoke profile, in turn, each round with the next seed."""
    smoke = PROFILES["smoke"]
    hw3 = [apply_profile(c, smoke) for c in select(load_cases()[0], ["hw3-*"])]
    source = SyntheticSource(smoke.synthetic_sizes)
    jobs = []
    for i in range(n):
        case = hw3[i % len(hw3)]
        case = dataclasses.replace(case, train=dataclasses.replace(case.train, seed=case.train.seed + i // len(hw3)))
        data = cache.prepare(source, case.data.image_size, root=root, resample=case.data.resize)
        jobs.append(
            Job(
                case=case,
                data=data,
                max_per_split=smoke.max_per_split,
                eval_batch_size=smoke.eval_batch_size,
                device="cpu",
                executor="ray",
                progress=False,
            )
        )
    return jobs


def measure(result, index: int, wall_s: float) -> Done:
    """A job's result: one row, or a list of rows (one per seed)."""
    rows = result if isinstance(result, list) else [result]
    ok = all(r.status == "ok" and r.metrics is not None for r in rows)
    workers = [r.worker or {} for r in rows]
    started = min((w["started_unix"] for w in workers if "started_unix" in w), default=None)
    finished = max((w["finished_unix"] for w in workers if "finished_unix" in w), default=None)
    return Done(
        index=index,
        pid=workers[0].get("pid") if workers else None,
        wall_s=wall_s,
        in_job_s=finished - started if started is not None and finished is not None else float("nan"),
        train_s=sum(r.metrics.wall_time_s for r in rows if r.metrics is not None),
        ok=ok,
    )


def run_mode(mode: str, jobs: list[Job], slots: int) -> tuple[list[Done], float, dict]:
    """The jobs through ``mode`` in a fresh local Ray instance: [Done] in completion order, the total wall time
    (first submission to last result) and notes."""
    ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    notes = {}
    try:
        if mode == "actor":
            actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(CaseWorker)
            actors = [actor_class.remote() for _ in range(slots)]
            free = list(actors)

            def submit(slot, job):
                return slot.run.remote(job)
        else:
            task = ray.remote(num_cpus=1, max_retries=0, retry_exceptions=False, max_calls=1 if mode == "fresh" else 0)(
                worker.run_job
            )
            free = list(range(slots))

            def submit(slot, job):
                return task.remote(job)

        queue = list(enumerate(jobs))
        pending: dict = {}  # ref → (index, slot, submitted)
        done: list[Done] = []
        start = time.perf_counter()
        while queue or pending:
            while queue and free:
                index, job = queue.pop(0)
                slot = free.pop(0)
                pending[submit(slot, job)] = index, slot, time.perf_counter()
            [ref], _ = ray.wait(list(pending), num_returns=1)
            arrived = time.perf_counter()
            index, slot, submitted = pending.pop(ref)
            done.append(measure(ray.get(ref), index, arrived - submitted))
            free.append(slot)
        total = time.perf_counter() - start
        if mode == "actor":
            notes["actor method on the main thread"] = all(ray.get([a.on_main_thread.remote() for a in actors]))
    finally:
        ray.shutdown()
    seen = set()
    for d in done:
        d.first = d.pid not in seen
        seen.add(d.pid)
    return done, total, notes


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def line(label: str, done: list[Done], total: float | None) -> list:
    overhead = [d.wall_s - d.train_s for d in done]
    outside = [d.wall_s - d.in_job_s for d in done]
    inside = [d.in_job_s - d.train_s for d in done]
    return [
        label,
        len(done),
        len({d.pid for d in done}),
        "" if total is None else f"{total:.2f}",
        f"{mean([d.wall_s for d in done]):.3f}",
        f"{mean([d.train_s for d in done]):.3f}",
        f"{mean(overhead):.3f}",
        f"{mean(outside):.3f}",
        f"{mean(inside):.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="trainings per mode (default 8)")
    parser.add_argument("--slots", type=int, default=2, help="CPUs of the Ray instance = cases in flight (default 2)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    began = time.perf_counter()
    table, overheads, later, notes = [], {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(args.cases, Path(tmp))
        for mode in args.modes:
            done, total, mode_notes = run_mode(mode, jobs, args.slots)
            notes.update({f"{mode}: {k}": v for k, v in mode_notes.items()})
            if failed := [jobs[d.index].case.id for d in done if not d.ok]:
                notes[f"{mode}: not ok"] = ", ".join(failed)
            table.append(line(mode, done, total))
            overheads[mode] = mean([d.wall_s - d.train_s for d in done])
            if mode != "fresh":
                table.append(line("  first per process", [d for d in done if d.first], None))
                table.append(line("  later", [d for d in done if not d.first], None))
                later[mode] = mean([d.wall_s - d.train_s for d in done if not d.first])
    headers = [
        "mode",
        "cases",
        "processes",
        "total wall s",
        "wall/case s",
        "training s",
        "overhead/case s",
        "outside run_job s",
        "in run_job, not training s",
    ]
    print(
        f"{args.cases} HW3 trainings at the smoke profile on the CPU, {args.slots} in flight, one CPU each; "
        f"overhead = driver wall per case - metrics.wall_time_s"
    )
    print(tabulate(table, headers=headers))
    if "fresh" in overheads:
        for mode in ("reused", "actor"):
            if mode in overheads:
                print(
                    f"overhead ratio fresh/{mode}: {overheads['fresh'] / overheads[mode]:.1f}× over all {args.cases} "
                    f"cases; {overheads['fresh'] / later[mode]:.0f}× against its later cases (a process already up)"
                )
    for key, value in notes.items():
        print(f"{key}: {value}")
    print(f"script wall time: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
