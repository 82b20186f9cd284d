"""A task's test-set analysis for the report: operating points and calibration of its cases
(numbers from xraybench.operating), as one table and one figure."""

from __future__ import annotations

from xraybench import plots, stats
from xraybench.comparisons import CaseResult
from xraybench.formatting import interval, mean_sd, pct
from xraybench.operating import CALIBRATION_BINS, SPECIFICITY_TARGETS, case_operating_points

THRESHOLD_HEADERS = ["case", "seeds", "threshold (val, Youden)", "test acc at 0.5", "test acc at threshold",
                     "sensitivity at threshold", "specificity at threshold"]
FIXED_SPEC_HEADERS = ["case", *(f"sensitivity at {100 * t:.0f}% val specificity (test specificity)"
                                for t in SPECIFICITY_TARGETS), "Brier score", "ECE"]


def operating_section(done: list[CaseResult]) -> dict | None:
    """Tables and figure for the cases of a task that stored per-image predictions; None if none did."""
    points = [p for p in (case_operating_points(c) for c in done) if p is not None]
    if not points:
        return None
    thresholds, fixed = [], []
    for p in points:
        n = p.positives + p.negatives
        thresholds.append([
            p.case, str(len(p.seeds)), mean_sd(p.values(lambda s: s.youden), ".3f"),
            _with_interval(p.values(lambda s: s.acc_half), n), _with_interval(p.values(lambda s: s.acc_youden), n),
            _with_interval(p.values(lambda s: s.sensitivity_youden), p.positives),
            _with_interval(p.values(lambda s: s.specificity_youden), p.negatives)])
        fixed.append([
            p.case,
            *(f"{_with_interval(p.values(lambda s, t=t: s.at_specificity[t][0]), p.positives)} "
              f"({pct(_mean(p.values(lambda s, t=t: s.at_specificity[t][1])))})" for t in SPECIFICITY_TARGETS),
            f"{_mean(p.values(lambda s: s.brier)):.3f} {interval(p.brier_interval(), '.3f', 1)}",
            f"{_mean(p.values(lambda s: s.ece)):.3f} {interval(p.ece_interval(), '.3f', 1)}"])
    return {
        "tables": [
            {"headers": THRESHOLD_HEADERS, "rows": thresholds,
             "caption": "Thresholds are chosen on the validation split, per seed, and frozen for the test split: "
                        "0.5 is the homework's rule; Youden's J maximises sensitivity + specificity − 1 on "
                        "validation (mean ± sd over seeds). Proportions: mean over seeds with a 95% interval "
                        "counting the seeds' spread and the test images' sampling (Wilson with one seed)."},
            {"headers": FIXED_SPEC_HEADERS, "rows": fixed,
             "caption": "Sensitivity at a fixed specificity: the lowest threshold that reaches the specificity on "
                        "validation, applied to the test images; the test specificity it gives is in brackets "
                        "(a shifted test split may fall short). Brier score: mean squared error of P(pneumonia), 95% "
                        f"interval over test images. ECE: expected calibration error over {CALIBRATION_BINS} "
                        "equal-width bins, mean over seeds, 95% bootstrap interval over test images."}],
        "figure": plots.operating_curves(points),
    }


def _mean(values: list[float]) -> float:
    return stats.across_seeds(values).mean


def _with_interval(values: list[float], images: int) -> str:
    return f"{pct(_mean(values))} {interval(stats.accuracy_interval(values, images))}"
