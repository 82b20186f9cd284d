"""The rows of one case over its seeds: what the report, the check and the history summarise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from xraybench.results.rows import predictions
from xraybench.results.schema import Row, Run
from xraybench.results.store import coerce

if TYPE_CHECKING:
    from xraybench import stats


@dataclass
class CaseResult:
    """Every row of one case id (one per seed) and the results file or baseline they belong to."""

    id: str
    rows: list[Row]
    run: Run = field(repr=False)
    _scores: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> list[Row]:
        return [r for r in self.rows if r.ok]

    @property
    def first(self) -> Row:
        return self.rows[0]

    @property
    def seeds(self) -> int:
        return len(self.ok)

    @property
    def model_name(self) -> str:
        """The model's registered name, else the case id."""
        return self.first.model_name or self.id

    def values(self, metric: str) -> list[float]:
        return [v for r in self.ok if (v := r.metrics.value(metric)) is not None]

    def summary(self, metric: str) -> stats.SeedSummary | None:
        from xraybench import stats  # here, not above: loading case files (config_hash) needs no scipy

        return stats.across_seeds(self.values(metric))

    def mean_interval(self, metric: str) -> list[float] | None:
        """95% interval of the mean test accuracy or AUC over seeds, counting the seeds' spread and the sampling
        of the test images (Wilson or DeLong with one seed); per-seed AUC intervals as stored, or from the
        stored predictions (baselines keep no intervals)."""
        from xraybench import stats

        values = self.values(metric)
        if not values:
            return None
        if metric == "test_acc":
            counted = self.run.data.splits.get("test") if self.run.data else None
            images = counted.images if counted else 0
            scores = None if images else self.scores()
            return stats.accuracy_interval(values, images or (len(scores.labels) if scores else 0))
        if metric != "test_auc":
            raise ValueError(f"mean_interval: test_acc or test_auc, not {metric!r}")
        per_seed = [(r.metrics.test_intervals or {}).get("auc") for r in self.ok]
        if any(bounds is None for bounds in per_seed):
            scores = self.scores()
            if scores is None:
                return None
            per_seed = [stats.delong_interval(scores.labels, p) for p in scores.probs]
        return stats.auc_interval(values, per_seed)

    def epoch_medians(self) -> list[float]:
        """One time per ok seed: the median of its epoch times, the first epoch left out (it carries one-time
        costs). Epochs of one seed share its process and machine state: they are no independent samples."""
        return [float(np.median(t[1:] if len(t) > 1 else t)) for t in (r.epoch_seconds for r in self.ok) if t]

    def scores(self, split: str = "test") -> stats.SeedScores | None:
        """Every ok seed's P(pneumonia) on ``split``, when each stored them on the same images; decoded once
        per case and split (the report and history ask for them from several places)."""
        if split not in self._scores:
            self._scores[split] = self._decode(split)
        return self._scores[split]

    def _decode(self, split: str) -> stats.SeedScores | None:
        from xraybench import stats

        found = [predictions(self.run, r, split) for r in self.ok]
        if not found or any(f is None for f in found) or any(f[0] != found[0][0] for f in found):
            return None
        return stats.SeedScores([r.seed for r in self.ok], found[0][0], found[0][1], np.stack([f[2] for f in found]))


def by_case(run: Run | dict, rows: list[Row] | None = None) -> dict[str, CaseResult]:
    """The rows grouped by case id, in order of first appearance."""
    run = coerce(run)
    grouped: dict[str, list[Row]] = {}
    for row in run.cases if rows is None else rows:
        grouped.setdefault(row.id, []).append(row)
    return {case_id: CaseResult(case_id, members, run) for case_id, members in grouped.items()}
