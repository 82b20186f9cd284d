"""Two sets of trained models on the same test images — these networks, not their settings — and the
one rule that pairs seeds.

The tests here treat the trained models as fixed: the exact sign test on per-image correctness pooled
over seeds (exact McNemar with one seed each; Dietterich 1998), DeLong per pair of seeds, Wilcoxon on
per-image loss. They answer "do these networks differ on these images", which is what the regression
check asks of a case against its own baseline on the seeds both ran, and what the report shows beside
its verdicts as a statement about these models only. Whether setting A trains better networks than
setting B is ``procedure``'s question. P(A beats B) over seeds (Bouthillier et al. 2021) needs 10 seeds
a side to say anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xraybench.stats import decision, delong
from xraybench.stats.intervals import CONFIDENCE, Z

ALTERNATIVES = ("two-sided", "less", "greater")  # "less": A's metric is below B's


@dataclass(frozen=True)
class SeedScores:
    """One case on one split: its seeds, the images (ids and labels, in one order) and P(pneumonia) [seeds, images]."""

    seeds: list
    ids: list[str]
    labels: np.ndarray
    probs: np.ndarray

    def correct(self) -> np.ndarray:
        """[seeds, images]: True where a seed's model labels the image right (``decision.says_pneumonia``)."""
        return decision.says_pneumonia(self.probs) == self.labels

    def subset(self, index: list[int]) -> SeedScores:
        """The seeds at ``index`` (positions, as ``pair_seeds`` gives them)."""
        return SeedScores([self.seeds[i] for i in index], self.ids, self.labels, self.probs[index])


def pair_seeds(seeds_a: list, seeds_b: list, *, shared_only: bool = False) -> tuple[list[int], list[int]]:
    """Positions of the seeds to pair, as many on each side: the seeds both ran first, in A's order; then,
    unless ``shared_only``, the others in order, up to the smaller side's count.

    Paired tests pool seeds per image; with unequal counts the side with more seeds has smoother
    per-image scores (and a seed-mean ensemble a higher AUC), which biases the test. ``shared_only``
    is for one case against itself (a run against its baseline): two different seeds of one case
    differ on many images, and a paired test would call that a change."""
    common = [s for s in seeds_a if s in seeds_b]
    if shared_only:
        return [seeds_a.index(s) for s in common], [seeds_b.index(s) for s in common]
    k = min(len(seeds_a), len(seeds_b))
    order_a = common + [s for s in seeds_a if s not in common]
    order_b = common + [s for s in seeds_b if s not in common]
    return [seeds_a.index(s) for s in order_a[:k]], [seeds_b.index(s) for s in order_b[:k]]


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
    p_value: float  # exact sign test (exact McNemar with one seed per side), two-sided unless asked otherwise
    seeds_a: int
    seeds_b: int
    images: int

    @property
    def significant(self) -> bool:
        """Both the test and the interval say the difference is not zero."""
        return decision.significant(self.p_value) and (self.low > 0 or self.high < 0)


def paired_accuracy(correct_a: np.ndarray, correct_b: np.ndarray, alternative: str = "two-sided") -> PairedAccuracy:
    """``correct_a`` [k, n] and ``correct_b`` [k, n] (as many seeds a side: ``pair_seeds``): 1 where
    a seed's model got the image right."""
    correct_a, correct_b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
    if len(correct_a) != len(correct_b):
        raise ValueError("pair as many seeds on each side (stats.pair_seeds)")
    per_image = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    n = per_image.shape[0]
    test_variance = per_image.var(ddof=1) / n if n > 1 else 0.0
    seed_variance = sum(
        acc.var(ddof=1) / len(acc) for acc in (correct_a.mean(axis=1), correct_b.mean(axis=1)) if len(acc) > 1
    )
    se = math.sqrt(test_variance + seed_variance)
    diff = float(per_image.mean())
    return PairedAccuracy(
        diff, diff - Z * se, diff + Z * se, se, sign_test(per_image, alternative), len(correct_a), len(correct_b), n
    )


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p for one model per side (the sign test on their disagreements)."""
    return sign_test(np.asarray(correct_a, dtype=float) - np.asarray(correct_b, dtype=float))


@dataclass(frozen=True)
class PairedAuc:
    difference: float  # mean over matched seed pairs of AUC(A) − AUC(B)
    se: float
    p_value: float  # two-sided unless asked otherwise


def paired_auc(
    labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, alternative: str = "two-sided"
) -> PairedAuc:
    """DeLong's test per matched pair of seeds, combined: the mean difference, with a variance of
    the pairs' mean DeLong variance (they share the test images, so averaging removes none of it)
    plus the spread of the differences over seeds. With one seed a side: DeLong's test itself."""
    pairs = [delong.compare_aucs(labels, a, b) for a, b in zip(np.atleast_2d(probs_a), np.atleast_2d(probs_b))]
    differences = np.array([p.difference for p in pairs])
    variance = float(np.mean([p.se**2 for p in pairs]))
    if len(pairs) > 1:
        variance += float(differences.var(ddof=1)) / len(pairs)
    diff, se = float(differences.mean()), math.sqrt(variance)
    return PairedAuc(diff, se, _normal_p(diff, se, alternative))


def _normal_p(diff: float, se: float, alternative: str) -> float:
    """p of a normal test of ``diff``; with no spread, 0 where the difference lies in the alternative's
    direction and 1 where it does not (or is zero)."""
    if se == 0:
        towards = {"two-sided": diff != 0, "less": diff < 0, "greater": diff > 0}[alternative]
        return 0.0 if towards else 1.0
    z = diff / se
    if alternative == "less":
        return float(stats.norm.cdf(z))
    if alternative == "greater":
        return float(stats.norm.sf(z))
    return float(2 * stats.norm.sf(abs(z)))


def paired_loss(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, alternative: str = "two-sided") -> float:
    """Wilcoxon's signed-rank p on the per-image cross-entropy of A minus B, seeds pooled per image
    (probabilities clipped to [1e-4, 1 − 1e-4], as stored); 1.0 when every image's loss is equal."""

    def loss(probs):
        p = np.clip(probs, 1e-4, 1 - 1e-4)
        return -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(axis=0)

    differences = loss(np.atleast_2d(probs_a)) - loss(np.atleast_2d(probs_b))
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences, alternative=alternative).pvalue)


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
