"""``xraybench report``, ``check``, ``history`` and ``baseline``: what is done with finished runs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from xraybench import check, history, report, results
from xraybench.report.console import clip, describe, verdict_table
from xraybench.results import Tolerance


def cmd_report(args) -> int:
    html, pdf = report.render(args.run_dir, baseline=args.baseline)
    print(f"report: {pdf}\n        {html}")
    return 0


def cmd_check(args) -> int:
    run = results.read(args.run_dir)
    baseline_path = args.baseline or check.default_path(run)
    baseline = check.read_baseline(baseline_path)
    tolerances = [Tolerance.parse(t) for t in args.tolerance]
    try:
        verdicts = check.compare(run, baseline, tolerances, args.allow_missing)
    except check.CheckError as exc:  # refused: said with the two files it was about
        raise check.CheckError(f"{args.run_dir} against {baseline_path}: {exc}") from None
    warnings = check.environment_warnings(run, baseline)
    if args.json:
        print(check.as_json(verdicts, warnings))
        return check.exit_code(verdicts)
    print(
        clip(
            f"baseline: {baseline_path} ({baseline.name}, {(baseline.created or '')[:10]}, {describe(baseline)})",
            args.wide,
        )
    )
    for warning in warnings:
        print(clip(warning, args.wide))
    print(verdict_table(verdicts, wide=args.wide))
    counts = Counter(v.status for v in verdicts)
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.most_common()))
    one_seed = [v.id for v in verdicts if check.ONE_SEED in v.note]
    if one_seed:
        print(clip(f"{len(one_seed)} case(s) with {check.ONE_SEED}", args.wide))
    return check.exit_code(verdicts)


def cmd_history(args) -> int:
    from xraybench.report import history_page

    if args.lookback < 1:
        raise history.HistoryError(f"--lookback {args.lookback}: must be at least 1 run")
    if not args.runs and not args.baselines:
        raise history.HistoryError("name the runs: RUN_DIR … (run directories or results files) or --baselines DIR")
    docs = history.load([*args.runs, *args.baselines])
    series = history.build(docs, args.lookback)
    if args.json:
        print(history.as_json(series))
    else:
        table = history_page.changes_table(series)
        print(clip(f"{history_page.summary(docs, series)}; runs oldest first: " + ", ".join(history.labels(docs))))
        print(tabulate(table.rows, headers=table.headers, tablefmt="simple"))
        html, pdf = history_page.render(docs, series, args.out, args.lookback)
        print(f"\nhistory: {pdf}\n         {html}")
    return history.exit_code(series)


def cmd_baseline(args) -> int:
    run = results.read(args.run_dir)
    if run.settings.random_init:
        raise check.CheckError(
            f"{args.run_dir}: this run trained its backbones from random initialisation "
            f"(--random-init); its numbers are not pretrained results and cannot be a baseline. "
            f"Run without --random-init"
        )
    tolerances = {}
    for spec in args.tolerance:
        t = Tolerance.parse(spec)
        tolerances[t.metric] = spec.split(":", 1)[1].strip()
    name = args.name or check.default_name(run)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise check.CheckError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    path = check.save(run, args.dir, name, tolerances, force=args.force)
    found = Path(path).resolve() == check.default_path(run).resolve()
    print(
        f"baseline: {path} ({describe(run)})\n"
        + (
            f"'xraybench check RUN_DIR', run from this directory, compares a later {run.profile} run with it"
            if found
            else f"compare a later run with it: xraybench check RUN_DIR --baseline {path}"
        )
    )
    return 0
