"""A run against its baseline, over samples (seeds, per-epoch times), as asv compares benchmark runs:
one-sided tests that the current run is worse."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def mann_whitney_worse(baseline, current, higher_is_better: bool) -> float | None:
    """One-sided Mann–Whitney p that ``current`` is worse than ``baseline``; None without samples. Exact: by
    the exact distribution without ties, by enumerating the permutations with ties (seeds' accuracies on one
    test set often tie) — the normal approximation scipy falls back to there runs above its level."""
    baseline, current = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    if len(baseline) == 0 or len(current) == 0:
        return None
    alternative = "less" if higher_is_better else "greater"
    tied = len(np.unique(np.concatenate([baseline, current]))) < len(baseline) + len(current)
    method = stats.PermutationMethod(n_resamples=20000, rng=0) if tied else "exact"
    return float(stats.mannwhitneyu(current, baseline, alternative=alternative, method=method).pvalue)


def welch_worse(baseline, current, higher_is_better: bool) -> float:
    """One-sided Welch t-test p that ``current`` is worse than ``baseline`` (seeds as samples). Both sides
    without spread: 0 when the means differ that way, else 1."""
    baseline, current = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    worse = current.mean() < baseline.mean() if higher_is_better else current.mean() > baseline.mean()
    if np.ptp(baseline) == 0 and np.ptp(current) == 0:
        return 0.0 if worse else 1.0
    alternative = "less" if higher_is_better else "greater"
    with warnings.catch_warnings():  # one side without spread (e.g. every seed at the majority class) is fine
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(current, baseline, equal_var=False, alternative=alternative).pvalue)


def smallest_mann_whitney_p(n: int, m: int) -> float:
    """The smallest one-sided p an exact Mann–Whitney test can reach with n and m samples."""
    return 1.0 / math.comb(n + m, n)
