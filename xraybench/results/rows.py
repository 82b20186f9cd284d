"""A row built, and what a row's predictions say: the row of a case as it starts, the row of a job that died,
per-image probabilities as stored, and whether a seed's model is degenerate."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from xraybench.results.schema import Confusion, Metrics, Row, Run, SplitImages
from xraybench.results.store import now
from xraybench.stats.decision import THRESHOLD, says_pneumonia

if TYPE_CHECKING:
    from xraybench.cases import Case

PROBABILITY_DIGITS = 4  # per-image probabilities are stored rounded to 1e-4
PREDICTED_SPLITS = ("val", "test")
DEGENERATE_SHARE = 0.99  # a seed predicting one class for at least this share of the test images
DEGENERATE_AUC = 0.55  # or ranking the test images no better than this


def case_row(case: Case) -> Row:
    """The part of a row that says which case and configuration it is; status ok until training says otherwise."""
    return Row(
        id=case.id,
        suite=case.suite,
        task=case.task,
        title=case.title,
        seed=case.train.seed,
        description=case.description,
        compare=list(case.compare),
        mode=case.mode,
        sweep=case.sweep,
        sweep_params=case.sweep_params,
        tolerances=case.tolerances,
        target_sensitivity=case.target_sensitivity,
        hash=case.config_hash,
        config=case.config(),
        status="ok",
        reason=None,
        started=now(),
        history=[],
        metrics=Metrics(),
        **({"margin": case.margin} if case.margin else {}),
        **({"requires_data": case.requires_data} if case.requires_data else {}),
        **({"published": dataclasses.asdict(case.published)} if case.published.source else {}),
    )


def crash_row(case: Case, executor: str, reason: str, worker: dict) -> Row:
    """The row of a job whose process died (or could not run): failed, with the reason."""
    row = case_row(case)
    row.status, row.reason, row.finished = "failed", reason, now()
    row.worker = {"executor": executor, **worker}
    return row


def stored_probability(p: float) -> float:
    """P(pneumonia) rounded to 1e-4, never across the decision rule (0.50004 stays above 0.5), so that labels
    recomputed from stored predictions equal the ones the metrics were computed from."""
    rounded = round(float(p), PROBABILITY_DIGITS)
    if says_pneumonia(p) != says_pneumonia(rounded):
        return THRESHOLD + 10**-PROBABILITY_DIGITS if says_pneumonia(p) else THRESHOLD
    return rounded


def image_table(data) -> dict[str, SplitImages]:
    """Ids and labels of the predicted splits of a Dataset, as results.json stores them."""
    return {
        split: SplitImages(ids=list(data.splits[split].ids), labels=data.splits[split].labels.tolist())
        for split in PREDICTED_SPLITS
    }


def predictions(run: Run, row: Row, split: str = "test") -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(image ids, labels, P(pneumonia)) of an ok row on ``split``; None for rows without them (schema 1)."""
    probs = (row.predictions or {}).get(split)
    images = (row.images or {}).get(split) or run.images(split)
    if probs is None or images is None or len(images.ids) != len(probs) or len(images.labels) != len(probs):
        return None
    return list(images.ids), np.asarray(images.labels, dtype=int), np.asarray(probs, dtype=float)


def confusion(labels: np.ndarray, probs: np.ndarray) -> Confusion:
    """The confusion matrix at the decision threshold."""
    said = says_pneumonia(probs)
    return Confusion(
        tp=int((said & (labels == 1)).sum()),
        fp=int((said & (labels == 0)).sum()),
        tn=int((~said & (labels == 0)).sum()),
        fn=int((~said & (labels == 1)).sum()),
    )


@dataclasses.dataclass(frozen=True)
class Degenerate:
    """Why a seed's model is no better than predicting one class for every image, however its accuracy reads (the
    majority class alone scores 62.5 % on the 624-image test set)."""

    called: str | None  # the class it predicts for ≥ 99 % of the test images, or None
    share: float  # the share of test images it predicts as that class (or as its majority prediction)
    auc: float | None  # its test AUC where ≤ 0.55, else None

    def __str__(self) -> str:
        said = [f"predicts {self.called} for {100 * self.share:.0f} % of the test images"] if self.called else []
        return "; ".join(said + ([f"test AUC {self.auc:.3f} ≤ {DEGENERATE_AUC}"] if self.auc is not None else []))


def degeneracy(metrics: Metrics) -> Degenerate | None:
    """A seed's degeneracy from its test confusion matrix and AUC; None for a model that is not degenerate."""
    counts, auc = metrics.test_confusion or Confusion(), metrics.test_auc
    n = counts.tp + counts.fp + counts.tn + counts.fn
    pneumonia = (counts.tp + counts.fp) / n if n else 0.5
    share, label = max((pneumonia, "PNEUMONIA"), (1 - pneumonia, "NORMAL"))
    called = label if n and share >= DEGENERATE_SHARE else None
    low = auc if auc is not None and auc <= DEGENERATE_AUC else None
    return Degenerate(called, share, low) if called or low is not None else None


def row_degeneracy(run: Run, row: Row) -> Degenerate | None:
    """``degeneracy`` of an ok row of a results file or baseline; rows stored without their confusion matrix (older
    baselines) have it recounted from their stored test predictions."""
    metrics = row.metrics
    found = None if metrics.test_confusion else predictions(run, row)
    if found:
        metrics = metrics.model_copy(update={"test_confusion": confusion(found[1], found[2])})
    return degeneracy(metrics)
