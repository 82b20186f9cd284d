"""The trainings' jobs: cases that need other data recorded as skipped, the data decoded once per image size into
the cache, missing weight files fetched, one ``Job`` per training submitted to the executor, and each finished one
written to results.json in the plan's order, with its line in the log.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from xraybench import results
from xraybench.cases import Case
from xraybench.data import DataError, Dataset, medmnist
from xraybench.data import cache as data_cache
from xraybench.data.cache import CachedData
from xraybench.data.summary import summarize
from xraybench.executors import Executor
from xraybench.models import registry, weights
from xraybench.models.backbones import required_weights
from xraybench.results import DataInfo, Row, Run, SplitImages
from xraybench.runner.plan import RunPlan, case_precision, tag
from xraybench.runner.rundir import save
from xraybench.train import seed_batch, worker
from xraybench.train.worker import Job

# (image size, resize) → (where the data is cached, its image table)
Datasets = dict[tuple[int, str], tuple[CachedData, dict[str, SplitImages]]]


def skip_unmet_data_needs(run: Run, pending: list[Case], plan: RunPlan, results_path: Path, log) -> list[Case]:
    """Cases that require other data than this run's (``requires_data``: published results on PneumoniaMNIST
    at a given size) are recorded as skipped with the command that runs them, never trained on this data."""
    needing = [c for c in pending if c.requires_data]
    if not needing:
        return pending
    identity = medmnist.identify(plan.source)
    unmet = [c for c in needing if identity is None or not identity.satisfies(c.requires_data)]
    for case in unmet:
        row = results.case_row(case)
        row.status, row.finished, row.needs = "skipped", results.now(), f"--data {case.requires_data}"
        row.reason = (
            f"needs --data {case.requires_data} (this run's data is {plan.source.name}); "
            f"xraybench run '{case.suite}*' --data {case.requires_data} fetches it and runs these cases"
        )
        results.upsert(run, row)
    if unmet:
        save(results_path, run)
        commands = "; ".join(sorted({f"xraybench run '{c.suite}*' --data {c.requires_data}" for c in unmet}))
        log(f"skipped {len(unmet)} case(s) that need other data than {plan.source.name}; run them with: {commands}")
    return [c for c in pending if c not in unmet]


def data_key(case: Case) -> tuple[int, str]:
    """Which decoded data a training needs: its image size and resize."""
    return case.data.image_size, case.data.resize


def prepare(run: Run, pending: list[Case], plan: RunPlan, log) -> Datasets:
    """The driver decodes each image size once; workers map the cache read-only. The run's data is recorded in
    ``run`` the first time."""
    datasets = {}
    for size, resize in dict.fromkeys(data_key(c) for c in pending):
        cached, data = _prepare_data(plan, size, resize, log)
        datasets[size, resize] = cached, results.image_table(data)
        if run.data is None:
            identity = medmnist.identify(plan.source)  # what a published result is compared against
            run.data = DataInfo.model_validate(
                {
                    "fingerprint": plan.source.fingerprint(),
                    **data.describe(),
                    "summary": summarize(data),
                    **({"medmnist": dataclasses.asdict(identity)} if identity else {}),
                }
            )
        if run.data.images is None:  # also when resuming a schema-1 run
            run.data.images = datasets[size, resize][1]
    return datasets


def submit(executor: Executor, pending: list[Case], datasets: Datasets, plan: RunPlan, run_dir: Path, log) -> None:
    """The weight files the cases need (fetched unless offline), then one job per training."""
    weights.fetch_missing(
        [w for c in pending if (w := required_weights(c.model.name, c.model.options))], offline=plan.offline, log=log
    )
    builders = registry.external_builders({c.model.name for c in pending})
    groups = seed_groups(pending, plan)
    for case, *more_seeds in groups:
        executor.submit(
            Job(
                case=case,
                more_seeds=tuple(more_seeds),
                data=datasets[data_key(case)][0],
                max_per_split=plan.profile.max_per_split,
                eval_batch_size=plan.profile.eval_batch_size,
                device=plan.device.type,
                precision=case_precision(case, plan.precision),
                deterministic=plan.deterministic,
                tf32=plan.tf32,
                executor=executor.name,
                progress=executor.progress,
                resume=not plan.force,
                timeout_s=plan.case_timeout_s,
                run=str(run_dir.absolute()),
                tensorboard=plan.tensorboard,
                builders={n: f for n, f in builders.items() if n == case.model.name},
            )
        )
    if fp32 := sum(case_precision(c, plan.precision) != plan.precision for c in pending):
        log(
            f"precision: fp32 for {fp32} training(s) of published protocols, as their runs "
            f"(pass --precision {plan.precision.name} to override)"
        )
    if together := [g for g in groups if len(g) > 1]:
        log(
            f"seed batching: {sum(map(len, together))} training(s) of {len({g[0].id for g in together})} case(s) in "
            f"{len(together)} pass(es), a case's seeds as one stacked model (--seed-batching off: one at a time)"
        )
    if executor.name != "local":
        log(f"submitted {len(pending)} training(s) to {executor.describe()}")


def seed_groups(pending: list[Case], plan: RunPlan) -> list[list[Case]]:
    """The trainings as jobs: a case's pending seeds together (up to ``seed_batch.MAX_SEEDS``) where seed batching
    is on (``--seed-batching``: auto on CUDA, without --deterministic: a batched seed's bits depend on the seeds
    beside it) and the case allows it (``seed_batch.unbatchable``); else one each."""
    auto = plan.device.type == "cuda" and not plan.deterministic
    on = plan.seed_batching == "on" or (plan.seed_batching == "auto" and auto)
    known: dict[str, bool] = {}  # case id → whether its seeds may share a pass: checked once per case, not per seed

    def stacks(case: Case) -> bool:
        if case.id not in known:
            known[case.id] = seed_batch.unbatchable(case, case_precision(case, plan.precision)) is None
        return known[case.id]

    groups: list[list[Case]] = []
    for case in pending:
        last = groups[-1] if groups else None
        if on and last and last[0].id == case.id and len(last) < seed_batch.MAX_SEEDS and stacks(case):
            last.append(case)
        else:
            groups.append([case])
    return groups


def collect(
    executor: Executor,
    run: Run,
    planned: list[Case],
    pending: list[Case],
    datasets: Datasets,
    counts: dict[str, int],
    results_path: Path,
    log,
) -> None:
    """Each finished training, in whatever order it comes: its row recorded in the plan's order and written at once."""
    order = {(c.id, c.train.seed): i for i, c in enumerate(planned)}
    done = 0
    for job, rows in executor.completions():  # a row per seed of the job
        images = datasets[data_key(job.case)][1]
        for case, row in zip(job.cases, rows):
            if row.ok and images != run.data.images:
                row.images = images  # another subset than the run's (not the case today)
            results.upsert(run, row)
            done += 1
            log(f"[{done}/{len(pending)}] {tag(case, counts)}: {_one_line(row)}")
        _in_plan_order(run.cases, order)
        save(results_path, run)


def _in_plan_order(rows: list[Row], order: dict[tuple[str, int], int]) -> None:
    """Completions arrive in any order: put this run's rows in the plan's order, in the places its rows
    hold, and leave rows of cases outside this run where they are."""
    slots = [i for i, r in enumerate(rows) if (r.id, r.seed) in order]
    planned = sorted((rows[i] for i in slots), key=lambda r: order[(r.id, r.seed)])
    for i, row in zip(slots, planned):
        rows[i] = row


def _prepare_data(plan: RunPlan, image_size: int, resize: str, log) -> tuple[CachedData, Dataset]:
    """Decode (or find) the data at ``image_size`` (resized with ``resize``) in the cache; returns where it is
    and the data, mapped once per process (the local executor's cases reuse this mapping)."""
    t0 = time.perf_counter()
    cached = data_cache.prepare(plan.source, image_size, resample=resize)
    data = worker.open_dataset(cached, plan.profile.max_per_split)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    how = "" if resize == "bilinear" else f", {resize}-neighbour resize"
    log(f"data: {plan.source.name} at {image_size}px{how} ({sizes}) in {time.perf_counter() - t0:.1f}s")
    for note in data.notes:
        log(f"data: {note}")
    for warning in [data.naming_warning] * bool(data.naming_warning) + data.leakage_warnings:
        log(f"warning: data: {warning}")
    if plan.strict_splits and data.leakage_warnings:
        raise DataError(
            f"{plan.source.location}: {data.leakage_warnings[0]} (--strict-splits; "
            f"{len(data.leakage_warnings)} kind(s) of leakage in all)"
        )
    return cached, data


def _one_line(row: Row) -> str:
    return _outcome(row) + _where(row.worker or {})


def _outcome(row: Row) -> str:
    reason = row.reason or ""
    if row.status == "skipped":  # the reason, once per kind, is in the summary at the end
        return f"SKIPPED: {reason[:50]}" + "…" * (len(reason) > 50)
    if not row.ok:
        return f"{row.status.upper()}: {reason}"
    m = row.metrics
    auc = "n/a" if m.test_auc is None else f"{m.test_auc:.3f}"  # undefined when the test split has one class
    return (
        f"ok  test acc {m.test_acc:.3f}  AUC {auc}  best val acc {m.best_val_acc:.3f}  "
        f"{m.wall_time_s:.1f}s" + "".join(f"\n    warning: {w}" for w in row.warnings)
    )


def _where(worker: dict) -> str:
    """Which worker ran a case, for executors other than this process."""
    if worker.get("executor", "local") == "local" or "host" not in worker:
        return ""
    gpu = f", {worker['gpu']}" if worker.get("gpu") else ""
    visible = worker.get("cuda_visible_devices")
    return (
        f"  [{worker['executor']} {worker['host']} pid {worker['pid']}, {worker['device']}{gpu}"
        + (f", CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "")
        + "]"
    )
