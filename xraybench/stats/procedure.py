"""Two training procedures on the same test images: the tests behind every "A beats B" the report states.

Does setting A train better networks than setting B? A − B in a metric measured per seed (accuracy;
sensitivity and specificity, which are accuracies on one class's images; AUC) gets a standard error
that counts seed-to-seed variation (each side's per-seed values, k − 1 degrees of freedom) and the
sampling of the test images (per-image differences), referred to a t distribution whose degrees of freedom
are Welch–Satterthwaite's on the parts read at their upper 85% bounds (``intervals.welch_t``: it holds the level
when one side's seeds scatter); the interval and the p come from that one reference. ``Difference.verdict``
turns it into one of four outcomes (``outcomes``). A verdict needs ``MIN_SEEDS`` seeds a side.
``benchmarks/stat_calibration.py`` shows by simulation (image difficulty, seed effects, noise, unequal spreads,
heavy tails, collapsed seeds) that these hold their level and coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xraybench.stats import decision, delong, outcomes
from xraybench.stats.intervals import welch_t
from xraybench.stats.paired import (
    BeatProbability,
    SeedScores,
    beat_probability,
    mcnemar_exact,
    pair_seeds,
    paired_accuracy,
)


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
        """Both sides have the seeds a verdict needs (``outcomes.MIN_SEEDS``)."""
        return min(self.seeds_a, self.seeds_b) >= outcomes.MIN_SEEDS

    @property
    def significant(self) -> bool:
        """The t test rejects at α — equivalently, the 95% interval excludes zero."""
        return decision.significant(self.p_value, self.testable)

    def verdict(
        self,
        margin: float = 0.0,
        level: float = decision.ALPHA,
        equivalence_level: float | None = None,
        higher_is_better: bool = True,
    ) -> outcomes.Verdict:
        """One of the four outcomes at a look's nominal levels (α, α for a fixed number of seeds)."""
        return outcomes.decide(
            self.difference,
            self.se,
            self.df,
            (self.seeds_a, self.seeds_b),
            margin,
            level,
            equivalence_level,
            higher_is_better,
        )


def _difference(
    seed_a: np.ndarray, seed_b: np.ndarray, image_variance: np.ndarray, image_df: float
) -> dict[str, np.ndarray]:
    """Vectorised over leading axes: ``seed_a`` [..., k_a] and ``seed_b`` [..., k_b] per-seed values,
    ``image_variance`` [...] the variance of the difference from sampling the test images."""
    k_a, k_b = seed_a.shape[-1], seed_b.shape[-1]
    diff = seed_a.mean(axis=-1) - seed_b.mean(axis=-1)
    if k_a < 2 or k_b < 2:
        nan = np.full_like(diff, np.nan)
        return {"difference": diff, "se": nan, "df": nan, "low": nan, "high": nan, "p_value": np.ones_like(diff)}
    parts = [
        (seed_a.var(axis=-1, ddof=1) / k_a, k_a - 1),
        (seed_b.var(axis=-1, ddof=1) / k_b, k_b - 1),
        (image_variance, image_df),
    ]
    return {"difference": diff, **welch_t(diff, parts)}


def _as_difference(parts: dict, k_a: int, k_b: int, images: int) -> Difference:
    return Difference(**{k: float(v) for k, v in parts.items()}, seeds_a=k_a, seeds_b=k_b, images=images)


def seed_difference(values_a, values_b) -> Difference:
    """A − B in a value measured once per seed and not on test images (the train–validation gap): the seeds'
    spread on each side is the whole standard error."""
    values_a, values_b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    return _as_difference(_difference(values_a, values_b, np.float64(0.0), np.inf), len(values_a), len(values_b), 0)


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
    return _difference(auc_a.reshape(*batch, k_a), auc_b.reshape(*batch, k_b), image_variance, m + negatives - 2)


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
class ProcedureComparison:
    """Case A against case B on their shared test images."""

    accuracy: Difference  # procedure-level: the verdict
    auc: Difference | None  # None when the test images hold one class
    sensitivity: Difference | None  # accuracy on the pneumonia images (None with one class): interval, no verdict
    specificity: Difference | None  # accuracy on the normal images
    models_p: float  # exact sign test on per-image correctness, as many seeds a side: these trained models only
    mcnemar_per_seed: dict  # seed both ran → exact McNemar p (these two trained models)
    beat: BeatProbability | None  # over all seeds, test accuracy; only with BEAT_MIN_SEEDS a side


def compare_procedures(a: SeedScores, b: SeedScores, accuracy_a, accuracy_b) -> ProcedureComparison | None:
    """A against B; None unless both scored the same images. ``accuracy_a``, ``accuracy_b``: every seed's
    test accuracy, for P(A beats B)."""
    if a.ids != b.ids:
        return None
    labels = a.labels
    both_classes = 0 < labels.sum() < len(labels)
    index_a, index_b = pair_seeds(a.seeds, b.seeds)
    paired_a, paired_b = a.subset(index_a), b.subset(index_b)
    correct_a, correct_b = paired_a.correct(), paired_b.correct()
    mcnemar = {
        sa: mcnemar_exact(ca, cb)
        for sa, sb, ca, cb in zip(paired_a.seeds, paired_b.seeds, correct_a, correct_b)
        if sa == sb
    }
    enough = min(len(accuracy_a), len(accuracy_b)) >= BEAT_MIN_SEEDS
    by_class = [
        accuracy_difference(a.correct()[:, labels == c], b.correct()[:, labels == c]) if both_classes else None
        for c in (1, 0)
    ]
    return ProcedureComparison(
        accuracy_difference(a.correct(), b.correct()),
        auc_difference(labels, a.probs, b.probs) if both_classes else None,
        *by_class,
        paired_accuracy(correct_a, correct_b).p_value,
        mcnemar,
        beat_probability(accuracy_a, accuracy_b) if enough else None,
    )
