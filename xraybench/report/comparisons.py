"""A case over its seeds, and two cases against each other: what the report and the findings may state.

Reads results rows only. A case's seeds are summarised per metric (mean ± sd, min–max, 95%
interval of the mean). Two cases are compared on the test images they share: accuracy by the
exact sign test on per-image correctness pooled over seeds (exact McNemar with one seed each),
AUC by DeLong's test per pair of seeds, combined, both on as many seeds a side (the seeds both
ran first), and over all seeds by P(A beats B). A comparison names a winner only when its test rejects at α = 0.05 and the
difference's 95% interval excludes zero; otherwise it says "no detectable difference".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xraybench import results, stats
from xraybench.report.formatting import p_is, pp as points


@dataclass
class CaseResult:
    """Every row of one case id (one per seed) and the results file or baseline they belong to."""

    id: str
    rows: list[dict]
    doc: dict = field(repr=False)

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def first(self) -> dict:
        return self.rows[0]

    @property
    def seeds(self) -> int:
        return len(self.ok)

    def values(self, metric: str) -> list[float]:
        return [r["metrics"][metric] for r in self.ok if r["metrics"].get(metric) is not None]

    def summary(self, metric: str) -> stats.SeedSummary | None:
        return stats.across_seeds(self.values(metric))

    def epoch_times(self) -> list[float]:
        """Every seed's per-epoch times (from its history, or as a baseline stores them)."""
        return [t for r in self.ok for t in r.get("epoch_times")
                or [h["epoch_time_s"] for h in r.get("history", []) if "epoch_time_s" in h]]

    def predictions(self, split: str = "test") -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """(ids, labels, probs [seeds, images]) when every ok seed stored predictions on the same images."""
        found = [results.predictions(self.doc, r, split) for r in self.ok]
        if not found or any(f is None for f in found) or any(f[0] != found[0][0] for f in found):
            return None
        return found[0][0], found[0][1], np.stack([f[2] for f in found])


def by_case(doc: dict, rows: list[dict] | None = None) -> dict[str, CaseResult]:
    """The rows grouped by case id, in order of first appearance."""
    grouped: dict[str, list[dict]] = {}
    for row in doc["cases"] if rows is None else rows:
        grouped.setdefault(row["id"], []).append(row)
    return {case_id: CaseResult(case_id, members, doc) for case_id, members in grouped.items()}


@dataclass
class Comparison:
    a: str
    b: str
    accuracy: stats.PairedAccuracy  # on as many seeds a side (stats.matched_seeds)
    auc: stats.PairedAuc | None
    mcnemar_per_seed: dict[int, float]  # seeds both cases ran
    beat: stats.BeatProbability | None  # over all seeds, test accuracy

    @property
    def winner(self) -> str | None:
        if not self.accuracy.significant:
            return None
        return self.a if self.accuracy.difference > 0 else self.b

    def sentence(self) -> str:
        acc = self.accuracy
        delta = f"Δ = {points(acc.difference)} [{points(acc.low)}, {points(acc.high)}], {p_is(acc.p_value)}"
        seeds = f"{acc.seeds_a} seed{'s' if acc.seeds_a > 1 else ''} a side"
        if self.winner:
            loser = self.b if self.winner == self.a else self.a
            text = f"{self.winner} has a higher test accuracy than {loser} ({delta}; {seeds})."
        else:
            text = f"{self.a} vs {self.b}: no detectable difference in test accuracy ({delta}; {seeds})."
        if self.auc is not None:
            if self.auc.p_value < stats.ALPHA:
                higher = self.a if self.auc.difference > 0 else self.b
                text += f" AUC is higher for {higher} (DeLong {p_is(self.auc.p_value)})."
            else:
                text += f" No detectable AUC difference (Δ = {self.auc.difference:+.3f}, DeLong {p_is(self.auc.p_value)})."
        return text


def compare(a: CaseResult, b: CaseResult) -> Comparison | None:
    """A against B on their shared test images; None when either lacks per-image predictions."""
    pa, pb = a.predictions(), b.predictions()
    if pa is None or pb is None or pa[0] != pb[0]:
        return None
    labels = pa[1]
    seeds_a, seeds_b = [r["seed"] for r in a.ok], [r["seed"] for r in b.ok]
    index_a, index_b = stats.matched_seeds(seeds_a, seeds_b)
    probs_a, probs_b = pa[2][index_a], pb[2][index_b]
    correct_a, correct_b = (probs_a >= 0.5) == labels, (probs_b >= 0.5) == labels
    both_classes = 0 < labels.sum() < len(labels)
    mcnemar = {seeds_a[i]: stats.mcnemar_exact(ca, cb)
               for i, j, ca, cb in zip(index_a, index_b, correct_a, correct_b) if seeds_a[i] == seeds_b[j]}
    return Comparison(a.id, b.id, stats.paired_accuracy(correct_a, correct_b),
                      stats.paired_auc(labels, probs_a, probs_b) if both_classes else None,
                      mcnemar, stats.beat_probability(a.values("test_acc"), b.values("test_acc")))


def majority_class(doc: dict) -> dict | None:
    """The trivial baseline, always PNEUMONIA, on the run's test split: accuracy = prevalence."""
    images = ((doc.get("data") or {}).get("images") or {}).get("test")
    if not images:
        splits = (doc.get("data") or {}).get("splits") or {}
        if "test" not in splits:
            return None
        n, positives = splits["test"]["images"], splits["test"]["pneumonia"]
    else:
        n, positives = len(images["labels"]), int(sum(images["labels"]))
    return {"n": n, "acc": positives / n if n else 0.0, "acc_interval": stats.wilson(positives, n)}


def resolution(cases: list[CaseResult], images: int) -> float | None:
    """The smallest difference in accuracy (0–1) between two of these cases that a two-sided 5% test
    detects with 80% power, given the test set's size and the cases' mean accuracy and seed spread.
    Unpaired, so it does not depend on how much two particular models agree; paired tests do a little better."""
    found = [s for s in (c.summary("test_acc") for c in cases) if s is not None]
    if not found or not images:
        return None
    accuracy = float(np.mean([s.mean for s in found]))
    seed_variance = float(np.mean([(s.sd or 0.0) ** 2 / s.n for s in found]))
    return stats.detectable_difference(float(np.sqrt(2 * (accuracy * (1 - accuracy) / images + seed_variance))))
