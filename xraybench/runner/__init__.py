"""Run cases and record them: case → data + model → engine → results.json.

The runner plans the trainings (cases × seeds: ``plan``), holds the run directory, its lock and its results.json,
resuming what finished earlier (``rundir``), decodes the data once into the cache and hands one job per training to
an executor (xraybench/executors: this process, Ray or Slurm), which calls ``xraybench.train.worker.run_job``, and
writes each finished one (``jobs``). Only the runner writes results.json, after every finished case. Running the same
run id again resumes: a case whose id, seed and configuration hash finished ok is not trained again unless ``force``.
A case that raises is recorded as failed and the suite goes on; Ctrl-C is not caught here. How the cases train
(precision, determinism, random initialisation) is the plan's, recorded once in ``settings``.
"""

from __future__ import annotations

from pathlib import Path

from xraybench import environment, results
from xraybench.cases import Case, Suite
from xraybench.executors import Executor, LocalExecutor
from xraybench.results import Run, SuiteInfo
from xraybench.runner import jobs, rounds, rundir
from xraybench.runner.plan import RunError, RunPlan, announce, trainings

__all__ = ["RunError", "RunPlan", "run"]


def run(
    cases: list[Case],
    plan: RunPlan,
    suites: dict[str, Suite] | None = None,
    log=print,
    executor: Executor | None = None,
) -> tuple[Path, Run]:
    """Run every case (× seeds) of the plan on ``executor`` (default: this process); returns the run
    directory and the results."""
    run_dir = plan.out / plan.resolved_run_id
    environment.configure(plan.device, deterministic=plan.deterministic, tf32=plan.tf32)
    with rundir.held(run_dir, plan.out):
        return _run_locked(cases, plan, suites, run_dir, executor or LocalExecutor(), log)


def _run_locked(cases, plan, suites, run_dir: Path, executor: Executor, log) -> tuple[Path, Run]:
    results_path = run_dir / results.FILENAME
    run = rundir.open_results(results_path, plan)
    titles = {
        s.name: SuiteInfo(title=s.title, tasks=s.tasks, views=s.views, questions=s.questions)
        for s in (suites or {}).values()
    }
    run.suites = {**run.suites, **titles}  # for the report, which reads results.json alone
    rundir.save(results_path, run)

    rundir.drop_stale_rows(run, cases, plan, log)
    datasets: jobs.Datasets = {}

    def train(counts: dict[str, int] | None = None, round_: int = 1) -> None:
        """The trainings ``counts`` asks for that ``run`` does not hold yet."""
        counts, planned = trainings(cases, plan, counts)
        if round_ == 1:
            announce(plan, cases, planned, counts, log)
        pending = rundir.unfinished(run, planned, plan, counts, log, later_round=round_ > 1)
        pending = jobs.skip_unmet_data_needs(run, pending, plan, results_path, log)
        if not pending:
            return
        datasets.update(jobs.prepare(run, [c for c in pending if jobs.data_key(c) not in datasets], plan, log))
        jobs.submit(executor, pending, datasets, plan, run_dir, log)
        jobs.collect(executor, run, planned, pending, datasets, counts, results_path, log)

    if plan.auto:
        rounds.run_rounds(run, cases, plan, train, lambda: rundir.save(results_path, run), log)
    else:
        run.looks = []  # a fixed run over an auto run's directory: its looks no longer describe the seeds
        train()
    return run_dir, run
