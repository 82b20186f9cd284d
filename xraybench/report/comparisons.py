"""Two cases against each other: a declared comparison as ``results.decisions`` decided it, and what the findings
say about it.

Each metric's outcome is the decision's (four outcomes, the metrics in a fixed sequence, at the level of the look the
comparison ended at under ``--seeds auto``), worded by ``claims``; nothing here decides again. Beside it, numbers no
verdict rests on, from ``stats.compare_procedures`` on the same seeds: sensitivity and specificity intervals, the sign
test of these trained models, P(A beats B), and the test metrics the task's question does not ask about.
"""

from __future__ import annotations

from dataclasses import dataclass

from xraybench import stats
from xraybench.report.claims import FEW_SEEDS, UNMEASURED, Claim, claims, descriptive, title
from xraybench.report.formatting import p_is
from xraybench.results import CaseResult, Run, decisions

NO_PREDICTIONS = "these results hold no per-image predictions"


@dataclass(frozen=True)
class CaseComparison:
    """A decided comparison, with the descriptive numbers of its two procedures on the seeds it was decided on."""

    decision: decisions.Decision
    result: stats.ProcedureComparison | None  # None: the rows hold no per-image predictions
    look: int | None = None  # the number of the --seeds auto look it ended at; None: a fixed number of seeds

    @property
    def a(self) -> str:
        return self.decision.pair.a

    @property
    def b(self) -> str:
        return self.decision.pair.b

    def claims(self) -> list[Claim]:
        why = NO_PREDICTIONS if self.result is None else "the test images hold one class"
        return claims(self.decision, self.look, why)

    @property
    def winner(self) -> str | None:
        """The case the first metric found better; None for every other outcome."""
        return self.claims()[0].winner

    def descriptive(self) -> list[tuple[str, stats.Difference]]:
        """The test metrics the task's question does not ask about, as differences no verdict rests on."""
        if self.result is None:
            return []
        found = {"test_acc": self.result.accuracy, "test_auc": self.result.auc}
        return [(m, d) for m, d in found.items() if d is not None and m not in self.decision.pair.metrics]

    def sentence(self) -> str:
        said = self.claims()
        if all(c.kind == UNMEASURED for c in said):
            return f"{self.a} vs {self.b}: not tested ({said[0].unmeasured}); no winner is named."
        if said[0].kind == FEW_SEEDS:
            sign = f" These trained models: sign test {p_is(self.result.models_p)}." if self.result else ""
            return said[0].sentence() + sign
        text = " ".join(c.sentence() for c in said)
        extra = "; ".join(f"{title(m)} {descriptive(m, d)}" for m, d in self.descriptive())
        return text + (f" Not among the task's claims: {extra}." if extra else "")


def procedures(a: CaseResult, b: CaseResult) -> stats.ProcedureComparison | None:
    """``stats.compare_procedures`` of A and B on every seed given; None when either lacks per-image predictions."""
    scores_a, scores_b = a.scores(), b.scores()
    if scores_a is None or scores_b is None:
        return None
    return stats.compare_procedures(scores_a, scores_b, a.values("test_acc"), b.values("test_acc"))


def look_number(run: Run, decision: decisions.Decision) -> int | None:
    """Which look of --seeds auto the decision was taken at (1, 2, …); None for a fixed number of seeds."""
    if decision.look is None:
        return None
    return sum(1 for look in run.looks if (look.a, look.b) == (decision.pair.a, decision.pair.b))


def compare_cases(a: CaseResult, b: CaseResult, decision: decisions.Decision | None = None) -> CaseComparison:
    """A against B as ``decision`` decided them — without one, on every seed at α on the default metrics (test
    accuracy, then AUC), by the same rules — with the descriptive numbers on the seeds it was decided on."""
    if decision is None:
        pair = decisions.Pair(
            a.id, b.id, a.first.suite or "", a.first.task or "", decisions.DEFAULT_ANSWER_ON, a.first.margin or {}
        )
        decision = decisions.decide(pair, {a.id: a, b.id: b})
    used_a, used_b = (decisions.first_seeds(c, k) for c, k in zip((a, b), decision.seeds))
    return CaseComparison(decision, procedures(used_a, used_b), look_number(a.run, decision))
