"""The report's closing pages: skipped and failed cases, every seed's test metrics, the case
configurations as one compact table, the environment and the workers."""

from __future__ import annotations

import json
from collections import Counter

from xraybench.report.formatting import interval, pct
from xraybench.report.tables import Table
from xraybench.report.tasks import test_intervals_of
from xraybench.results import CaseResult, Row, Run

PER_SEED_HEADERS = ["case", "seed", "test acc", "sensitivity", "specificity", "AUC", "F1"]


def problems(cases: dict[str, CaseResult]) -> list[dict]:
    """One line per reason (a missing weight file skips a backbone's fine-tuned and frozen cases alike):
    the cases, with their seeds where not all of them stopped, and the status."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for case in cases.values():
        bad = [r for r in case.rows if not r.ok]
        if bad:
            seeds = (
                ""
                if len(bad) == len(case.rows)
                else f" (seed{'s' if len(bad) > 1 else ''} {', '.join(str(r.seed) for r in bad)})"
            )
            grouped.setdefault((bad[0].status, bad[0].reason or ""), []).append(case.id + seeds)
    return [{"case": ", ".join(ids), "status": status, "reason": reason} for (status, reason), ids in grouped.items()]


def per_seed_table(cases: dict[str, CaseResult]) -> Table | None:
    rows = []
    for case in cases.values():
        for r in case.ok:
            m = r.metrics
            ci = test_intervals_of(r)
            rows.append(
                [
                    case.id,
                    str(r.seed),
                    f"{pct(m.test_acc)} {interval(ci.get('acc'))}",
                    f"{pct(m.test_sensitivity)} {interval(ci.get('sensitivity'))}",
                    f"{pct(m.test_specificity)} {interval(ci.get('specificity'))}",
                    "n/a" if m.test_auc is None else f"{m.test_auc:.3f} {interval(ci.get('auc'), '.3f', 1)}",
                    f"{pct(m.test_f1)} {interval(ci.get('f1'))}" if m.test_f1 is not None else "n/a",
                ]
            )
    return Table(PER_SEED_HEADERS, rows, numeric_from=2) if rows else None


def configurations(cases: dict[str, CaseResult]) -> dict:
    """Configurations as one compact table: per suite, the settings most of its cases share, once; per case,
    what differs from them, its hash and seeds. The full configurations are in results.json (and in the HTML
    report, hidden in print)."""
    flat = {c.id: _flatten(c.first.config) for c in cases.values()}
    shared, rows = {}, []
    for suite in dict.fromkeys(c.first.suite or "" for c in cases.values()):
        members = [c for c in cases.values() if (c.first.suite or "") == suite]
        keys = dict.fromkeys(k for c in members for k in flat[c.id])
        # A key most cases lack (an option of one model) is not shared: the cases that set it show it.
        common = {k: Counter(flat[c.id].get(k) for c in members).most_common(1)[0][0] for k in keys}
        common = {k: v for k, v in common.items() if v is not None and k != "train.seed"}  # seeds: a column
        shared[suite] = ", ".join(f"{k} = {v}" for k, v in common.items())
        for c in members:
            seeds = [r.seed for r in c.rows]
            changes = [f"{k} = {v}" for k, v in flat[c.id].items() if k != "train.seed" and common.get(k) != v]
            statuses = ", ".join(f"{n} {s}" for s, n in Counter(r.status for r in c.rows).items())
            rows.append(
                [c.id, c.first.hash or "", ", ".join(str(s) for s in seeds), statuses, "; ".join(changes) or "–"]
            )
    return {
        "shared": shared,
        "table": Table(["case", "hash", "seeds", "status", "differs from the shared settings"], rows, numeric_from=99),
        "full": [
            {"case": c.id, "config": json.dumps(c.first.config, indent=2, sort_keys=True)} for c in cases.values()
        ],
    }


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in sorted(config.items()):
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else str(value)
    return out


def environment(run: Run) -> list[tuple[str, str]]:
    """The machine, software, settings and commit the run recorded, as ``group.key`` and its value (settings as
    results.json holds them)."""
    groups = {
        "machine_info": run.machine_info,
        "software": run.software,
        "settings": run.settings.dump(),
        "commit_info": run.commit_info,
    }
    pairs = []
    for group, recorded in groups.items():
        for key, value in recorded.items():
            pairs.append((f"{group}.{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    return pairs


def workers(rows: list[Row]) -> Table | None:
    """Who trained the cases, when an executor spread them (Ray, Slurm): one line per executor, host, device
    and GPU, with the trainings it ran. None for the local executor (the environment says its device) and
    for results from before executors recorded it."""
    counts = Counter()
    for row in rows:
        w = row.worker
        if w and "host" in w and w.get("executor") != "local":
            counts[
                (
                    w["executor"],
                    w["host"],
                    w["device"],
                    w.get("gpu") or "–",
                    w.get("cuda_visible_devices") if w.get("cuda_visible_devices") is not None else "–",
                )
            ] += 1
    if not counts:
        return None
    return Table(
        ["executor", "host", "device", "GPU", "CUDA_VISIBLE_DEVICES", "trainings"],
        [[*key, n] for key, n in sorted(counts.items())],
        numeric_from=5,
    )
