"""Command line: ``xraybench list`` and ``xraybench run``.

Errors a user can fix (a bad case file, bad data, a bad flag) print one line naming the
file, field or value and exit 2; a run with a failed case exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
from collections import Counter
from pathlib import Path

from tabulate import tabulate

import torch

from xraybench import __version__, check, executors, report, results
from xraybench import cases as case_mod
from xraybench.cases import PROFILES, CaseError
from xraybench.check import CheckError
from xraybench.data import DataError, open_source
from xraybench.environment import DeviceError
from xraybench.models.backbones import required_weights
from xraybench.models.weights import fetch as fetch_weights
from xraybench.report.console import VERDICT_HEADERS, summary_table, verdict_rows
from xraybench.results import ResultsError, Tolerance, ToleranceError
from xraybench.runner import RunError, RunPlan, run
from xraybench.train import precision
from xraybench.train.logs import TensorBoardMissing, tensorboard_writer_class

USER_ERRORS = (CaseError, CheckError, DataError, DeviceError, executors.ExecutorError, precision.PrecisionError,
               ResultsError, RunError, TensorBoardMissing, ToleranceError)
MAX_CASE_TIMEOUT_S = 30 * 24 * 3600  # a month; far larger values overflow the interval timer
BASELINES = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except USER_ERRORS as exc:
        print(f"xraybench: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xraybench", description="Chest X-ray classification benchmarks "
                                     "(NORMAL vs PNEUMONIA) that write their own homework-style report.")
    parser.add_argument("--version", action="version", version=f"xraybench {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    cases_arg = dict(type=Path, action="append", metavar="PATH",
                     help="case file or folder (repeatable; default: benchmarks/cases)")

    p = sub.add_parser("list", help="list the declared cases")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style id patterns, e.g. 'hw3*'")
    p.add_argument("--cases", **cases_arg)
    p.set_defaults(command=cmd_list)

    p = sub.add_parser("run", help="run cases and write results.json")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style id patterns, e.g. 'hw3*'")
    p.add_argument("--all", action="store_true", help="run every declared case")
    p.add_argument("--profile", choices=sorted(PROFILES), help="sizes and epochs (default: full on a GPU, quick on a CPU)")
    p.add_argument("--data", metavar="PATH|NAME", help="Kermany-layout folder, MedMNIST .npz, or pneumoniamnist[@28|64|128|224] "
                   "(default: built-in synthetic)")
    p.add_argument("--val-fraction", type=float, metavar="F", help="of train, carved by patient as the validation "
                   "split of a folder without val/ or with fewer than 50 images per class in it (default 0.1)")
    p.add_argument("--strict-splits", action="store_true", help="stop (exit 2) when splits share patients or "
                   "identical images, instead of warning")
    p.add_argument("--offline", action="store_true", help="never download (also XRAYBENCH_OFFLINE=1): missing "
                   "weights skip their cases, a missing MedMNIST file is an error naming where to place it")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=precision.CHOICES,
                   help="auto (default): bf16 where the GPU or CPU computes it natively, fp16 with loss scaling on "
                        "older GPUs, fp32 otherwise")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms only (same seed, same bits on the same machine; slower on a GPU)")
    p.add_argument("--random-init", action="store_true",
                   help="build pretrained backbones from random weights (no weight files needed); the rows say so "
                        "and cannot become a baseline")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="skip (and list) unreadable image files in a --data folder instead of stopping")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="where runs go (default: reports/)")
    p.add_argument("--run-id", metavar="ID", help="run directory name (default: PROFILE-DEVICE-DATA); "
                   "an existing run resumes")
    p.add_argument("--seeds", type=int, metavar="N", help="run each case with N consecutive seeds (default: the "
                   "profile's, smoke 1, quick 3, full 5; HW4 fine-tuning 1 in quick)")
    p.add_argument("--force", action="store_true", help="re-run cases that already finished in this run")
    p.add_argument("--case-timeout", type=float, metavar="S", help="stop a training that has run S seconds and "
                   "record it as failed (a hung worker); the suite goes on")
    p.add_argument("--no-report", action="store_true", help="skip the PDF report at the end")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files per case and seed "
                   "under RUN_DIR/tb (tensorboard --logdir RUN_DIR/tb; needs the tensorboard extra); the per-epoch CSV "
                   "logs under RUN_DIR/logs are always written")
    p.add_argument("--baseline", type=Path, metavar="FILE", help="show the regression check against FILE in the report")
    p.add_argument("--cases", **cases_arg)
    g = p.add_argument_group("executors", "where the cases train (docs/cluster.md)")
    g.add_argument("--executor", default="local", choices=executors.NAMES,
                   help="local (default): one case after another in this process; ray: Ray tasks, one GPU each; "
                        "slurm: a Slurm job array through submitit")
    g.add_argument("--max-retries", type=int, metavar="N", help="ray, slurm: re-run a case whose worker died "
                   "(killed, out of memory) up to N times before recording it as failed (default 1)")
    g.add_argument("--gpus-per-case", type=float, metavar="G", help="ray, slurm: GPUs per case (default 1; 0 with "
                   "--device cpu or on a Ray cluster without GPUs)")
    g.add_argument("--cpus-per-case", type=int, metavar="C", help="ray, slurm: CPUs per case (default: ray 1, slurm 4)")
    g.add_argument("--address", metavar="ADDR", help="ray: auto or ray://HOST:PORT, an existing cluster "
                   "(default: start a local Ray instance)")
    g.add_argument("--placement-timeout", type=float, metavar="S", help="ray: wait up to S seconds for a node that "
                   "fits a case (the autoscaler starting GPU workers) before stopping with what the cluster offers "
                   "(default 300)")
    g.add_argument("--partition", metavar="P", help="slurm: the partition")
    g.add_argument("--account", metavar="A", help="slurm: the account")
    g.add_argument("--time-min", type=int, metavar="M", help="slurm: time limit per case in minutes (default 60)")
    g.add_argument("--array-parallelism", type=int, metavar="K", help="slurm: at most K cases at once")
    g.add_argument("--log-dir", type=Path, metavar="DIR", help="slurm (required): job scripts and logs, on a "
                   "filesystem every node sees")
    p.set_defaults(command=cmd_run)

    p = sub.add_parser("weights", help="list the pretrained weight files cases need (or fetch them)")
    p.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    p.add_argument("--cases", **cases_arg)
    p.set_defaults(command=cmd_weights)

    p = sub.add_parser("report", help="(re)render report.pdf and report.html from a run's results.json")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--baseline", type=Path, metavar="FILE", help="show the regression check against FILE")
    p.set_defaults(command=cmd_report)

    p = sub.add_parser("check", help="compare a run with a stored baseline (exit 0 ok, 1 regression, 2 could not)")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--baseline", type=Path, metavar="FILE",
                   help="default: benchmarks/baselines/PROFILE-DEVICE.json for the run's profile and device")
    p.add_argument("--tolerance", action="append", default=[], metavar="SPEC",
                   help="e.g. test_acc:-2pp or wall_time:+25%% (repeatable)")
    p.add_argument("--allow-missing", nargs="+", default=[], metavar="CASE",
                   help="case ids (shell-style patterns) that may be missing, skipped or failed in this run without "
                        "counting as a regression")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.set_defaults(command=cmd_check)

    p = sub.add_parser("baseline", help="store a run as a baseline")
    p.add_argument("action", choices=["save"])
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--name", help="default: PROFILE-DEVICE, e.g. smoke-cpu")
    p.add_argument("--tolerance", action="append", default=[], metavar="SPEC",
                   help="tolerances stored with the baseline, e.g. wall_time:+300%%")
    p.add_argument("--dir", type=Path, default=BASELINES, help="default: benchmarks/baselines")
    p.set_defaults(command=cmd_baseline)
    return parser


def cmd_report(args) -> int:
    html, pdf = report.render(args.run_dir, baseline=args.baseline)
    print(f"report: {pdf}\n        {html}")
    return 0


def cmd_check(args) -> int:
    run_doc = results.read(args.run_dir)
    baseline_path = args.baseline or BASELINES / f"{check.default_name(run_doc)}.json"
    baseline = check.read_baseline(baseline_path)
    verdicts = check.compare(run_doc, baseline, [Tolerance.parse(t) for t in args.tolerance], args.allow_missing)
    warnings = check.environment_warnings(run_doc, baseline)
    if args.json:
        print(check.as_json(verdicts, warnings))
    else:
        for warning in warnings:
            print(warning, file=sys.stderr)
        print(f"baseline: {baseline_path} ({baseline.get('name')}, {baseline.get('created')})")
        print(tabulate(verdict_rows(verdicts), headers=VERDICT_HEADERS, tablefmt="simple"))
        counts = Counter(v.status for v in verdicts)
        print("\n" + ", ".join(f"{n} {status}" for status, n in counts.most_common()))
        one_seed = [v.id for v in verdicts if check.ONE_SEED in v.note]
        if one_seed:
            print(f"{len(one_seed)} case(s) with {check.ONE_SEED}")
    return check.exit_code(verdicts)


def cmd_baseline(args) -> int:
    run_doc = results.read(args.run_dir)
    if results.settings(run_doc)["random_init"]:
        raise check.CheckError(f"{args.run_dir}: this run trained its backbones from random initialisation "
                               f"(--random-init); its numbers are not pretrained results and cannot be a baseline. "
                               f"Run without --random-init")
    tolerances = {}
    for spec in args.tolerance:
        t = Tolerance.parse(spec)
        tolerances[t.metric] = spec.split(":", 1)[1].strip()
    name = args.name or check.default_name(run_doc)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise check.CheckError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"{name}.json"
    path.write_text(json.dumps(check.make_baseline(run_doc, name, tolerances), indent=1) + "\n")
    print(f"baseline: {path} ({len(run_doc['cases'])} cases)")
    return 0


def cmd_list(args) -> int:
    cases, suites = case_mod.load_cases(args.cases)
    if args.patterns:
        cases = case_mod.select(cases, args.patterns)
    headers = ["id", "task", "title", "model", "mode", "needs", "profiles", "hash"]
    rows = [[c.id, f"{c.suite} {c.task}", c.title, c.model.name, c.mode, _needs(c),
             ", ".join(c.profiles) or "all", c.config_hash] for c in cases]
    if any(c.published.source for c in cases):  # the references a published suite reproduces
        headers.append("published (test)")
        rows = [row + [_reference(c.published)] for row, c in zip(rows, cases)]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return 0


def _needs(case) -> str:
    file = required_weights(case.model.name, case.model.options)
    needs = [f"--data {case.requires_data}"] * bool(case.requires_data)
    if file is not None:
        needs.append(f"weights {file.path.name} ({'present' if file.present else 'missing'})")
    return "; ".join(needs) or "-"


def _reference(ref) -> str:
    if not ref.source:
        return "-"
    values = ", ".join(f"{name.removeprefix('test_').upper()} {value:.4g}" for name, (value, _) in ref.metrics.items())
    return f"{values} ({ref.source}, {ref.table})"


def cmd_weights(args) -> int:
    cases, _ = case_mod.load_cases(args.cases)
    files = {}
    for case in cases:
        file = required_weights(case.model.name, case.model.options)
        if file is not None:
            files.setdefault(file.path, (file, []))[1].append(case.id)
    if args.action == "fetch":
        for file, _ in files.values():
            if not file.present and file.url:
                print(f"fetching {file.url} → {file.path}")
                fetch_weights(file)
    rows = [[file.model, "present" if file.present else "MISSING", str(file.path), len(ids)]
            for file, ids in files.values()]
    print(tabulate(rows, headers=["model", "status", "file (where it belongs)", "cases"], tablefmt="simple"))
    missing = [file for file, _ in files.values() if not file.present]
    if missing and args.action == "list":
        print(f"\n{len(missing)} file(s) missing: cases that need them are skipped. Place each file at the path "
              f"shown (TORCH_HOME moves the torch hub cache), or run 'xraybench weights fetch' where a network exists.")
    return 0


def cmd_run(args) -> int:
    if not args.all and not args.patterns:
        raise CaseError("name the cases to run: --all, or one or more id patterns such as 'hw3*' (see xraybench list)")
    if args.seeds is not None and args.seeds < 1:
        raise CaseError(f"--seeds {args.seeds}: must be at least 1")
    if args.tensorboard:
        tensorboard_writer_class()  # missing: one line before anything trains
    if args.case_timeout is not None and not 0 < args.case_timeout <= MAX_CASE_TIMEOUT_S:
        raise CaseError(f"--case-timeout {args.case_timeout:g}: must be a number of seconds above 0 and at most "
                        f"{MAX_CASE_TIMEOUT_S:,} (30 days)")
    cases, suites = case_mod.load_cases(args.cases)
    if args.patterns:
        cases = case_mod.select(cases, args.patterns)
    options = executors.ExecutorOptions(
        name=args.executor, device=args.device, max_retries=args.max_retries, gpus_per_case=args.gpus_per_case,
        cpus_per_case=args.cpus_per_case, address=args.address, placement_timeout=args.placement_timeout,
        partition=args.partition, account=args.account, time_min=args.time_min, array_parallelism=args.array_parallelism, log_dir=args.log_dir)
    with _hangup_interrupts(), contextlib.closing(executors.create(options)) as executor:
        return _run_on(executor, args, cases, suites)


@contextlib.contextmanager
def _hangup_interrupts():
    """SIGTERM and SIGHUP (a dropped ssh session) stop a run as Ctrl-C does: queued and running cases
    of an executor are cancelled, finished ones stay in results.json."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _run_on(executor, args, cases, suites) -> int:
    found = executor.probe(args.device, args.precision)
    if found.get("error"):
        raise DeviceError(found["error"])
    device, chosen = torch.device(found["device"]), found["precision"]
    if executor.name != "local":
        print(f"executor: {executor.describe()}; cases train on {device.type}")
    print(f"precision: {chosen.name} ({chosen.reason})")
    if found.get("slow_warning"):
        print(found["slow_warning"], file=sys.stderr)
    profile_name = args.profile or ("full" if device.type == "cuda" else "quick")
    profile = PROFILES[profile_name]
    how = "chosen" if args.profile else f"default on {device.type.upper()}"
    print(f"profile: {profile.name} ({how}: {profile.description})")
    elsewhere = [c for c in cases if c.profiles and profile.name not in c.profiles]
    if elsewhere:
        names = sorted({c.sweep or c.id for c in elsewhere})
        shown = ", ".join(names[:6]) + (f", … ({len(names) - 6} more)" if len(names) > 6 else "")
        print(f"not in the {profile.name} profile: {len(elsewhere)} case(s) ({shown}); --profile "
              f"{' or '.join(sorted({p for c in elsewhere for p in c.profiles}))} runs them")
        cases = [c for c in cases if c not in elsewhere]
        if not cases:
            raise CaseError(f"every selected case runs only in other profiles; use --profile "
                            f"{' or '.join(sorted({p for c in elsewhere for p in c.profiles}))}")
    source = open_source(args.data, profile.synthetic_sizes, args.skip_bad_images, args.val_fraction, args.offline)
    plan = RunPlan(profile=profile, device=device, source=source, out=args.out, run_id=args.run_id,
                   seeds=args.seeds, force=args.force, precision=chosen, deterministic=args.deterministic,
                   random_init=args.random_init, strict_splits=args.strict_splits, offline=args.offline,
                   case_timeout_s=args.case_timeout, tensorboard=args.tensorboard,
                   environment={k: found[k] for k in ("machine_info", "software") if k in found})
    try:
        run_dir, doc = run(cases, plan, suites, executor=executor)
    except KeyboardInterrupt:
        where = args.out / plan.resolved_run_id
        print(f"\nxraybench: interrupted. Finished cases are saved in {where / 'results.json'}; run the same "
              f"command again to resume from there (same --run-id {plan.resolved_run_id}).", file=sys.stderr)
        return 130
    print()
    print(summary_table(doc))
    print(f"\nresults: {run_dir / 'results.json'}")
    if not args.no_report:
        _, pdf = report.render(run_dir, baseline=args.baseline)
        print(f"report:  {pdf}")
    return 1 if any(r["status"] == "failed" for r in doc["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
