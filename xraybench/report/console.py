"""What the terminal shows: at the end of a run, one line per case (mean ± sd over its finished seeds) and the
skipped cases once per reason; for ``xraybench check``, one line per case verdict (also the report's
regression-check table). Tables fit 100 columns (check: 120) unless ``wide``: long cells wrap."""

from __future__ import annotations

import textwrap
from collections import Counter

from tabulate import tabulate

from xraybench.check import ONE_SEED, CaseVerdict, MetricVerdict
from xraybench.report.formatting import mean_sd, plural
from xraybench.results import DEGENERATE_AUC, DEGENERATE_SHARE, Row, Run, by_case

NARROW = [
    ("test acc %", "test_acc", ".1f", 100),
    ("test AUC", "test_auc", ".2f", 1),
    ("sens. %", "test_sensitivity", ".1f", 100),
    ("spec. %", "test_specificity", ".1f", 100),
    ("time (s)", "wall_time_s", ".1f", 1),
]
WIDE = [("train acc %", "train_acc", ".1f", 100), ("best val acc %", "best_val_acc", ".1f", 100), *NARROW]


def summary_table(run: Run, wide: bool = False) -> str:
    """The run's trained cases, one line each (mean ± sd over finished seeds; ``wide`` adds training and validation
    accuracy); skipped cases are summarised once per reason below, failed and degenerate seeds named."""
    columns = WIDE if wide else NARROW
    rows, skipped, notes, degenerate, trainings = [], {}, [], [], 0
    for case in by_case(run).values():
        if all(r.status == "skipped" for r in case.rows):
            skipped.setdefault(_fix(case.rows[0]), []).append(case.id)
            continue
        statuses = Counter(r.status for r in case.rows)
        status = ", ".join(f"{n} {s}" if len(case.rows) > 1 else s for s, n in statuses.items())
        rows.append([case.id, status, *(mean_sd(case.values(m), spec, scale) for _, m, spec, scale in columns)])
        degenerate += [f"{case.id} seed {r.seed}" for r in case.ok if r.warnings]
        trainings += len(case.ok)
        notes += [f"{case.id} seed {r.seed} failed: {r.reason}" for r in case.rows if r.status == "failed"]
    lines = (
        [
            tabulate(
                rows,
                headers=["case", "status", *(c[0] for c in columns)],
                tablefmt="simple",
                disable_numparse=True,
                maxcolwidths=None if wide else [24, 8, 10, 11, 11, 11, 9],
            )
        ]
        if rows
        else []
    )
    if degenerate:
        notes.insert(
            0,
            f"warning: {len(degenerate)} of {trainings} trainings are degenerate, no better than one class "
            f"for every image (≥ {100 * DEGENERATE_SHARE:.0f} % of the test images one class, or test AUC "
            f"≤ {DEGENERATE_AUC}): {_few(degenerate, 6)}; the report's findings name each",
        )
    lines += [clip(text, wide) for text in notes]
    for reason, ids in skipped.items():
        lines.append(clip(f"skipped {plural(len(ids), 'case')} ({_few(ids)}): {reason}", wide))
    return "\n".join(lines)


def describe(run: Run) -> str:
    """What a run or baseline holds, e.g. '2 cases × 3 seeds (6 trainings)', '27 cases × 3 seeds (21 trainings, 60
    skipped)' or '5 cases, 1–3 seeds (9 trainings)'."""
    seeds = [len(case.rows) for case in by_case(run).values()]
    if not seeds:
        return "no cases"
    skipped = sum(r.status == "skipped" for r in run.cases)
    low, high = min(seeds), max(seeds)
    shape = f" × {plural(low, 'seed')}" if low == high else f", {low}–{high} seeds"
    return f"{plural(len(seeds), 'case')}{shape} ({plural(sum(seeds) - skipped, 'training')}" + (
        f", {skipped} skipped)" if skipped else ")"
    )


def _fix(row: Row) -> str:
    """What a skipped row needs, as one sentence shared by every case that needs the same."""
    needs = row.needs or ""
    if needs == "weights":
        return (
            "weight files not on disk; 'xraybench weights' lists them and where each belongs, 'xraybench weights "
            "fetch' gets them where a network exists"
        )
    if needs.startswith("--data "):
        return f"they need {needs}; xraybench run '{row.suite or ''}*' {needs} fetches it and runs them"
    return row.reason or ""


def _few(ids: list[str], shown: int = 3) -> str:
    return ", ".join(ids[:shown]) + (f", … {len(ids) - shown} more" if len(ids) > shown else "")


def clip(text: str, wide: bool = False, width: int = 100) -> str:
    """``text`` in lines of at most ``width`` characters (continuations indented), or as it is with ``wide``."""
    if wide:
        return text
    return "\n".join(
        textwrap.fill(line, width, subsequent_indent="    ", break_on_hyphens=False, break_long_words=False)
        if line
        else ""
        for line in text.split("\n")
    )


OBVIOUS = {"missing": "in the baseline, not in this run", "new": "not in the baseline"}  # what the status says
VERDICT_HEADERS = ["case", "seeds (baseline / run)", "status", "changes", "churn", "note"]


def verdict_rows(verdicts: list[CaseVerdict]) -> list[list[str]]:
    """One row per case for a terminal or report table; changes list the metrics that moved out of tolerance
    first (with the test's p), then the test accuracy. The note keeps what the changes do not already say."""
    rows = []
    for v in verdicts:
        shown = [m for m in v.metrics if m.status != "within tolerance"] or [
            m for m in v.metrics if m.metric == "test_acc"
        ]
        changes = ", ".join(f"{m.metric} {m.change} ({m.status}{_p(m)})" for m in shown)
        churn = "–" if v.churn is None else f"{100 * v.churn:.1f} %"
        said = {f"{m.metric} {m.change}" for m in shown}
        note = "; ".join(
            part
            for part in v.note.split("; ")
            if part and part not in (ONE_SEED, OBVIOUS.get(v.status)) and not any(part.startswith(s) for s in said)
        )
        rows.append([v.id, v.seeds, v.status, changes, churn, note])
    return rows


def verdict_table(verdicts: list[CaseVerdict], wide: bool = False) -> str:
    """The check's table for a terminal: 100 columns unless ``wide`` (one-seed notes are counted below it)."""
    return tabulate(
        verdict_rows(verdicts),
        headers=["case", "seeds", "status", "changes", "churn", "note"],
        tablefmt="simple",
        disable_numparse=True,
        maxcolwidths=None if wide else [22, None, 12, 26, None, 14],
    )


def _p(m: MetricVerdict) -> str:
    return "" if m.p_value is None else f", p = {m.p_value:.2g}"
