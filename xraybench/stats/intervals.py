"""Intervals: a number with its uncertainty.

- one model on one test set: Wilson intervals for proportions (scipy), DeLong for the AUC
  (``stats.delong``), a BCa bootstrap for F1 (scipy);
- one case over seeds: mean, sd, min–max and a t interval of the mean, and a mean accuracy's
  interval that also counts the sampling of the test images;
- what a test set can resolve: the smallest difference a test detects with 80% power.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xraybench.stats import delong
from xraybench.stats.decision import says_pneumonia

CONFIDENCE = 0.95
POWER = 0.80
Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


def rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


# ------------------------------------------------------------------- one model, one test set


def wilson(successes: int, trials: int) -> list[float] | None:
    """Wilson score interval of a proportion; None when there are no trials."""
    if trials == 0:
        return None
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(CONFIDENCE, method="wilson")
    return [float(ci.low), float(ci.high)]


def clopper_pearson(successes: int, trials: int) -> list[float]:
    """Exact (Clopper–Pearson) 95% interval of a proportion: for rates a claim is read against, such as a
    test's false-positive rate in a simulation."""
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(CONFIDENCE, method="exact")
    return [float(ci.low), float(ci.high)]


def _f1(labels: np.ndarray, predicted: np.ndarray, axis: int = -1) -> np.ndarray:
    """F1 of label 1 along ``axis`` (vectorised for scipy.stats.bootstrap); 0 when undefined."""
    tp = np.sum(labels * predicted, axis=axis)
    fp = np.sum((1 - labels) * predicted, axis=axis)
    fn = np.sum(labels * (1 - predicted), axis=axis)
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def bootstrap_interval(statistic, *samples: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> list[float] | None:
    """BCa bootstrap interval of a paired statistic over images (percentile where BCa is degenerate)."""
    if len(samples[0]) < 2:
        return None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():  # a degenerate BCa (e.g. F1 of 1.0) is handled below
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                samples,
                statistic,
                paired=True,
                vectorized=True,
                n_resamples=n_resamples,
                confidence_level=CONFIDENCE,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return [float(low), float(high)]
    return None


def confusion_intervals(tn: int, fp: int, fn: int, tp: int) -> dict[str, list[float] | None]:
    """Wilson intervals of accuracy, sensitivity and specificity from a confusion matrix."""
    return {
        "acc": wilson(tn + tp, tn + fp + fn + tp),
        "sensitivity": wilson(tp, tp + fn),
        "specificity": wilson(tn, tn + fp),
    }


def test_intervals(labels: np.ndarray, probs: np.ndarray) -> dict[str, list[float] | None]:
    """95% intervals of the test metrics of one model: accuracy, sensitivity, specificity
    (Wilson), AUC (DeLong) and F1 (BCa bootstrap)."""
    labels = np.asarray(labels).astype(int)
    predicted = says_pneumonia(np.asarray(probs)).astype(int)
    positives, negatives = labels == 1, labels == 0
    tp, fn = int(predicted[positives].sum()), int((1 - predicted[positives]).sum())
    tn, fp = int((1 - predicted[negatives]).sum()), int(predicted[negatives].sum())
    out = {
        **confusion_intervals(tn, fp, fn, tp),
        "auc": delong_interval(labels, probs),
        "f1": bootstrap_interval(_f1, labels.astype(float), predicted.astype(float)),
    }
    return {k: None if v is None else [rounded(x) for x in v] for k, v in out.items()}


def delong_interval(labels: np.ndarray, probs: np.ndarray) -> list[float] | None:
    """95% DeLong interval of one model's AUC; None when the split lacks a class."""
    labels = np.asarray(labels).astype(int)
    if not ((labels == 1).any() and (labels == 0).any()):
        return None
    return [rounded(x) for x in delong.auc_with_variance(labels, probs).interval(CONFIDENCE)]


# ---------------------------------------------------------------------- one case over seeds


@dataclass(frozen=True)
class SeedSummary:
    n: int
    mean: float
    sd: float | None  # None with one seed
    min: float
    max: float
    low: float | None  # 95% t interval of the mean; None with one seed
    high: float | None


def across_seeds(values) -> SeedSummary | None:
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) == 0:
        return None
    mean = float(values.mean())
    if len(values) == 1:
        return SeedSummary(1, mean, None, mean, mean, None, None)
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return SeedSummary(len(values), mean, sd, float(values.min()), float(values.max()), mean - half, mean + half)


def accuracy_interval(values, images: int) -> list[float] | None:
    """95% interval of a case's mean accuracy over seeds on a test set of ``images``: the seeds'
    t interval combined with the test set's binomial sampling (Wilson with one seed). A t interval
    over seeds alone would claim certainty when every seed scores the same on a small test set."""
    summary = across_seeds(values)
    if summary is None or images == 0:
        return None
    # Wilson's sides rather than the normal approximation's, which collapse to nothing when every seed
    # scores 0 or 1.
    return _with_seed_spread(summary, wilson(round(summary.mean * images), images))


def auc_interval(values, seed_intervals) -> list[float] | None:
    """95% interval of a case's mean AUC over seeds: the seeds' t interval combined with the test images'
    sampling, each seed's DeLong interval (``seed_intervals``, [low, high] per seed) averaged around the mean."""
    summary = across_seeds(values)
    found = [b for b in seed_intervals if b is not None]
    if summary is None or len(found) != summary.n:
        return None
    below = float(np.mean([v - b[0] for v, b in zip(values, found)]))
    above = float(np.mean([b[1] - v for v, b in zip(values, found)]))
    return _with_seed_spread(summary, [summary.mean - below, summary.mean + above])


def _with_seed_spread(summary: SeedSummary, test: list[float]) -> list[float]:
    """The test sampling's interval around a mean over seeds widened by the seeds' t half-width, combined on
    each side (the two are independent); the test interval alone with one seed."""
    if summary.n == 1:
        return test
    seed_half = summary.high - summary.mean
    low = summary.mean - math.hypot(seed_half, max(0.0, summary.mean - test[0]))
    high = summary.mean + math.hypot(seed_half, max(0.0, test[1] - summary.mean))
    return [max(0.0, low), min(1.0, high)]


# Where the degrees of freedom read each variance part: at its upper confidence bound, the chi-square's 15% quantile
# (``DF_QUANTILE``). Welch–Satterthwaite reads the estimates themselves; when one side's seeds scatter and dominate
# with 2 degrees of freedom, an underestimated spread raises the degrees of freedom just when it raises the statistic,
# and 3 vs 3 seeds at 5 vs 1 pp gave 7% false winners. Read at the bound, the worst cells of
# benchmarks/stat_calibration.py hold 5%, fixed and under --seeds auto; equal spreads keep most of their power.
DF_QUANTILE = 0.15


def welch_t(difference, parts, confidence: float = CONFIDENCE) -> dict:
    """The t reference of a difference whose variance is a sum of independent ``parts`` (variance, degrees of
    freedom): standard error, degrees of freedom, interval at ``confidence`` and two-sided p. The degrees of freedom
    are Welch–Satterthwaite's on each part read at its upper confidence bound (``DF_QUANTILE``), which keeps the level
    when one part dominates. Vectorised: each variance may be an array of the difference's shape."""
    variance = sum(v for v, _ in parts)
    bounds = [(v if math.isinf(d) else v * d / stats.chi2.ppf(DF_QUANTILE, d), d) for v, d in parts]
    numerator = sum(b for b, _ in bounds)
    denominator = sum(b**2 / d for b, d in bounds)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, numerator**2 / denominator, np.inf)
        se = np.sqrt(variance)
        t = np.where(se > 0, np.abs(difference) / se, np.where(difference == 0, 0.0, np.inf))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {"se": se, "df": df, "low": difference - half, "high": difference + half, "p_value": 2 * stats.t.sf(t, df)}


def detectable_difference(se: float) -> float:
    """The smallest true difference found with 80% power by a two-sided 5% test whose standard error is ``se``."""
    return (Z + float(stats.norm.ppf(POWER))) * se


def resolution(summaries: list[SeedSummary | None], images: int) -> float | None:
    """The smallest difference in accuracy (0–1) between two cases with these summaries over seeds that a
    two-sided 5% test detects with 80% power on ``images`` test images, given their mean accuracy and seed
    spread. Unpaired, so it does not depend on how much two particular models agree; paired tests do a
    little better."""
    found = [s for s in summaries if s is not None]
    if not found or not images:
        return None
    accuracy = float(np.mean([s.mean for s in found]))
    seed_variance = float(np.mean([(s.sd or 0.0) ** 2 / s.n for s in found]))
    return detectable_difference(float(np.sqrt(2 * (accuracy * (1 - accuracy) / images + seed_variance))))
