"""Two training procedures on the same test images: the tests behind every "A beats B" the report
states, and the one rule that pairs seeds.

The verdict is procedure-level (``accuracy_difference``, ``auc_difference``): does setting A train
better networks than setting B? A − B in a metric measured per seed gets a standard error that
counts seed-to-seed variation (each side's per-seed values, k − 1 degrees of freedom) and the
sampling of the test images (per-image differences), referred to a t distribution with
Welch–Satterthwaite degrees of freedom; the interval and the p come from that one reference. A
comparison claims at most two things (accuracy, AUC), held together at α by Holm's adjustment.
With one seed a side the seed variation is unknown and nothing is tested. ``benchmarks/stat_calibration.py`` shows by simulation (image
difficulty, seed effects, noise) that these hold their level and coverage.

The tests that treat the trained models as fixed stay, labelled as statements about these trained
models only: the exact sign test on per-image correctness pooled over seeds (exact McNemar with one
seed each; Dietterich 1998), DeLong per pair of seeds, Wilcoxon on per-image loss — the regression
check's paired tests of a case against its own baseline on the seeds both ran. P(A beats B) over
seeds (Bouthillier et al. 2021) needs 10 seeds a side to say anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xraybench.stats import delong
from xraybench.stats.intervals import ALPHA, CONFIDENCE, Z

ALTERNATIVES = ("two-sided", "less", "greater")  # "less": A's metric is below B's


@dataclass(frozen=True)
class SeedScores:
    """One case on one split: its seeds, the images (ids and labels, in one order) and P(pneumonia) [seeds, images]."""

    seeds: list
    ids: list[str]
    labels: np.ndarray
    probs: np.ndarray

    def correct(self, threshold: float = 0.5) -> np.ndarray:
        """[seeds, images]: True where a seed's model labels the image right at ``threshold``."""
        return (self.probs >= threshold) == self.labels

    def subset(self, index: list[int]) -> "SeedScores":
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
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)


def paired_accuracy(correct_a: np.ndarray, correct_b: np.ndarray, alternative: str = "two-sided") -> PairedAccuracy:
    """``correct_a`` [k, n] and ``correct_b`` [k, n] (as many seeds a side: ``pair_seeds``): 1 where
    a seed's model got the image right."""
    correct_a, correct_b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
    if len(correct_a) != len(correct_b):
        raise ValueError("pair as many seeds on each side (stats.pair_seeds)")
    per_image = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    n = per_image.shape[0]
    test_variance = per_image.var(ddof=1) / n if n > 1 else 0.0
    seed_variance = sum(acc.var(ddof=1) / len(acc) for acc in (correct_a.mean(axis=1), correct_b.mean(axis=1))
                        if len(acc) > 1)
    se = math.sqrt(test_variance + seed_variance)
    diff = float(per_image.mean())
    return PairedAccuracy(diff, diff - Z * se, diff + Z * se, se, sign_test(per_image, alternative), len(correct_a),
                          len(correct_b), n)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact McNemar p for one model per side (the sign test on their disagreements)."""
    return sign_test(np.asarray(correct_a, dtype=float) - np.asarray(correct_b, dtype=float))


@dataclass(frozen=True)
class PairedAuc:
    difference: float  # mean over matched seed pairs of AUC(A) − AUC(B)
    se: float
    p_value: float  # two-sided unless asked otherwise


def paired_auc(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray,
               alternative: str = "two-sided") -> PairedAuc:
    """DeLong's test per matched pair of seeds, combined: the mean difference, with a variance of
    the pairs' mean DeLong variance (they share the test images, so averaging removes none of it)
    plus the spread of the differences over seeds. With one seed a side: DeLong's test itself."""
    pairs = [delong.compare(labels, a, b) for a, b in zip(np.atleast_2d(probs_a), np.atleast_2d(probs_b))]
    differences = np.array([p.difference for p in pairs])
    variance = float(np.mean([p.se ** 2 for p in pairs]))
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


@dataclass(frozen=True)
class Difference:
    """A − B in a metric of two training procedures, measured per seed on the same test images."""

    difference: float  # mean over A's seeds minus mean over B's seeds
    se: float  # seeds' spread on each side and test-image sampling
    df: float  # Welch–Satterthwaite
    low: float  # 95% t interval
    high: float
    p_value: float  # two-sided, same t reference; 1.0 when untestable
    seeds_a: int
    seeds_b: int
    images: int

    @property
    def testable(self) -> bool:
        """Both sides have the 2 seeds a seed variance needs."""
        return self.seeds_a >= 2 and self.seeds_b >= 2

    @property
    def significant(self) -> bool:
        """The t test rejects at α — equivalently, the 95% interval excludes zero."""
        return self.testable and self.p_value < ALPHA


def _difference(seed_a: np.ndarray, seed_b: np.ndarray, image_variance: np.ndarray,
                image_df: float) -> dict[str, np.ndarray]:
    """Vectorised over leading axes: ``seed_a`` [..., k_a] and ``seed_b`` [..., k_b] per-seed values,
    ``image_variance`` [...] the variance of the difference from sampling the test images."""
    k_a, k_b = seed_a.shape[-1], seed_b.shape[-1]
    diff = seed_a.mean(axis=-1) - seed_b.mean(axis=-1)
    if k_a < 2 or k_b < 2:
        nan = np.full_like(diff, np.nan)
        return {"difference": diff, "se": nan, "df": nan, "low": nan, "high": nan, "p_value": np.ones_like(diff)}
    parts = [(seed_a.var(axis=-1, ddof=1) / k_a, k_a - 1), (seed_b.var(axis=-1, ddof=1) / k_b, k_b - 1),
             (image_variance, image_df)]
    variance = sum(v for v, _ in parts)
    denominator = sum(v ** 2 / d for v, d in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, variance ** 2 / denominator, np.inf)  # Welch–Satterthwaite
        se = np.sqrt(variance)
        t = np.where(se > 0, np.abs(diff) / se, np.where(diff == 0, 0.0, np.inf))
    p = 2 * stats.t.sf(t, df)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
    return {"difference": diff, "se": se, "df": df, "low": diff - half, "high": diff + half, "p_value": p}


def _as_difference(parts: dict, k_a: int, k_b: int, images: int) -> Difference:
    return Difference(**{k: float(v) for k, v in parts.items()}, seeds_a=k_a, seeds_b=k_b, images=images)


def accuracy_parts(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, np.ndarray]:
    """``accuracy_difference``, vectorised over leading axes of [..., k, n] arrays (the calibration
    benchmark runs thousands at once)."""
    correct_a, correct_b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    n = correct_a.shape[-1]
    per_image = correct_a.mean(axis=-2) - correct_b.mean(axis=-2)
    image_variance = per_image.var(axis=-1, ddof=1) / n if n > 1 else np.zeros(per_image.shape[:-1])
    return _difference(correct_a.mean(axis=-1), correct_b.mean(axis=-1), image_variance, n - 1)


def accuracy_difference(correct_a: np.ndarray, correct_b: np.ndarray) -> Difference:
    """A − B in accuracy (or sensitivity, specificity: pass a class's images), ``correct_a`` [k_a, n]
    and ``correct_b`` [k_b, n] (every seed of each side; the counts may differ): 1 where a seed's model
    got the image right. The image part is the variance of the per-image differences of the seed-pooled
    correctness; it also holds the seed × image noise that the seed parts count, so it errs wide."""
    correct_a, correct_b = np.atleast_2d(correct_a), np.atleast_2d(correct_b)
    return _as_difference(accuracy_parts(correct_a, correct_b), len(correct_a), len(correct_b), correct_a.shape[-1])


def auc_parts(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray) -> dict[str, np.ndarray]:
    """``auc_difference``, vectorised over leading axes of [..., k, n] arrays."""
    labels = np.asarray(labels).astype(bool)
    probs_a, probs_b = np.asarray(probs_a, dtype=float), np.asarray(probs_b, dtype=float)
    batch, (k_a, n), k_b = probs_a.shape[:-2], probs_a.shape[-2:], probs_b.shape[-2]
    auc_a, v10_a, v01_a = delong.structural_components(labels, probs_a.reshape(-1, n))
    auc_b, v10_b, v01_b = delong.structural_components(labels, probs_b.reshape(-1, n))
    m, negatives = int(labels.sum()), int((~labels).sum())
    d10 = v10_a.reshape(*batch, k_a, m).mean(axis=-2) - v10_b.reshape(*batch, k_b, m).mean(axis=-2)
    d01 = v01_a.reshape(*batch, k_a, negatives).mean(axis=-2) - v01_b.reshape(*batch, k_b, negatives).mean(axis=-2)
    image_variance = d10.var(axis=-1, ddof=1) / m + d01.var(axis=-1, ddof=1) / negatives
    return _difference(auc_a.reshape(*batch, k_a), auc_b.reshape(*batch, k_b), image_variance,
                       m + negatives - 2)


def auc_difference(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray) -> Difference:
    """A − B in ROC AUC: the mean of each side's per-seed AUCs, the image part from DeLong's structural
    components averaged over each side's seeds (the AUC of a seed-mean ensemble would favour the side
    with more seeds; the mean of per-seed AUCs does not)."""
    probs_a, probs_b = np.atleast_2d(probs_a), np.atleast_2d(probs_b)
    return _as_difference(auc_parts(labels, probs_a, probs_b), len(probs_a), len(probs_b), probs_a.shape[-1])


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: p-values that hold the family-wise error at α when each is compared
    with α (in the order given)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


BEAT_MIN_SEEDS = 10  # below this, P(A beats B) over seeds is 1.00 [1.00, 1.00] or 0.67 [0.00, 1.00]: noise


@dataclass(frozen=True)
class Comparison:
    """Case A against case B on their shared test images."""

    accuracy: Difference  # procedure-level: the verdict
    auc: Difference | None  # None when the test images hold one class
    models_p: float  # exact sign test on per-image correctness, as many seeds a side: these trained models only
    mcnemar_per_seed: dict  # seed both ran → exact McNemar p (these two trained models)
    beat: BeatProbability | None  # over all seeds, test accuracy; only with BEAT_MIN_SEEDS a side

    @property
    def held_p(self) -> tuple[float, float | None]:
        """(accuracy p, AUC p) held together at α by Holm's adjustment: one sentence makes both claims."""
        tested = [self.accuracy.p_value] + ([self.auc.p_value] if self.auc is not None and self.auc.testable else [])
        adjusted = holm(tested)
        return adjusted[0], adjusted[1] if len(adjusted) > 1 else None

    @property
    def direction(self) -> int:
        """+1: A has the higher accuracy, −1: B has, 0: no detectable difference (or not testable)."""
        return _direction(self.accuracy, self.held_p[0])

    @property
    def auc_direction(self) -> int:
        """As ``direction``, for the AUC."""
        return 0 if self.auc is None else _direction(self.auc, self.held_p[1])


def _direction(d: Difference, held_p: float | None) -> int:
    if not d.testable or held_p is None or held_p >= ALPHA:
        return 0
    return 1 if d.difference > 0 else -1


def compare(a: SeedScores, b: SeedScores, accuracy_a, accuracy_b) -> Comparison | None:
    """A against B; None unless both scored the same images. ``accuracy_a``, ``accuracy_b``: every seed's
    test accuracy, for P(A beats B)."""
    if a.ids != b.ids:
        return None
    labels = a.labels
    both_classes = 0 < labels.sum() < len(labels)
    index_a, index_b = pair_seeds(a.seeds, b.seeds)
    paired_a, paired_b = a.subset(index_a), b.subset(index_b)
    correct_a, correct_b = paired_a.correct(), paired_b.correct()
    mcnemar = {sa: mcnemar_exact(ca, cb) for sa, sb, ca, cb in
               zip(paired_a.seeds, paired_b.seeds, correct_a, correct_b) if sa == sb}
    enough = min(len(accuracy_a), len(accuracy_b)) >= BEAT_MIN_SEEDS
    return Comparison(accuracy_difference(a.correct(), b.correct()),
                      auc_difference(labels, a.probs, b.probs) if both_classes else None,
                      paired_accuracy(correct_a, correct_b).p_value, mcnemar,
                      beat_probability(accuracy_a, accuracy_b) if enough else None)
