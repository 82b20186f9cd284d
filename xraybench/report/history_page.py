"""`xraybench history`'s page: the runs, the latest change of every case against its recent history, and one
small figure per case across runs — from ``xraybench.history``'s series, rendered like the report."""

from __future__ import annotations

from pathlib import Path

from xraybench import history
from xraybench.report import plots
from xraybench.report.formatting import METRIC_LABELS, interval, p_value
from xraybench.report.render import write_pages
from xraybench.report.tables import Table

CHANGE_HEADERS = ["case", "metric", "latest run", "recent runs (pooled)", "latest − recent [95% interval]", "p (Holm)",
                  "verdict"]


def render(docs: list[dict], series: list[history.Series], out: Path, lookback: int) -> tuple[Path, Path]:
    """Write history.html and history.pdf into ``out``."""
    return write_pages(context(docs, series, lookback), "history.html.j2", Path(out), "history",
                       docs[-1].get("datetime"))


def context(docs: list[dict], series: list[history.Series], lookback: int) -> dict:
    by_case: dict[str, list[history.Series]] = {}
    for s in series:
        by_case.setdefault(s.case, []).append(s)
    return {
        "title": f"xraybench history: {len(docs)} runs, {len(by_case)} cases",
        "runs": Table(["#", "run", "commit", "date", "profile", "file"],
                      [[str(i + 1), d.get("run_id") or d.get("name") or "", ((d.get("commit_info") or {}).get("id")
                        or "")[:8], history.when(d)[:19], d.get("profile") or "", d["_source"]]
                       for i, d in enumerate(docs)], numeric_from=99),
        "changes": changes_table(series),
        "method": (f"Each point is a run's mean over seeds with its 95% interval (seeds' spread and test images). Each "
                   f"run is tested against the pooled seeds of up to {lookback} earlier runs of the same configuration "
                   f"on the same test images (conbench's lookback): the difference of the means, with each side's seed "
                   f"spread and the test images' sampling, on Welch's t; a case's accuracy and AUC held together by "
                   f"Holm at α = 0.05. A flagged run is drawn red-orange (worse) or green (better). Runs are "
                   f"ordered by commit date, then run date. The intervals drawn count the sampling of the test "
                   f"images, which runs on the same images share; the test does not need to, so it sees changes "
                   f"smaller than the overlap of two intervals suggests."),
        "cases": [{"case": case, "figure": plots.metric_history(group)} for case, group in by_case.items()],
    }


def changes_table(series: list[history.Series]) -> Table:
    rows = []
    for s in series:
        p = s.latest
        latest = f"{100 * p.mean:.1f} {interval(p.interval)}"
        if p.change is None:
            rows.append([s.case, METRIC_LABELS.get(s.metric, s.metric), latest, "–", "–", "–", p.status])
            continue
        d = p.change
        recent = f"{100 * (p.mean - d.difference):.1f} ({p.window} runs, {d.seeds_b} seeds)"
        diff = f"{100 * d.difference:+.1f}" + (f" [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" if d.testable else "")
        rows.append([s.case, METRIC_LABELS.get(s.metric, s.metric), latest, recent, diff,
                     p_value(p.held_p) if d.testable else "–", p.status])
    return Table(CHANGE_HEADERS, rows, numeric_from=2, title="The latest run against its recent history")
