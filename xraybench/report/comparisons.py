"""Two cases against each other, in words: what the report and the findings may state.

The numbers come from ``stats.compare_procedures`` on the test images both cases scored. A sentence names a
winner only when the procedure-level t test rejects at α = 0.05, its accuracy and AUC claims held
together (Holm); the difference's 95% interval counts the seeds' spread and the test images'
sampling. With one seed a side nothing is tested across seeds, and the sentence says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from xraybench import stats
from xraybench.report.formatting import p_is
from xraybench.report.formatting import pp as points
from xraybench.results import CaseResult


@dataclass
class CaseComparison:
    """``stats.ProcedureComparison``'s numbers (accuracy, auc, models_p, mcnemar_per_seed, beat), with the cases'
    names."""

    a: str
    b: str
    result: stats.ProcedureComparison

    def __getattr__(self, name: str):
        if name == "result":  # not set yet (copying, unpickling): no numbers to delegate to
            raise AttributeError(name)
        return getattr(self.result, name)

    @property
    def winner(self) -> str | None:
        return {1: self.a, -1: self.b}.get(self.result.direction)

    def sentence(self) -> str:
        acc = self.accuracy
        if not acc.testable:
            return (
                f"{self.a} vs {self.b}: not tested across seeds — with {acc.seeds_a} and {acc.seeds_b} seed(s) the "
                f"seed-to-seed variation is unknown (Δ = {points(acc.difference)}; these trained models: sign test "
                f"{p_is(self.models_p)}); no winner is named."
            )
        held_acc, held_auc = self.result.held_p
        if self.winner:  # the difference as the winner's lead
            loser = self.b if self.winner == self.a else self.a
            text = (
                f"{self.winner} has a higher test accuracy than {loser} "
                f"({difference(_lead(acc, self.result.direction), held_acc)}; {acc.seeds_a} and {acc.seeds_b} seeds)."
            )
        else:
            text = (
                f"{self.a} vs {self.b}: no detectable difference in test accuracy ({difference(acc, held_acc)}; "
                f"{acc.seeds_a} and {acc.seeds_b} seeds)."
            )
        if self.auc is not None:
            if self.result.auc_direction:
                higher = self.a if self.result.auc_direction > 0 else self.b
                lead = _lead(self.auc, self.result.auc_direction)
                text += f" AUC is higher for {higher} ({difference(lead, held_auc, auc=True)})."
            else:
                text += f" No detectable AUC difference ({difference(self.auc, held_auc, auc=True)})."
        return text


def _lead(d: stats.Difference, direction: int) -> stats.Difference:
    """``d`` as the better side's lead: B − A where B is better."""
    if direction >= 0:
        return d
    return dataclasses.replace(d, difference=-d.difference, low=-d.high, high=-d.low)


def difference(d: stats.Difference, held_p: float | None = None, auc: bool = False) -> str:
    """ "Δ = +3.1 pp [+0.4 pp, +5.8 pp], t(7) p = 0.031, Holm p = 0.062" (AUC: "Δ = +0.021 [-0.004, +0.046], …");
    ``held_p``: the p once the comparison's claims are held together (shown where it differs)."""
    fmt = (lambda x: f"{x:+.3f}") if auc else points
    held = f", Holm {p_is(held_p)}" if held_p is not None and held_p != d.p_value else ""
    return f"Δ = {fmt(d.difference)} [{fmt(d.low)}, {fmt(d.high)}], t({degrees(d.df)}) {p_is(d.p_value)}{held}"


def degrees(df: float) -> str:
    """Degrees of freedom as shown: whole numbers, ∞ where nothing varies."""
    return f"{df:.0f}" if df != float("inf") else "∞"


def compare_cases(a: CaseResult, b: CaseResult) -> CaseComparison | None:
    """A against B on their shared test images; None when either lacks per-image predictions."""
    scores_a, scores_b = a.scores(), b.scores()
    if scores_a is None or scores_b is None:
        return None
    result = stats.compare_procedures(scores_a, scores_b, a.values("test_acc"), b.values("test_acc"))
    return None if result is None else CaseComparison(a.id, b.id, result)
