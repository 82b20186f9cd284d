"""`xraybench history`'s page: the runs, the latest change of every case against its recent history, and one
small figure per case across runs — from ``xraybench.history``'s series, rendered like the report."""

from __future__ import annotations

from pathlib import Path

from xraybench import history
from xraybench.report import plots
from xraybench.report.formatting import METRIC_LABELS, interval, p_value, plural
from xraybench.report.render import write_pages
from xraybench.report.tables import Table
from xraybench.results import Run

CHANGE_HEADERS = [
    "case",
    "profile",
    "metric",
    "latest run",
    "recent runs (pooled)",
    "latest − recent [95% interval]",
    "p (Holm)",
    "verdict",
]


def render(runs: list[Run], series: list[history.Series], out: Path, lookback: int) -> tuple[Path, Path]:
    """Write history.html and history.pdf into ``out``."""
    return write_pages(context(runs, series, lookback), "history.html.j2", Path(out), "history", runs[-1].datetime)


def summary(runs: list[Run], series: list[history.Series]) -> str:
    """ "6 runs, 1 case": the page's title and the console's first line say the same."""
    return f"{plural(len(runs), 'run')}, {plural(len({s.case for s in series}), 'case')}"


def context(runs: list[Run], series: list[history.Series], lookback: int) -> dict:
    by_case: dict[str, list[history.Series]] = {}
    for s in series:
        by_case.setdefault(s.case, []).append(s)
    labels = history.labels(runs)
    profiles = list(dict.fromkeys(history.profile_of(run) for run in runs))
    return {
        "title": f"xraybench history: {summary(runs, series)}",
        "runs": runs_table(runs, labels),
        "changes": changes_table(series),
        "method": (
            f"Each point is a run's mean over seeds with its 95% interval (seeds' spread and test images), "
            f"labelled by the run's commit and date (and its name where runs share both). A case run under "
            f"two profiles is two experiments (image size, epochs): each profile is its own series and line. "
            f"Each run is tested against the pooled seeds of up to {plural(lookback, 'earlier run')} of the "
            f"same configuration on the same test images (conbench's lookback): the difference of the means, "
            f"with each side's seed spread and the test images' sampling, on Welch's t; a case's accuracy and "
            f"AUC held together by Holm at α = 0.05. A flagged run is drawn red-orange (worse) or green "
            f"(better). Runs are ordered by commit date, then run date. The intervals drawn count the sampling "
            f"of the test images, which runs on the same images share; the test does not need to, so it sees "
            f"changes smaller than the overlap of two intervals suggests. A case the latest run lacks is drawn "
            f"and listed but is no regression of that run."
        ),
        "cases": [
            {"case": case, "figure": plots.metric_history(group, labels, profiles)} for case, group in by_case.items()
        ],
    }


def runs_table(runs: list[Run], labels: list[str]) -> Table:
    rows = [
        [str(i + 1), label, history.run_name(run), history.when(run)[:19], run.profile or "", run.source]
        for i, (run, label) in enumerate(zip(runs, labels))
    ]
    return Table(["#", "label (the figures' axis)", "run", "date", "profile", "file"], rows, numeric_from=99)


def changes_table(series: list[history.Series]) -> Table:
    rows = []
    for s in series:
        p = s.latest
        first = [s.case, s.profile or "–", METRIC_LABELS.get(s.metric, s.metric)]
        if not s.in_latest_run:
            rows.append([*first, "–", "–", "–", "–", f"not in the latest run (last seen in {p.label})"])
            continue
        latest = _unbroken(f"{100 * p.mean:.1f} {interval(p.interval)}")
        if p.change is None:
            rows.append([*first, latest, "–", "–", "–", p.status])
            continue
        d = p.change
        recent = f"{100 * (p.mean - d.difference):.1f} ({plural(p.window, 'run')}, {plural(d.seeds_b, 'seed')})"
        diff = f"{100 * d.difference:+.1f}" + (f" [{100 * d.low:+.1f}, {100 * d.high:+.1f}]" if d.testable else "")
        rows.append([*first, latest, recent, _unbroken(diff), p_value(p.held_p) if d.testable else "–", p.status])
    return Table(
        CHANGE_HEADERS, rows, numeric_from=3, title="The latest run against its recent history", css_class="comparisons"
    )  # case names unbroken, long verdicts wrap


def _unbroken(text: str) -> str:
    """No-break spaces: where the verdicts wrap, a number stays on one line with its interval."""
    return text.replace(" ", "\u00a0")
