"""Run cases and record them: case → data + model → engine → results.json.

results.json is rewritten after every finished case. Running the same run id again
resumes: a case whose id, seed and configuration hash already finished ok is not trained
again unless ``force``. A case that raises is recorded as failed with its reason and the
suite goes on; Ctrl-C is not caught here. How the cases train (precision, determinism,
random initialisation) is the plan's, recorded once in the results' ``settings``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import os
import re
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate
from tqdm import tqdm

from xraybench import environment, results
from xraybench.cases import Case, Profile, Suite, apply_profile, with_random_init
from xraybench.comparisons import by_case
from xraybench.data import Dataset
from xraybench.data import cache as data_cache
from xraybench.data.summary import summarize
from xraybench.engine import train_case
from xraybench.formatting import mean_sd
from xraybench.modelinfo import model_info
from xraybench.precision import FP32, Precision
from xraybench.weights import WeightsMissing


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

    @property
    def resolved_run_id(self) -> str:
        """Explicit, or the environment in the name (timm-style): profile, device, data."""
        if self.run_id:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.run_id):
                raise RunError(f"--run-id {self.run_id!r}: use letters, digits, '_', '-' and '.' (not first); "
                               f"a run id names a folder inside --out")
            return self.run_id
        name = f"{self.profile.name}-{self.device.type}-{self.source.name}" + ("-random-init" * self.random_init)
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)

    @property
    def settings(self) -> dict:
        """How the cases train, as results.json records it."""
        return {"precision": self.precision.as_record(), "deterministic": self.deterministic,
                "random_init": self.random_init}


def run(cases: list[Case], plan: RunPlan, suites: dict[str, Suite] | None = None, log=print) -> tuple[Path, dict]:
    """Run every case (× seeds) of the plan; returns the run directory and the results."""
    run_dir = plan.out / plan.resolved_run_id
    environment.configure(plan.device, deterministic=plan.deterministic)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {plan.out}: cannot create the run directory {run_dir} ({exc.strerror})") from None
    with _exclusive(run_dir):
        return _run_locked(cases, plan, suites, run_dir, log)


@contextlib.contextmanager
def _exclusive(run_dir: Path):
    """One run per run directory at a time: a second one refuses instead of mixing results."""
    lock_path = run_dir / ".lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise RunError(f"{run_dir}: another xraybench run (pid {holder}) is using this run directory; wait for "
                           f"it to finish or choose another --run-id") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_locked(cases, plan, suites, run_dir: Path, log) -> tuple[Path, dict]:
    results_path = run_dir / results.FILENAME
    doc = _open_results(results_path, plan)
    for suite in (suites or {}).values():  # titles for the report, which reads results.json alone
        doc.setdefault("suites", {})[suite.name] = {"title": suite.title, "tasks": suite.tasks, "views": suite.views}
    results.write(results_path, doc)

    _drop_stale_rows(doc, cases, plan, log)
    datasets: dict[int, tuple[Dataset, dict]] = {}  # image size → data and its image table
    counts = {case.id: plan.seeds or case.seed_count(plan.profile) for case in cases}
    jobs = [(case, seed) for case in cases for seed in range(case.train.seed, case.train.seed + counts[case.id])]
    log(f"run {plan.resolved_run_id}: {len(cases)} case(s), {len(jobs)} trainings ({_seed_counts(counts)}), "
        f"profile {plan.profile.name}, device {plan.device.type}, data {plan.source.name}, "
        f"precision {plan.precision.name} ({plan.precision.reason})" + (", deterministic" * plan.deterministic))
    if plan.random_init:
        log("random initialisation (--random-init): pretrained backbones start from random weights; these rows "
            "test the code, they are not pretrained results")
    for number, (declared, seed) in enumerate(jobs, 1):
        case = _as_planned(declared, plan)
        case = dataclasses.replace(case, train=dataclasses.replace(case.train, seed=seed))
        tag = f"[{number}/{len(jobs)}] {case.id}" + (f" seed {seed}" if counts[case.id] > 1 else "")
        previous = results.find(doc, case.id, seed)
        if previous and previous["status"] == "ok" and previous["hash"] == case.config_hash and not plan.force:
            log(f"{tag}: finished earlier, kept (--force re-runs it)")
            continue
        if case.data.image_size not in datasets:
            data = _load_data(plan, case.data.image_size, log)
            datasets[case.data.image_size] = data, results.image_table(data)
        data, images = datasets[case.data.image_size]
        if doc["data"] is None:
            doc["data"] = {"fingerprint": plan.source.fingerprint(), **data.describe(), "summary": summarize(data)}
        doc["data"].setdefault("images", images)  # also when resuming a schema-1 run
        row = _run_one(case, seed, data, plan)
        if row["status"] == "ok" and images != doc["data"]["images"]:
            row["images"] = images  # another subset than the run's (not the case today)
        results.upsert(doc, row)
        results.write(results_path, doc)
        log(f"{tag}: {_one_line(row)}")
    return run_dir, doc


def _drop_stale_rows(doc: dict, cases: list[Case], plan: RunPlan, log) -> None:
    """Rows of a case whose configuration has changed since they ran: they are not seeds of the case
    as it is now, and the report and the check would pool them with the new ones."""
    current = {c.id: _as_planned(c, plan).config_hash for c in cases}
    stale = [r for r in doc["cases"] if r["id"] in current and r.get("hash") != current[r["id"]]]
    if stale:
        doc["cases"] = [r for r in doc["cases"] if r not in stale]
        log(f"dropped {len(stale)} row(s) of edited case(s) ({', '.join(sorted({r['id'] for r in stale}))}): "
            f"their configuration changed; they run again")


def _as_planned(case: Case, plan: RunPlan) -> Case:
    case = apply_profile(case, plan.profile)
    return with_random_init(case) if plan.random_init else case


def _seed_counts(counts: dict[str, int]) -> str:
    by_count = Counter(counts.values())
    return ", ".join(f"{n} case(s) × {k} seed{'s' if k > 1 else ''}" for k, n in sorted(by_count.items(), reverse=True))


def _open_results(path: Path, plan: RunPlan) -> dict:
    fresh = results.new_envelope(run_id=plan.resolved_run_id, profile=plan.profile.name,
                                 machine=environment.machine_info(), software=environment.software_info(plan.device),
                                 commit=environment.commit_info(), settings=plan.settings)
    if not path.exists():
        return fresh
    doc = results.read(path)
    fingerprint = (doc.get("data") or {}).get("fingerprint")
    if doc.get("profile") != plan.profile.name or (fingerprint and fingerprint != plan.source.fingerprint()):
        if not plan.force:
            raise RunError(f"{path}: this run directory holds a run with profile {doc.get('profile')} on "
                           f"{(doc.get('data') or {}).get('name')}; choose another --run-id, or --force to replace it")
        return fresh
    before = results.settings(doc)
    if before != results.settings(fresh):
        if not plan.force:
            differs = ", ".join(f"{k} {before[k]} (this run: {results.settings(fresh)[k]})"
                                for k in before if before[k] != results.settings(fresh)[k])
            raise RunError(f"{path}: this run directory holds a run with {differs}; one run trains one way: "
                           f"choose another --run-id, or --force to replace it")
        return fresh
    # Resuming: keep the finished rows, record the environment of this session.
    return {**doc, "schema_version": results.SCHEMA_VERSION, "machine_info": fresh["machine_info"],
            "software": fresh["software"], "commit_info": fresh["commit_info"], "settings": plan.settings}


def _load_data(plan: RunPlan, image_size: int, log) -> Dataset:
    t0 = time.perf_counter()
    data = data_cache.load(plan.source, image_size).limited(plan.profile.max_per_split)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    log(f"data: {plan.source.name} at {image_size}px ({sizes}) in {time.perf_counter() - t0:.1f}s")
    for note in data.notes:
        log(f"data: {note}")
    return data


def _run_one(case: Case, seed: int, data: Dataset, plan: RunPlan) -> dict:
    row = {"id": case.id, "suite": case.suite, "task": case.task, "title": case.title, "seed": seed,
           "description": case.description, "compare": list(case.compare), "mode": case.mode,
           "sweep": case.sweep, "sweep_params": case.sweep_params, "tolerances": case.tolerances,
           "target_sensitivity": case.target_sensitivity,
           "hash": case.config_hash, "config": case.config(), "status": "ok", "reason": None,
           "started": results.now(), "history": [], "metrics": {}}
    try:
        row["model_info"] = model_info(case, plan.device, precision=plan.precision)
    except Exception as exc:  # costs are extra information; the case still runs
        row["model_info"] = {"error": f"{type(exc).__name__}: {exc}"}
    steps = case.train.epochs * -(-len(data.splits["train"]) // case.train.batch_size)
    bar = tqdm(total=steps, desc=case.id, unit="step", leave=False, dynamic_ncols=True, disable=None, file=sys.stderr)

    def on_epoch(epoch_row: dict) -> None:
        bar.set_postfix_str(f"ep {epoch_row['epoch']}/{case.train.epochs} loss {epoch_row['train_loss']:.3f} "
                            f"acc {epoch_row['train_acc']:.3f} val {epoch_row['val_acc']:.3f}")

    def record_op(op: str) -> None:
        row["nondeterministic_ops"] = sorted({*row.get("nondeterministic_ops", []), op})

    def attempt(case: Case, eval_batch_size: int) -> dict:
        with environment.keep_freed_memory(), environment.nondeterministic_ops(record_op):
            return train_case(case, data, plan.device, eval_batch_size=eval_batch_size, precision=plan.precision,
                              on_batch=lambda: bar.update(1), on_epoch=on_epoch)

    def retry_smaller(case: Case) -> dict:
        half = max(1, case.train.batch_size // 2)
        row["retry"] = f"CUDA out of memory at batch size {case.train.batch_size}; retried with {half}"
        bar.reset(total=case.train.epochs * -(-len(data.splits["train"]) // half))
        case = dataclasses.replace(case, train=dataclasses.replace(case.train, batch_size=half))
        row["config"] = case.config()
        return attempt(case, max(1, plan.profile.eval_batch_size // 2))

    try:
        outcome = _with_oom_retry(lambda: attempt(case, plan.profile.eval_batch_size), lambda: retry_smaller(case))
        row.update(outcome)
        row["predictions"] = {split: [results.stored_probability(p) for p in probs]
                              for split, probs in row["predictions"].items()}
    except (KeyboardInterrupt, SystemExit):
        raise
    except WeightsMissing as exc:  # never train a "pretrained" case from random weights
        row.update(status="skipped", reason=str(exc))
    except Exception as exc:  # a failing case is a result, not the end of the suite
        row.update(status="failed", reason=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=-4))
    finally:
        bar.close()
    row["finished"] = results.now()
    return row


def _with_oom_retry(first, retry):
    """``first()``; if it runs out of CUDA memory, ``retry()`` once (with half the batch).

    The retry runs after the ``except`` block, not in it: while an exception is being handled,
    its traceback keeps the first attempt's frames alive — model, optimizer state, data and
    activations — and the retry would run out of memory again beside them.
    """
    try:
        return first()
    except torch.cuda.OutOfMemoryError:
        pass
    gc.collect()  # frames of the first attempt may sit in reference cycles
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return retry()


def _one_line(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['status'].upper()}: {row['reason']}"
    m = row["metrics"]
    auc = "n/a" if m["test_auc"] is None else f"{m['test_auc']:.3f}"  # undefined when the test split has one class
    return (f"ok  test acc {m['test_acc']:.3f}  AUC {auc}  best val acc {m['best_val_acc']:.3f}  "
            f"{m['wall_time_s']:.1f}s")


def summary_table(doc: dict) -> str:
    """The run's cases as a terminal table: one line per case, mean ± sd over its finished seeds."""
    rows = []
    for case in by_case(doc).values():
        statuses = Counter(r["status"] for r in case.rows)
        status = ", ".join(f"{n} {s}" if len(case.rows) > 1 else s for s, n in statuses.items())
        reason = next((r.get("reason") for r in case.rows if r.get("reason")), "") or ""
        rows.append([case.id, status, *(mean_sd(case.values(m), ".3f") for m in
                                        ("train_acc", "best_val_acc", "test_acc", "test_auc", "test_sensitivity",
                                         "test_specificity")), mean_sd(case.values("wall_time_s"), ".1f"), reason[:60]])
    return tabulate(rows, headers=["case", "status", "train acc", "best val acc", "test acc", "test AUC",
                                   "sensitivity", "specificity", "time (s)", "reason"], tablefmt="simple",
                    disable_numparse=True)
