"""Statistics that let a number carry its uncertainty.

- one model on one test set: Wilson intervals for proportions (scipy), DeLong for the AUC
  (``xraybench.delong``), a BCa bootstrap for F1 (scipy);
- one case over seeds: mean, sd, min–max and a t interval of the mean;
- two cases on the same test images: the exact sign test on per-image correctness (exact
  McNemar when each side has one seed; statsmodels' gives the same p), DeLong's test for
  AUCs, and P(A beats B) over seeds with a bootstrap interval (Bouthillier et al. 2021);
- a run against a baseline: Mann–Whitney over seeds or per-epoch times, as asv does.

Why the sign test: with k seeds per side, each image's score is the share of seeds that got
it right; the per-image differences are independent across images (the unit a test set
samples), their mean is exactly the mean per-seed accuracy difference, and with one seed each
the test reduces to exact McNemar (Dietterich 1998).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xraybench.stats import delong

ALPHA = 0.05
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
            result = stats.bootstrap(samples, statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                                     confidence_level=CONFIDENCE, method=method, rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return [float(low), float(high)]
    return None


def confusion_intervals(tn: int, fp: int, fn: int, tp: int) -> dict[str, list[float] | None]:
    """Wilson intervals of accuracy, sensitivity and specificity from a confusion matrix."""
    return {"acc": wilson(tn + tp, tn + fp + fn + tp), "sensitivity": wilson(tp, tp + fn),
            "specificity": wilson(tn, tn + fp)}


def test_intervals(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, list[float] | None]:
    """95% intervals of the test metrics of one model: accuracy, sensitivity, specificity
    (Wilson), AUC (DeLong) and F1 (BCa bootstrap)."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probs) >= threshold).astype(int)
    positives, negatives = labels == 1, labels == 0
    tp, fn = int(predicted[positives].sum()), int((1 - predicted[positives]).sum())
    tn, fp = int((1 - predicted[negatives]).sum()), int(predicted[negatives].sum())
    out = {**confusion_intervals(tn, fp, fn, tp), "auc": None,
           "f1": bootstrap_interval(_f1, labels.astype(float), predicted.astype(float))}
    if positives.any() and negatives.any():
        out["auc"] = list(delong.auc_with_variance(labels, probs).interval(CONFIDENCE))
    return {k: None if v is None else [rounded(x) for x in v] for k, v in out.items()}


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
    test = wilson(round(summary.mean * images), images)
    if summary.n == 1:
        return test
    # The seeds' half-width and the test sampling's, combined on each side; Wilson's sides rather than
    # the normal approximation's, which collapse to nothing when every seed scores 0 or 1.
    seed_half = summary.high - summary.mean
    low = summary.mean - math.hypot(seed_half, max(0.0, summary.mean - test[0]))
    high = summary.mean + math.hypot(seed_half, max(0.0, test[1] - summary.mean))
    return [max(0.0, low), min(1.0, high)]


# -------------------------------------------------------------- two cases, same test images


def sign_test(differences: np.ndarray, alternative: str = "two-sided") -> float:
    """Exact sign test of per-image differences (zeros dropped); 1.0 when all are zero.

    ``alternative="less"``: the differences tend to be negative."""
    differences = np.asarray(differences)
    above, below = int((differences > 0).sum()), int((differences < 0).sum())
    if above + below == 0:
        return 1.0
    return float(stats.binomtest(above, above + below, 0.5, alternative=alternative).pvalue)


@dataclass(frozen=True)
class PairedAccuracy:
    """A − B in accuracy on the same images, seeds of each side pooled per image."""

    difference: float  # mean accuracy of A minus that of B
    low: float  # 95% interval: test-image sampling plus the seeds' spread
    high: float
    se: float
    p_value: float  # exact sign test (exact McNemar with one seed per side), two-sided
    seeds_a: int
    seeds_b: int
    images: int

    @property
    def significant(self) -> bool:
        """Both the test and the interval say the difference is not zero."""
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)


def matched_seeds(seeds_a: list, seeds_b: list) -> tuple[list[int], list[int]]:
    """Indices of as many seeds on each side as the smaller side has: seeds both ran first, then in order.

    Paired tests pool seeds per image; with unequal counts the side with more seeds has smoother
    per-image scores (and a seed-mean ensemble a higher AUC), which biases the test."""
    common = [s for s in seeds_a if s in seeds_b]
    k = min(len(seeds_a), len(seeds_b))
    order_a = common + [s for s in seeds_a if s not in common]
    order_b = common + [s for s in seeds_b if s not in common]
    return [seeds_a.index(s) for s in order_a[:k]], [seeds_b.index(s) for s in order_b[:k]]


def paired_accuracy(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedAccuracy:
    """``correct_a`` [k, n] and ``correct_b`` [k, n] (as many seeds a side: ``matched_seeds``): 1 where
    a seed's model got the image right."""
    correct_a, correct_b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
    if len(correct_a) != len(correct_b):
        raise ValueError("pair as many seeds on each side (stats.matched_seeds)")
    per_image = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    n = per_image.shape[0]
    test_variance = per_image.var(ddof=1) / n if n > 1 else 0.0
    seed_variance = sum(acc.var(ddof=1) / len(acc) for acc in (correct_a.mean(axis=1), correct_b.mean(axis=1))
                        if len(acc) > 1)
    se = math.sqrt(test_variance + seed_variance)
    diff = float(per_image.mean())
    return PairedAccuracy(diff, diff - Z * se, diff + Z * se, se, sign_test(per_image), len(correct_a),
                          len(correct_b), n)


@dataclass(frozen=True)
class PairedAuc:
    difference: float  # mean over matched seed pairs of AUC(A) − AUC(B)
    se: float
    p_value: float  # two-sided


def paired_auc(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray) -> PairedAuc:
    """DeLong's test per matched pair of seeds, combined: the mean difference, with a variance of
    the pairs' mean DeLong variance (they share the test images, so averaging removes none of it)
    plus the spread of the differences over seeds. With one seed a side: DeLong's test itself."""
    pairs = [delong.compare(labels, a, b) for a, b in zip(np.atleast_2d(probs_a), np.atleast_2d(probs_b))]
    differences = np.array([p.difference for p in pairs])
    variance = float(np.mean([p.se ** 2 for p in pairs]))
    if len(pairs) > 1:
        variance += float(differences.var(ddof=1)) / len(pairs)
    diff, se = float(differences.mean()), math.sqrt(variance)
    p = (1.0 if diff == 0 else 0.0) if se == 0 else float(2 * stats.norm.sf(abs(diff) / se))
    return PairedAuc(diff, se, p)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p for one model per side (the sign test on their disagreements)."""
    return sign_test(np.asarray(correct_a, dtype=float) - np.asarray(correct_b, dtype=float))


@dataclass(frozen=True)
class BeatProbability:
    p: float  # P(a random seed of A scores above a random seed of B), ties count one half
    low: float
    high: float


def beat_probability(a, b, n_resamples: int = 2000, seed: int = 0) -> BeatProbability | None:
    """P(A > B) over seeds with a percentile bootstrap interval (seeds of each side resampled)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None

    def estimate(x, y):
        return ((x[..., :, None] > y[..., None, :]) + 0.5 * (x[..., :, None] == y[..., None, :])).mean(axis=(-2, -1))

    rng = np.random.default_rng(seed)
    draws = estimate(rng.choice(a, (n_resamples, len(a))), rng.choice(b, (n_resamples, len(b))))
    low, high = np.quantile(draws, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return BeatProbability(float(estimate(a, b)), float(low), float(high))


def detectable_difference(se: float) -> float:
    """The smallest true difference found with 80% power by a two-sided 5% test whose standard error is ``se``."""
    return (Z + float(stats.norm.ppf(POWER))) * se


# ---------------------------------------------------------------------- run against baseline


def mann_whitney_worse(baseline, current, higher_is_better: bool) -> float | None:
    """One-sided Mann–Whitney p that ``current`` is worse than ``baseline``; None without samples."""
    baseline, current = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    if len(baseline) == 0 or len(current) == 0:
        return None
    alternative = "less" if higher_is_better else "greater"
    return float(stats.mannwhitneyu(current, baseline, alternative=alternative).pvalue)


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
