"""Run cases and record them: case → data + model → engine → results.json.

The runner plans the trainings (cases × seeds), decodes the data once into the cache and hands one job per
training to an executor (xraybench/executors: this process, Ray or Slurm), which calls
``xraybench.train.worker.run_job``. Only the runner writes results.json, after every finished case. Running the
same run id again resumes: a case whose id, seed and configuration hash finished ok is not trained again unless
``force``. A case that raises is recorded as failed and the suite goes on; Ctrl-C is not caught here. How the
cases train (precision, determinism, random initialisation) is the plan's, recorded once in ``settings``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from xraybench import environment, results
from xraybench.cases import Case, Profile, Suite, apply_profile, with_random_init
from xraybench.data import DataError, Dataset, medmnist
from xraybench.data import cache as data_cache
from xraybench.data.cache import CachedData
from xraybench.data.summary import summarize
from xraybench.executors import Executor, LocalExecutor
from xraybench.models import registry, weights
from xraybench.models.backbones import required_weights
from xraybench.train import worker
from xraybench.train.precision import FP32, Precision
from xraybench.train.worker import Job


class RunError(ValueError):
    """The run cannot start or continue (for example a run directory holding another run)."""


@dataclass
class RunPlan:
    profile: Profile
    device: torch.device
    source: object  # a data source from xraybench.data.sources
    out: Path
    run_id: str | None = None
    seeds: int | None = None  # per case; None: the profile's count, or the case's own for this profile
    force: bool = False
    precision: Precision = FP32
    deterministic: bool = False
    random_init: bool = False  # backbones without their pretrained weights: exercises code, not a result
    strict_splits: bool = False  # leakage across splits (shared patients, identical images) is an error
    offline: bool = False  # never download missing weight files
    case_timeout_s: float | None = None  # a training past it is stopped and recorded as failed
    tensorboard: bool = False  # TensorBoard event files under RUN_DIR/tb beside the live CSV logs
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, already applied to the cases; named in the run id and recorded
    environment: dict | None = None  # machine_info and software where the cases run (the executor's probe)

    @property
    def resolved_run_id(self) -> str:
        """Explicit, or the environment in the name (timm-style): profile, device, data."""
        if self.run_id:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.run_id):
                raise RunError(
                    f"--run-id {self.run_id!r}: use letters, digits, '_', '-' and '.' (not first); "
                    f"a run id names a folder inside --out"
                )
            return self.run_id
        name = f"{self.profile.name}-{self.device.type}-{self.source.name}" + ("-random-init" * self.random_init)
        if self.overrides:  # a one-off experiment gets its own directory: it must not replace the run's rows
            name += "-set-" + "-".join(o.partition(".")[2].replace("=", "") for o in sorted(self.overrides))
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        return (
            name if len(name) <= 120 else f"{name[:107]}-{results.config_hash({'overrides': sorted(self.overrides)})}"
        )

    @property
    def settings(self) -> dict:
        """How the cases train, as results.json records it."""
        return {
            "precision": self.precision.as_record(),
            "deterministic": self.deterministic,
            "random_init": self.random_init,
            **({"overrides": list(self.overrides)} if self.overrides else {}),
        }


def run(
    cases: list[Case],
    plan: RunPlan,
    suites: dict[str, Suite] | None = None,
    log=print,
    executor: Executor | None = None,
) -> tuple[Path, dict]:
    """Run every case (× seeds) of the plan on ``executor`` (default: this process); returns the run
    directory and the results."""
    run_dir = plan.out / plan.resolved_run_id
    environment.configure(plan.device, deterministic=plan.deterministic)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {plan.out}: cannot create the run directory {run_dir} ({exc.strerror})") from None
    try:
        with _exclusive(run_dir):
            return _run_locked(cases, plan, suites, run_dir, executor or LocalExecutor(), log)
    except BaseException:
        if created:
            _remove_if_nothing_recorded(run_dir)
        raise


def _remove_if_nothing_recorded(run_dir: Path) -> None:
    """A run stopped before recording any row (bad data, Ctrl-C while decoding) leaves no directory behind: --out
    lists runs, not failed starts. Only what a run writes is removed (its results, lock and empty log folders)."""
    with contextlib.suppress(results.ResultsError, OSError):
        if (run_dir / results.FILENAME).exists() and results.read(run_dir)["cases"]:
            return
        for name in (results.FILENAME, ".lock"):
            (run_dir / name).unlink(missing_ok=True)
        for folder in [*sorted(run_dir.rglob("*"), reverse=True), run_dir]:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


@contextlib.contextmanager
def _exclusive(run_dir: Path):
    """One run per run directory at a time: a second one refuses instead of mixing results. A directory
    that cannot hold the lock (read-only, or NFS without lock support) is refused in one line too: running
    unlocked could let two runs interleave their results."""
    lock_path = run_dir / ".lock"
    try:
        lock = open(lock_path, "a+")  # noqa: SIM115 (held until the run ends)
    except OSError as exc:
        raise RunError(
            f"{lock_path}: cannot open the run's lock file ({exc.strerror}); the run directory must be "
            f"writable — choose another --out"
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise RunError(
                f"{run_dir}: another xraybench run (pid {holder}) is using this run directory; wait for "
                f"it to finish or choose another --run-id"
            ) from None
        except OSError as exc:
            raise RunError(
                f"{lock_path}: cannot lock the run directory ({exc.strerror}; a network file system "
                f"without lock support?); choose an --out on a file system that supports flock"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_locked(cases, plan, suites, run_dir: Path, executor: Executor, log) -> tuple[Path, dict]:
    results_path = run_dir / results.FILENAME
    doc = _open_results(results_path, plan)
    for suite in (suites or {}).values():  # titles for the report, which reads results.json alone
        doc.setdefault("suites", {})[suite.name] = {"title": suite.title, "tasks": suite.tasks, "views": suite.views}
    _save(results_path, doc)

    _drop_stale_rows(doc, cases, plan, log)
    counts = {case.id: plan.seeds or case.seed_count(plan.profile) for case in cases}
    planned = [
        _as_planned(case, plan, seed)
        for case in cases
        for seed in range(case.train.seed, case.train.seed + counts[case.id])
    ]
    log(
        f"run {plan.resolved_run_id}: {len(cases)} case(s), {len(planned)} trainings ({_seed_counts(counts)}), "
        f"profile {plan.profile.name}, device {plan.device.type}, data {plan.source.name}, "
        f"precision {plan.precision.name} ({plan.precision.reason})" + (", deterministic" * plan.deterministic)
    )
    if plan.random_init:
        log(
            "random initialisation (--random-init): pretrained backbones start from random weights; these rows "
            "test the code, they are not pretrained results"
        )
    pending = []
    for case in planned:
        previous = results.find(doc, case.id, case.train.seed)
        if previous and previous["status"] == "ok" and previous["hash"] == case.config_hash and not plan.force:
            log(f"{_tag(case, counts)}: finished earlier, kept (--force re-runs it)")
        else:
            pending.append(case)
    pending = _skip_unmet_data_needs(doc, pending, plan, results_path, log)
    if not pending:
        return run_dir, doc

    # The driver decodes each image size once; workers map the cache read-only.
    datasets = {}  # (image size, resize) → (where it is cached, its image table)
    for size, resize in dict.fromkeys((c.data.image_size, c.data.resize) for c in pending):
        cached, data = _prepare_data(plan, size, resize, log)
        datasets[size, resize] = cached, results.image_table(data)
        if doc["data"] is None:
            doc["data"] = {"fingerprint": plan.source.fingerprint(), **data.describe(), "summary": summarize(data)}
            identity = medmnist.identify(plan.source)
            if identity:  # what a published result is compared against
                doc["data"]["medmnist"] = dataclasses.asdict(identity)
        doc["data"].setdefault("images", datasets[size, resize][1])  # also when resuming a schema-1 run
    weights.fetch_missing(
        [w for c in pending if (w := required_weights(c.model.name, c.model.options))], offline=plan.offline, log=log
    )
    builders = registry.external_builders({c.model.name for c in pending})
    for case in pending:
        executor.submit(
            Job(
                case=case,
                data=datasets[case.data.image_size, case.data.resize][0],
                max_per_split=plan.profile.max_per_split,
                eval_batch_size=plan.profile.eval_batch_size,
                device=plan.device.type,
                precision=plan.precision,
                deterministic=plan.deterministic,
                executor=executor.name,
                progress=executor.progress,
                resume=not plan.force,
                timeout_s=plan.case_timeout_s,
                run=str(run_dir.absolute()),
                tensorboard=plan.tensorboard,
                builders={n: f for n, f in builders.items() if n == case.model.name},
            )
        )
    if executor.name != "local":
        log(f"submitted {len(pending)} training(s) to {executor.describe()}")
    order = {(c.id, c.train.seed): i for i, c in enumerate(planned)}
    for done, (job, row) in enumerate(executor.completions(), 1):
        images = datasets[job.case.data.image_size, job.case.data.resize][1]
        if row["status"] == "ok" and images != doc["data"]["images"]:
            row["images"] = images  # another subset than the run's (not the case today)
        results.upsert(doc, row)
        _in_plan_order(doc["cases"], order)
        _save(results_path, doc)
        log(f"[{done}/{len(pending)}] {_tag(job.case, counts)}: {_one_line(row)}")
    return run_dir, doc


def _skip_unmet_data_needs(doc: dict, pending: list[Case], plan: RunPlan, results_path: Path, log) -> list[Case]:
    """Cases that require other data than this run's (``requires_data``: published results on PneumoniaMNIST
    at a given size) are recorded as skipped with the command that runs them, never trained on this data."""
    needing = [c for c in pending if c.requires_data]
    if not needing:
        return pending
    identity = medmnist.identify(plan.source)
    unmet = [c for c in needing if identity is None or not identity.satisfies(c.requires_data)]
    for case in unmet:
        row = worker.case_row(case)
        row.update(
            status="skipped",
            finished=results.now(),
            needs=f"--data {case.requires_data}",
            reason=f"needs --data {case.requires_data} (this run's data is {plan.source.name}); "
            f"xraybench run '{case.suite}*' --data {case.requires_data} fetches it and runs these cases",
        )
        results.upsert(doc, row)
    if unmet:
        _save(results_path, doc)
        commands = "; ".join(sorted({f"xraybench run '{c.suite}*' --data {c.requires_data}" for c in unmet}))
        log(f"skipped {len(unmet)} case(s) that need other data than {plan.source.name}; run them with: {commands}")
    return [c for c in pending if c not in unmet]


def _save(path: Path, doc: dict) -> None:
    """Write results.json, or stop in one line: a full disk or a lost mount leaves the previous file whole
    (``results.write`` replaces it atomically), and the rows it holds are what a resumed run keeps."""
    try:
        results.write(path, doc)
    except OSError as exc:
        raise RunError(
            f"{path}: cannot write the results ({exc.strerror or exc}); the file keeps the rows it held "
            f"before this one — free space (or fix the mount) and run the same command again to "
            f"resume"
        ) from None


def _in_plan_order(rows: list[dict], order: dict[tuple[str, int], int]) -> None:
    """Completions arrive in any order: put this run's rows in the plan's order, in the places its rows
    hold, and leave rows of cases outside this run where they are."""
    slots = [i for i, r in enumerate(rows) if (r["id"], r.get("seed")) in order]
    planned = sorted((rows[i] for i in slots), key=lambda r: order[(r["id"], r.get("seed"))])
    for i, row in zip(slots, planned):
        rows[i] = row


def _tag(case: Case, counts: dict[str, int]) -> str:
    return case.id + (f" seed {case.train.seed}" if counts[case.id] > 1 else "")


def _drop_stale_rows(doc: dict, cases: list[Case], plan: RunPlan, log) -> None:
    """Rows of a case whose configuration has changed since they ran: they are not seeds of the case
    as it is now, and the report and the check would pool them with the new ones."""
    current = {c.id: _as_planned(c, plan).config_hash for c in cases}
    stale = [r for r in doc["cases"] if r["id"] in current and r.get("hash") != current[r["id"]]]
    if stale:
        doc["cases"] = [r for r in doc["cases"] if r not in stale]
        log(
            f"dropped {len(stale)} row(s) of edited case(s) ({', '.join(sorted({r['id'] for r in stale}))}): "
            f"their configuration changed; they run again"
        )


def _as_planned(case: Case, plan: RunPlan, seed: int | None = None) -> Case:
    """The case as this run trains it: the profile applied, random initialisation if asked, the seed."""
    case = apply_profile(case, plan.profile)
    case = with_random_init(case) if plan.random_init else case
    return case if seed is None else dataclasses.replace(case, train=dataclasses.replace(case.train, seed=seed))


def _seed_counts(counts: dict[str, int]) -> str:
    by_count = Counter(counts.values())
    return ", ".join(f"{n} case(s) × {k} seed{'s' if k > 1 else ''}" for k, n in sorted(by_count.items(), reverse=True))


def _open_results(path: Path, plan: RunPlan) -> dict:
    where = plan.environment or {}
    fresh = results.new_envelope(
        run_id=plan.resolved_run_id,
        profile=plan.profile.name,
        machine=where.get("machine_info") or environment.machine_info(),
        software=where.get("software") or environment.software_info(plan.device),
        commit=environment.commit_info(),
        settings=plan.settings,
    )
    if not path.exists():
        return fresh
    doc = results.read(path)
    fingerprint = (doc.get("data") or {}).get("fingerprint")
    if doc.get("profile") != plan.profile.name or (fingerprint and fingerprint != plan.source.fingerprint()):
        if not plan.force:
            raise RunError(
                f"{path}: this run directory holds a run with profile {doc.get('profile')} on "
                f"{(doc.get('data') or {}).get('name')}; choose another --run-id, or --force to replace it"
            )
        return fresh
    before = results.settings(doc)
    if before != results.settings(fresh):
        if not plan.force:
            differs = ", ".join(
                f"{k} {before[k]} (this run: {results.settings(fresh)[k]})"
                for k in before
                if before[k] != results.settings(fresh)[k]
            )
            raise RunError(
                f"{path}: this run directory holds a run with {differs}; one run trains one way: "
                f"choose another --run-id, or --force to replace it"
            )
        return fresh
    # Resuming: keep the finished rows, record the environment of this session.
    return {
        **doc,
        "schema_version": results.SCHEMA_VERSION,
        "machine_info": fresh["machine_info"],
        "software": fresh["software"],
        "commit_info": fresh["commit_info"],
        "settings": plan.settings,
    }


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


def _one_line(row: dict) -> str:
    return _outcome(row) + _where(row.get("worker") or {})


def _outcome(row: dict) -> str:
    if row["status"] == "skipped":  # the reason, once per kind, is in the summary at the end
        return f"SKIPPED: {row['reason'][:50]}" + "…" * (len(row["reason"]) > 50)
    if row["status"] != "ok":
        return f"{row['status'].upper()}: {row['reason']}"
    m = row["metrics"]
    auc = "n/a" if m["test_auc"] is None else f"{m['test_auc']:.3f}"  # undefined when the test split has one class
    return (
        f"ok  test acc {m['test_acc']:.3f}  AUC {auc}  best val acc {m['best_val_acc']:.3f}  "
        f"{m['wall_time_s']:.1f}s" + "".join(f"\n    warning: {w}" for w in row.get("warnings", []))
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
