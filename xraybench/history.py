"""A benchmark's history: each case's test accuracy and AUC across many runs, and a flag where a run moved
beyond the noise of the runs before it.

``check`` sees two points; a slow drift of a point per run never trips it. Here every run (results.json, or
a stored baseline) is a point of each case's series, ordered by commit date, then run date (asv's graphs).
Each point is tested against the pooled recent history (conbench's lookback): the seeds of up to
``lookback`` earlier runs of the same configuration on the same test images form one sample of the
procedure, the point's seeds the other, and the procedure-level test of the report's comparisons
(``stats.accuracy_difference``, ``stats.auc_difference``: each side's seed spread and the test images'
sampling, Welch–Satterthwaite t) decides, the case's two metrics held together by Holm at α = 0.05. Seeds
repeat from run to run (0, 1, 2 …); where a repeated seed trains the same model again, the runs agree more
than independent seeds would and the test errs on the quiet side. Numbers only: ``report.history_page``
draws and words them.

A run's profile (smoke, quick …) sets image sizes and epochs: a case's runs under two profiles are two
experiments, so each (case, profile) is its own series. Every case of any run is kept; one the latest run
lacks is shown but cannot make the history fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xraybench import results, stats
from xraybench.results import Baseline, CaseResult, Run, by_case

LOOKBACK = 5
TRACKED = ("test_acc", "test_auc")


class HistoryError(ValueError):
    """The history cannot be built (an unreadable file, fewer than two runs)."""


@dataclass
class Point:
    """One run of one case and metric."""

    run: str  # baseline name, or run id
    label: str  # the run's name in tables and figures, unique in the history (``labels``)
    commit: str  # short commit id, "" unknown
    when: str  # commit date, else run date (ISO)
    config_hash: str
    mean: float
    interval: list[float] | None  # 95%, over seeds and test images
    seeds: int
    change: stats.Difference | None = None  # against the pooled window before it; None: nothing to test against
    window: int = 0  # runs in that window
    held_p: float | None = None  # the change's p after Holm over the case's metrics
    status: str = ""  # "worse", "better", "no detectable change", or why no test ran


@dataclass
class Series:
    case: str
    metric: str
    profile: str = ""
    points: list[Point] = field(default_factory=list)
    in_latest_run: bool = True  # False: the latest run has no result of this case under this profile

    @property
    def latest(self) -> Point:
        return self.points[-1]


def load(paths: list[Path]) -> list[Run]:
    """Results files (a run directory or its results.json) and baselines (a .json file, or every .json in a
    folder), ordered by commit date, then run date."""
    from xraybench.check import CheckError, verify

    runs = []
    for path in _expand(paths):
        try:
            run = results.read(path)
            if run.is_baseline:
                verify(run, path)
        except (results.ResultsError, CheckError) as exc:
            raise HistoryError(str(exc)) from None
        runs.append(run)
    if len(runs) < 2:
        raise HistoryError(f"a history needs at least two runs; got {len(runs)} ({', '.join(map(str, paths))})")
    return sorted(runs, key=lambda r: (when(r), r.datetime or _created(r)))


def _expand(paths: list[Path]) -> list[Path]:
    found = []
    for path in map(Path, paths):
        if (path / results.FILENAME).is_file():
            found.append(path / results.FILENAME)
        elif path.is_dir():
            found += sorted(path.glob("*.json"))
        elif path.is_file():
            found.append(path)
        else:
            raise HistoryError(f"{path}: no such run directory, results file or baseline")
    return found


def when(run: Run) -> str:
    """A run's place in the history: its commit date, else its run (or baseline) date."""
    return run.commit_info.get("time") or run.datetime or _created(run)


def _created(run: Run) -> str:
    return (run.created if isinstance(run, Baseline) else None) or ""


def run_name(run: Run) -> str:
    """A baseline's name, else the run id, else the run's folder."""
    return (run.name if isinstance(run, Baseline) else None) or run.run_id or Path(run.source).parent.name


def labels(docs: list[Run]) -> list[str]:
    """Each run's label: commit (8 characters) and date; runs that share both add their name, and a counter
    where even that repeats, so that no two runs of a history are drawn or listed under one label."""
    base = [" ".join(filter(None, [_commit(d)[:8], when(d)[:10]])) for d in docs]
    named = [b if base.count(b) == 1 else f"{b} {run_name(d)}".strip() for b, d in zip(base, docs)]
    return [n if named.count(n) == 1 else f"{n} #{named[: i + 1].count(n)}" for i, n in enumerate(named)]


def build(docs: list[Run], lookback: int = LOOKBACK) -> list[Series]:
    """Every case of every run, each profile's series of each tracked metric across ``docs`` (in order), each
    point tested against the ``lookback`` comparable runs before it."""
    runs = [by_case(doc, [r for r in doc.cases if r.ok]) for doc in docs]
    names = labels(docs)
    series = []
    for case_id, profile in _keys(docs, runs):
        members = [
            (i, run[case_id])
            for i, (doc, run) in enumerate(zip(docs, runs))
            if case_id in run and profile_of(doc) == profile
        ]
        scores = [case.scores() for _, case in members]  # each run's predictions, decoded once
        current = members[-1][0] == len(docs) - 1
        per_metric = {
            m: Series(
                case_id, m, profile, [_point(docs[i], names[i], case, m) for i, case in members], in_latest_run=current
            )
            for m in TRACKED
        }
        for k in range(len(members)):
            _test([case for _, case in members], scores, k, [per_metric[m].points[k] for m in TRACKED], lookback)
        series += [s for s in per_metric.values() if s.points]
    return series


def profile_of(run: Run) -> str:
    return run.profile or ""


def _keys(docs: list[dict], runs: list[dict]) -> list[tuple[str, str]]:
    """Every (case, profile) of the runs: the latest run's first, then the rest by when each was last seen."""
    newest_first = zip(docs[::-1], runs[::-1])
    return list(dict.fromkeys((case_id, profile_of(doc)) for doc, run in newest_first for case_id in run))


def _commit(run: Run) -> str:
    return run.commit_info.get("id") or ""


def _point(doc: Run, label: str, case: CaseResult, metric: str) -> Point:
    values = case.values(metric)
    return Point(
        run=run_name(doc),
        label=label,
        commit=_commit(doc)[:8],
        when=when(doc)[:19],
        config_hash=case.first.hash or "",
        mean=float(np.mean(values)) if values else float("nan"),
        interval=case.mean_interval(metric),
        seeds=len(values),
    )


def _test(cases: list[CaseResult], scores: list, i: int, points: list[Point], lookback: int) -> None:
    """Run ``i`` against the pooled window of comparable runs before it (same configuration, same test
    images, stored predictions: ``scores``); sets each metric point's change, held p and status."""
    current = scores[i]
    if current is None:
        for p in points:
            p.status = "no stored predictions"
        return
    window = []
    for case, earlier in zip(reversed(cases[:i]), reversed(scores[:i])):
        if case.first.hash == cases[i].first.hash and earlier is not None and earlier.ids == current.ids:
            window.append(earlier)
        if len(window) == lookback:
            break
    if not window:
        for p in points:
            p.status = "first comparable run"
        return
    pooled_probs = np.concatenate([w.probs for w in window])
    pooled_correct = np.concatenate([w.correct() for w in window])
    changes = {
        "test_acc": stats.accuracy_difference(current.correct(), pooled_correct),
        "test_auc": stats.auc_difference(current.labels, current.probs, pooled_probs),
    }
    held = stats.holm([changes[m].p_value for m in TRACKED])
    for p, metric, p_held in zip(points, TRACKED, held):
        d = changes[metric]
        p.change, p.window, p.held_p = d, len(window), p_held
        verdict = stats.direction(d.difference, p_held, d.testable)
        p.status = {1: "better", -1: "worse", 0: "no detectable change", None: "one seed a side: not tested"}[verdict]


def exit_code(series: list[Series]) -> int:
    """As ``check``: 1 when a case's result in the latest run is worse than its recent history, else 0; a case
    the latest run lacks is no regression of that run."""
    return 1 if any(s.in_latest_run and s.latest.status == "worse" for s in series) else 0


def as_json(series: list[Series]) -> str:
    rows = [
        {
            "case": s.case,
            "metric": s.metric,
            "profile": s.profile,
            "in_latest_run": s.in_latest_run,
            "points": [_point_json(p) for p in s.points],
        }
        for s in series
    ]
    return json.dumps(rows, indent=1)


def _point_json(p: Point) -> dict:
    change = (
        None
        if p.change is None
        else {
            "difference": p.change.difference,
            "low": p.change.low,
            "high": p.change.high,
            "p_value": p.change.p_value,
        }
    )
    return {
        "run": p.run,
        "label": p.label,
        "commit": p.commit,
        "when": p.when,
        "mean": p.mean,
        "interval": p.interval,
        "seeds": p.seeds,
        "status": p.status,
        "window": p.window,
        "p_held": p.held_p,
        "change": change,
    }
