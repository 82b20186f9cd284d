"""``xraybench report``, ``check``, ``history`` and ``baseline``: what is done with finished runs."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from xraybench import check, history, report, results
from xraybench.report.console import VERDICT_HEADERS, verdict_rows
from xraybench.results import Tolerance

BASELINES = Path(__file__).resolve().parents[2] / "benchmarks" / "baselines"


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
        print(f"{len(docs)} runs, oldest first: " + ", ".join(d.get("run_id") or d.get("name") or "?" for d in docs))
        print(tabulate(table.rows, headers=table.headers, tablefmt="simple"))
        html, pdf = history_page.render(docs, series, args.out, args.lookback)
        print(f"\nhistory: {pdf}\n         {html}")
    return history.exit_code(series)


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
