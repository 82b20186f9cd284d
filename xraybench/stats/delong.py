"""DeLong's variance of the ROC AUC, and his test for two correlated AUCs.

No maintained library in the stack does this, so here it is, in the fast O(n log n) form of
Sun & Xu (2014): the structural components of DeLong, DeLong & Clarke-Pearson (1988) come
from mid-ranks of the positives, the negatives and all scores together, instead of from the
m·n pairwise comparisons. tests/test_stats.py checks it against the pairwise definition and
against a bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AucEstimate:
    auc: float
    variance: float

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Normal-approximation interval, clipped to [0, 1]."""
        half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(self.variance, 0.0))
        return max(0.0, self.auc - half), min(1.0, self.auc + half)


def structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC per score row and DeLong's components V10 (per positive) and V01 (per negative).

    ``scores`` is [k, n] (k classifiers on the same n images) or [n]; label 1 is positive.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(labels.sum()), int((~labels).sum())
    if m == 0 or n == 0:
        raise ValueError("the AUC needs at least one positive and one negative image")
    pos, neg = scores[:, labels], scores[:, ~labels]
    rank_all = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # mid-ranks: ties count one half
    rank_pos, rank_neg = stats.rankdata(pos, axis=1), stats.rankdata(neg, axis=1)
    auc = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (rank_all[:, :m] - rank_pos) / n  # share of negatives each positive outranks
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m  # share of positives that outrank each negative
    return auc, v10, v01


def covariance(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs [k] and their DeLong covariance matrix [k, k]."""
    auc, v10, v01 = structural_components(labels, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(auc), len(auc)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(auc), len(auc)))
    return auc, s10 / m + s01 / n


def auc_with_variance(labels: np.ndarray, scores: np.ndarray) -> AucEstimate:
    auc, cov = covariance(labels, np.asarray(scores)[None, :])
    return AucEstimate(float(auc[0]), float(cov[0, 0]))


@dataclass(frozen=True)
class AucComparison:
    auc_a: float
    auc_b: float
    difference: float  # a − b
    se: float
    p_value: float  # two-sided, H0: equal AUCs


def compare_aucs(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> AucComparison:
    """DeLong's test of two AUCs measured on the same images."""
    auc, cov = covariance(labels, np.stack([scores_a, scores_b]))
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = float(auc[0] - auc[1])
    se = math.sqrt(max(variance, 0.0))
    if se == 0.0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(2 * stats.norm.sf(abs(diff) / se))
    return AucComparison(float(auc[0]), float(auc[1]), diff, se, p)
