"""Test-set metrics from scikit-learn (accuracy, ROC-AUC, sensitivity, specificity, F1, confusion),
each with its 95% interval from xraybench.stats."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from xraybench import stats
from xraybench.stats.decision import says_pneumonia


def auc(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """ROC-AUC of P(pneumonia); None with one class (a validation split can lack one)."""
    labels = np.asarray(labels).astype(int)
    return float(skm.roc_auc_score(labels, probs)) if len(np.unique(labels)) == 2 else None


def binary_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Metrics for label 1 = pneumonia (the positive class) under the decision rule (``says_pneumonia``)."""
    labels = np.asarray(labels).astype(int)
    preds = says_pneumonia(np.asarray(probs)).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, preds, labels=[0, 1]).ravel().tolist()
    both_classes = len(np.unique(labels)) == 2
    return {
        "acc": float(skm.accuracy_score(labels, preds)),
        "auc": float(skm.roc_auc_score(labels, probs)) if both_classes else None,
        "sensitivity": float(skm.recall_score(labels, preds, pos_label=1, zero_division=0)),
        "specificity": float(skm.recall_score(labels, preds, pos_label=0, zero_division=0)),
        "f1": float(skm.f1_score(labels, preds, pos_label=1, zero_division=0)),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "intervals": stats.test_intervals(labels, probs),
    }
