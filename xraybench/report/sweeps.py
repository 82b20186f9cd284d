"""A hyperparameter sweep in the report: the grid as one table sorted by validation accuracy, each
hyperparameter's effect as small multiples, and the expected best validation accuracy against the
number of trials (Dodge et al. 2019, "Show your work"): what a user who could afford only n of the
grid's points would reach, on average."""

from __future__ import annotations

import numpy as np

from xraybench import stats
from xraybench.report import plots
from xraybench.report.formatting import mean_sd, percent_sd
from xraybench.report.tables import Table, task
from xraybench.results import CaseResult


def sweep_section(members: list[CaseResult], not_finished: list[str]) -> dict:
    keys = list(dict.fromkeys(k for c in members for k in _params(c)))
    ok = [c for c in members if c.ok]
    val = {c.id: float(np.mean(c.values("best_val_acc"))) for c in ok}
    ordered = sorted(members, key=lambda c: -val.get(c.id, -1.0))
    rows = []
    for c in ordered:
        done = c.id in val
        rows.append(
            [
                c.id,
                *(f"{_params(c).get(k, '')}" for k in keys),
                str(c.seeds),
                percent_sd(c.values("best_val_acc")) if done else c.first.status,
                percent_sd(c.values("test_acc")) if done else "–",
                mean_sd(c.values("test_loss"), ".4f") if done else "–",
                mean_sd(c.values("wall_time_s"), ".1f") if done else "–",
            ]
        )
    table = Table(
        [
            "case",
            *(k.split(".", 1)[1] for k in keys),
            "seeds",
            "best val acc",
            "test acc",
            "test loss",
            "training time (s)",
        ],
        rows,
        caption=f"Sweep of {members[0].first.sweep}: one row per point of the grid, best validation "
        f"accuracy first (mean ± sd over seeds).",
    )
    figures = []
    if ok:
        effects = {k.split(".", 1)[1]: [(_params(c)[k], val[c.id]) for c in ok] for k in keys}
        curve = stats.expected_max(list(val.values()))
        figures.append(
            {
                "src": plots.sweep_figure(effects, curve),
                "caption": "(left) Each hyperparameter's effect: every point of the grid (dots) and the "
                "mean per value (line), best validation accuracy, mean over seeds. (right) "
                "Expected best validation accuracy of n points of the grid "
                "drawn at random with replacement (Dodge et al. 2019).",
            }
        )
    return task(tables=[table], findings=_findings(members, ok, val), not_finished=not_finished, figures=figures)


def _findings(members: list[CaseResult], ok: list[CaseResult], val: dict[str, float]) -> list[str]:
    if not ok:
        return [f"None of the {len(members)} points of the sweep finished."]
    best = max(ok, key=lambda c: val[c.id])
    params = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in _params(best).items())
    curve = stats.expected_max(list(val.values()))
    gain = curve[-1] - curve[0]
    half = next((n for n, e in enumerate(curve, 1) if e >= curve[0] + 0.5 * gain), len(curve))
    where = f"half of that gain comes within {half} point(s)" if gain > 1e-9 else "trying more points gains nothing"
    return [
        f"{len(ok)} of {len(members)} points finished. The best validation accuracy "
        f"({percent_sd(best.values('best_val_acc'))}) came with {params}: a selection on validation point "
        f"estimates, not a tested difference between points; its test accuracy is "
        f"{percent_sd(best.values('test_acc'))}.",
        f"Expected best validation accuracy of n points drawn at random from the grid, with replacement "
        f"(Dodge et al. 2019): {100 * curve[0]:.1f} % for n = 1, {100 * curve[-1]:.1f} % for n = {len(curve)} "
        f"(not the best of the whole grid: draws repeat); {where}. "
        f"Spread of the points' validation accuracy: {mean_sd(list(val.values()), '.3f')}.",
    ]


def _params(case: CaseResult) -> dict:
    """The point of the grid a case trained: its sweep parameters (none for a case outside a sweep)."""
    return case.first.sweep_params or {}
