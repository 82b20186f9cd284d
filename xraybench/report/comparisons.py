"""Two cases against each other, in words: what the report and the findings may state.

The numbers come from ``stats.compare`` on the test images both cases scored. A sentence names
a winner only when the test rejects at α = 0.05 and the difference's 95% interval excludes
zero; otherwise it says "no detectable difference".
"""

from __future__ import annotations

from dataclasses import dataclass

from xraybench import stats
from xraybench.report.formatting import p_is, pp as points
from xraybench.results import CaseResult


@dataclass
class Comparison:
    """``stats.Comparison``'s numbers (accuracy, auc, mcnemar_per_seed, beat), with the cases' names."""

    a: str
    b: str
    result: stats.Comparison

    def __getattr__(self, name: str):
        if name == "result":  # not set yet (copying, unpickling): no numbers to delegate to
            raise AttributeError(name)
        return getattr(self.result, name)

    @property
    def winner(self) -> str | None:
        return {1: self.a, -1: self.b}.get(self.result.direction)

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
    scores_a, scores_b = a.scores(), b.scores()
    if scores_a is None or scores_b is None:
        return None
    result = stats.compare(scores_a, scores_b, a.values("test_acc"), b.values("test_acc"))
    return None if result is None else Comparison(a.id, b.id, result)
