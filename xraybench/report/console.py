"""What the terminal shows: at the end of a run, one line per case (mean ± sd over its finished seeds); for
``xraybench check``, one line per case verdict (also the report's regression-check table)."""

from __future__ import annotations

from collections import Counter

from tabulate import tabulate

from xraybench.check import CaseVerdict, MetricVerdict
from xraybench.report.formatting import mean_sd
from xraybench.results import by_case


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


VERDICT_HEADERS = ["case", "seeds (baseline / run)", "status", "changes", "churn", "note"]


def verdict_rows(verdicts: list[CaseVerdict]) -> list[list[str]]:
    """One row per case for a terminal or report table; changes list the metrics that moved out of tolerance
    first (with the test's p), then the test accuracy."""
    rows = []
    for v in verdicts:
        shown = [m for m in v.metrics if m.status != "within tolerance"] or \
                [m for m in v.metrics if m.metric == "test_acc"]
        changes = ", ".join(f"{m.metric} {m.change} ({m.status}{_p(m)})" for m in shown)
        churn = "–" if v.churn is None else f"{100 * v.churn:.1f} %"
        rows.append([v.id, v.seeds, v.status, changes, churn, v.note])
    return rows


def _p(m: MetricVerdict) -> str:
    return "" if m.p_value is None else f", p = {m.p_value:.2g}"
