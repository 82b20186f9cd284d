"""Operating points and calibration, from the stored per-image probabilities (no retraining).

A reviewer of a medical classifier asks how the decision threshold was chosen, what sensitivity
comes at a clinically useful specificity, and whether the probabilities mean what they say.
Every threshold here is chosen on the validation split and frozen for the test split, per seed:
choosing it on the test images would report the best case, not what a user gets.

- the homework's rule, P(pneumonia) ≥ 0.5, and Youden's J on validation (max sensitivity +
  specificity − 1), or, where a case (or its suite's defaults) declares ``target_sensitivity``, the
  highest validation threshold that reaches it;
- sensitivity at 90% and 95% specificity: the lowest validation threshold whose validation
  specificity reaches the target, applied to the test images (their specificity is reported too);
- calibration: Brier score (scikit-learn's ``brier_score_loss``), expected calibration error over
  10 equal-width bins, and the reliability curve (``calibration_curve``) of the pooled seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_curve

from xraybench.stats.intervals import Z
from xraybench.stats.paired import SeedScores

SPECIFICITY_TARGETS = (0.90, 0.95)
CALIBRATION_BINS = 10
GRID = np.linspace(0.0, 1.0, 101)  # common abscissa for the mean curve over seeds


def youden_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The probability threshold maximising sensitivity + specificity − 1 (the first, i.e. highest, on ties)."""
    fpr, tpr, thresholds = roc_curve(labels, probs)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))  # roc_curve's first threshold is +inf: predict nothing positive


def threshold_for_specificity(labels: np.ndarray, probs: np.ndarray, target: float) -> float:
    """The lowest threshold whose specificity on (labels, probs) is at least ``target``.

    Specificity at t is the share of normal images with P < t, so t lies just above the k-th smallest
    normal probability, k = ⌈target · n⌉."""
    normal = np.sort(probs[labels == 0])
    k = int(np.ceil(target * len(normal) - 1e-9))
    return float(np.nextafter(normal[k - 1], np.inf)) if k > 0 else 0.0


def threshold_for_sensitivity(labels: np.ndarray, probs: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity on (labels, probs) is at least ``target``: the k-th largest
    pneumonia probability, k = ⌈target · n⌉ (a case's declared ``target_sensitivity``)."""
    pneumonia = np.sort(probs[labels == 1])[::-1]
    k = max(1, int(np.ceil(target * len(pneumonia) - 1e-9)))
    return float(pneumonia[k - 1])


def rates(labels: np.ndarray, probs: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """(accuracy, sensitivity, specificity, precision) at ``threshold``; both classes must be present."""
    predicted = probs >= threshold
    positive = labels == 1
    precision = float(positive[predicted].mean()) if predicted.any() else 1.0  # no positive call: no false one
    return (float((predicted == positive).mean()), float(predicted[positive].mean()),
            float((~predicted[~positive]).mean()), precision)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Σ over equal-width bins of (share of images in the bin) × |observed pneumonia rate − mean P(pneumonia)|."""
    which = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(labels[members].mean() - probs[members].mean())
    return float(total)


@dataclass
class SeedPoint:
    """One seed: thresholds from validation, what they give on test, calibration, curves."""

    threshold: float  # chosen on validation: Youden's J, or the case's target sensitivity
    acc_half: float
    acc_at_threshold: float
    sensitivity_at_threshold: float
    specificity_at_threshold: float
    precision_at_threshold: float
    at_specificity: dict[float, tuple[float, float]]  # target → (test sensitivity, test specificity)
    brier: float
    ece: float
    roc: np.ndarray  # TPR on GRID of FPR
    precision: np.ndarray  # interpolated precision on GRID of recall


def seed_point(val_labels, val_probs, test_labels, test_probs, target_sensitivity: float = 0.0) -> SeedPoint:
    threshold = threshold_for_sensitivity(val_labels, val_probs, target_sensitivity) if target_sensitivity \
        else youden_threshold(val_labels, val_probs)
    at_threshold = rates(test_labels, test_probs, threshold)
    at_spec = {}
    for target in SPECIFICITY_TARGETS:
        _, sens, spec, _ = rates(test_labels, test_probs, threshold_for_specificity(val_labels, val_probs, target))
        at_spec[target] = (sens, spec)
    fpr, tpr, _ = roc_curve(test_labels, test_probs)
    precision, recall, _ = precision_recall_curve(test_labels, test_probs)
    # Interpolated precision: the best precision at this recall or more (a step curve, never rising).
    interpolated = np.array([precision[recall >= r].max() for r in GRID])
    return SeedPoint(threshold, rates(test_labels, test_probs, 0.5)[0], *at_threshold, at_spec,
                     float(brier_score_loss(test_labels, test_probs)),
                     expected_calibration_error(test_labels, test_probs),
                     np.interp(GRID, fpr, tpr), interpolated)


@dataclass
class CaseOperatingPoints:
    case: str
    rule: str  # how the threshold was chosen on validation
    seeds: list[SeedPoint]
    test_labels: np.ndarray
    test_probs: np.ndarray  # [seeds, images]
    positives: int
    negatives: int

    def values(self, value) -> list[float]:
        return [value(s) for s in self.seeds]

    def brier_interval(self) -> list[float]:
        """95% interval of the Brier score over the test images (each image's squared error averaged over seeds)."""
        errors = ((self.test_probs - self.test_labels) ** 2).mean(axis=0)
        half = Z * errors.std(ddof=1) / np.sqrt(len(errors))
        return [max(0.0, errors.mean() - half), errors.mean() + half]

    def ece_interval(self, resamples: int = 200) -> list[float]:
        """95% percentile-bootstrap interval of the mean ECE over seeds, resampling test images (fixed seed)."""
        rng = np.random.default_rng(0)
        n = len(self.test_labels)
        draws = []
        for _ in range(resamples):
            index = rng.integers(0, n, n)
            draws.append(np.mean([expected_calibration_error(self.test_labels[index], probs[index])
                                  for probs in self.test_probs]))
        return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]

    def reliability(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean predicted P(pneumonia), observed pneumonia rate) per non-empty bin, seeds pooled."""
        labels = np.tile(self.test_labels, len(self.test_probs))
        observed, predicted = calibration_curve(labels, self.test_probs.ravel(), n_bins=CALIBRATION_BINS)
        return predicted, observed


def case_operating_points(case: str, val: SeedScores, test: SeedScores,
                          target_sensitivity: float = 0.0) -> CaseOperatingPoints | None:
    """Per seed of ``case``, from its validation and test scores; None with one class in a split."""
    if len(np.unique(val.labels)) < 2 or len(np.unique(test.labels)) < 2:
        return None
    seeds = [seed_point(val.labels, v, test.labels, t, target_sensitivity) for v, t in zip(val.probs, test.probs)]
    rule = f"sensitivity ≥ {100 * target_sensitivity:g}%" if target_sensitivity else "Youden"
    return CaseOperatingPoints(case, rule, seeds, test.labels, test.probs, int(test.labels.sum()),
                               int((test.labels == 0).sum()))
