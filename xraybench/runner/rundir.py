"""The run directory: created for the run and locked while it runs (one run per directory at a time), removed again
if the run stops before recording a row; its results.json opened fresh, resumed or refused, written whole after
every change; and, when resuming, which rows still stand and which trainings finished earlier.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from xraybench import environment, results
from xraybench.cases import Case
from xraybench.results import Run
from xraybench.runner.plan import RunError, RunPlan, as_planned, case_precision, tag


@contextlib.contextmanager
def held(run_dir: Path, out: Path):
    """The run directory, created if missing and locked for this run; a directory this run created is removed
    again when the run stops (an error, Ctrl-C) before recording any row."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create the run directory {run_dir} ({exc.strerror})") from None
    try:
        with _exclusive(run_dir):
            yield run_dir
    except BaseException:
        if created:
            _remove_if_nothing_recorded(run_dir)
        raise


def _remove_if_nothing_recorded(run_dir: Path) -> None:
    """A run stopped before recording any row (bad data, Ctrl-C while decoding) leaves no directory behind: --out
    lists runs, not failed starts. Only what a run writes is removed (its results, lock and empty log folders)."""
    with contextlib.suppress(results.ResultsError, OSError):
        if (run_dir / results.FILENAME).exists() and results.read(run_dir).cases:
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


def open_results(path: Path, plan: RunPlan) -> Run:
    where = plan.environment or {}
    fresh = results.new_run(
        run_id=plan.resolved_run_id,
        profile=plan.profile.name,
        machine=where.get("machine_info") or environment.machine_info(),
        software=where.get("software") or environment.software_info(plan.device),
        commit=environment.commit_info(),
        settings=plan.settings,
    )
    if not path.exists():
        return fresh
    run = results.read(path)
    fingerprint = run.data.fingerprint if run.data else None
    if run.profile != plan.profile.name or (fingerprint and fingerprint != plan.source.fingerprint()):
        if not plan.force:
            raise RunError(
                f"{path}: this run directory holds a run with profile {run.profile} on "
                f"{run.data.name if run.data else None}; choose another --run-id, or --force to replace it"
            )
        return fresh
    before, after = run.settings.compared(), fresh.settings.compared()
    if before != after:
        if not plan.force:
            differs = ", ".join(f"{k} {before[k]} (this run: {after[k]})" for k in before if before[k] != after[k])
            raise RunError(
                f"{path}: this run directory holds a run with {differs}; one run trains one way: "
                f"choose another --run-id, or --force to replace it"
            )
        return fresh
    # Resuming: keep the finished rows, record the environment of this session.
    run.schema_version = results.SCHEMA_VERSION
    run.machine_info, run.software, run.commit_info = fresh.machine_info, fresh.software, fresh.commit_info
    run.settings = fresh.settings
    return run


def save(path: Path, run: Run) -> None:
    """Write results.json, or stop in one line: a full disk or a lost mount leaves the previous file whole
    (``results.write`` replaces it atomically), and the rows it holds are what a resumed run keeps."""
    try:
        results.write(path, run)
    except OSError as exc:
        raise RunError(
            f"{path}: cannot write the results ({exc.strerror or exc}); the file keeps the rows it held "
            f"before this one — free space (or fix the mount) and run the same command again to "
            f"resume"
        ) from None


def drop_stale_rows(run: Run, cases: list[Case], plan: RunPlan, log) -> None:
    """Rows of a case whose configuration has changed since they ran: they are not seeds of the case
    as it is now, and the report and the check would pool them with the new ones."""
    current = {c.id: as_planned(c, plan).config_hash for c in cases}
    stale = [r for r in run.cases if r.id in current and r.hash != current[r.id]]
    if stale:
        run.cases = [r for r in run.cases if all(r is not s for s in stale)]
        log(
            f"dropped {len(stale)} row(s) of edited case(s) ({', '.join(sorted({r.id for r in stale}))}): "
            f"their configuration changed; they run again"
        )


def unfinished(
    run: Run, planned: list[Case], plan: RunPlan, counts: dict[str, int], log, later_round: bool = False
) -> list[Case]:
    """The trainings still to run: a training whose id, seed and configuration hash finished ok, in the precision this
    run gives the case, is kept, not trained again, unless ``force`` — which a ``later_round`` of --seeds auto does
    not repeat (its kept trainings were named in the first)."""
    pending = []
    for case in planned:
        previous = results.find(run, case.id, case.train.seed)
        same = previous and previous.ok and previous.hash == case.config_hash
        if same and _same_precision(previous, case, plan) and (not plan.force or later_round):
            if not later_round:
                log(f"{tag(case, counts)}: finished earlier, kept (--force re-runs it)")
        else:
            pending.append(case)
    return pending


def _same_precision(previous, case: Case, plan: RunPlan) -> bool:
    """Whether a kept row trained in the precision this run gives the case (a published case: fp32 under auto);
    rows that recorded none are of runs before per-case precision, which had the run's."""
    trained = previous.metrics.precision
    return trained is None or trained == case_precision(case, plan.precision).name
