"""A run's declared comparisons, decided: which pairs its cases declare (``compare``), the metrics each is answered
on (its task's question), the margins of equivalence, and each metric's outcome (``stats.outcomes``) — at a look of
``--seeds auto`` (the runner) or on every seed (the report). Numbers only; the report words them.

The metrics are tested in a fixed sequence at one level: the first decides (and stops ``--seeds auto``); each next
one is tested only when every one before it was decided, which holds the family of claims at α without an
adjustment, so each interval printed is the one its verdict used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from xraybench import stats
from xraybench.results.schema import Look, Run
from xraybench.results.seeds import CaseResult, by_case

DEFAULT_ANSWER_ON = ("test_acc", "test_auc")
DEFAULT_MARGINS = {"test_acc": 0.02, "test_auc": 0.02, "train_val_gap": 0.02}  # ±2 points; AUC ±0.02


def _last_gap(case: CaseResult) -> list[float]:
    """Train minus validation accuracy at each seed's last epoch: what overfitting leaves."""
    return [r.history[-1].train_acc - r.history[-1].val_acc for r in case.ok if r.history]


@dataclass(frozen=True)
class Measure:
    """How A − B in a metric is measured and which sign is better."""

    title: str
    difference: Callable[[CaseResult, CaseResult], stats.Difference | None]
    higher_is_better: bool = True


def _shared_scores(a: CaseResult, b: CaseResult):
    """Both sides' per-seed scores on the same test images, or None."""
    scores_a, scores_b = a.scores(), b.scores()
    return None if scores_a is None or scores_b is None or scores_a.ids != scores_b.ids else (scores_a, scores_b)


def _accuracy(a: CaseResult, b: CaseResult) -> stats.Difference | None:
    shared = _shared_scores(a, b)
    return None if shared is None else stats.accuracy_difference(shared[0].correct(), shared[1].correct())


def _auc(a: CaseResult, b: CaseResult) -> stats.Difference | None:
    """None also where the test images hold one class (no AUC)."""
    shared = _shared_scores(a, b)
    if shared is None or not 0 < shared[0].labels.sum() < len(shared[0].labels):
        return None
    return stats.auc_difference(shared[0].labels, shared[0].probs, shared[1].probs)


def _per_seed(values: Callable[[CaseResult], list[float]]):
    def difference(a: CaseResult, b: CaseResult) -> stats.Difference | None:
        found_a, found_b = values(a), values(b)
        return stats.seed_difference(found_a, found_b) if found_a and found_b else None

    return difference


MEASURES = {
    "test_acc": Measure("test accuracy", _accuracy),
    "test_auc": Measure("test AUC", _auc),
    "train_val_gap": Measure("train − validation accuracy gap", _per_seed(_last_gap), higher_is_better=False),
}


@dataclass(frozen=True)
class Pair:
    """A comparison a case declares: A (the case) against B (a case it names in ``compare``)."""

    a: str
    b: str
    suite: str
    task: str
    metrics: tuple[str, ...]  # the first decides; the rest in fixed sequence
    margins: dict[str, float] = field(default_factory=dict)

    def margin(self, metric: str) -> float:
        return self.margins.get(metric, DEFAULT_MARGINS.get(metric, 0.0))


def pairs(run: Run) -> list[Pair]:
    """Every declared comparison whose two cases both have ok rows in ``run``, in the order the rows declare them."""
    present = {r.id for r in run.cases if r.ok}
    found: dict[tuple[str, str], Pair] = {}
    for row in run.cases:
        for other in row.compare:
            if row.id in present and other in present and (row.id, other) not in found:
                suite = run.suites.get(row.suite or "")
                question = suite.questions.get(row.task or "") if suite else None
                metrics = tuple(question.answer_on) if question else DEFAULT_ANSWER_ON
                found[row.id, other] = Pair(row.id, other, row.suite or "", row.task or "", metrics, row.margin or {})
    return list(found.values())


@dataclass(frozen=True)
class Decision:
    """A pair's metrics decided on the first ``seeds`` of each side, at one look's levels."""

    pair: Pair
    seeds: tuple[int, int]
    differences: dict[str, stats.Difference | None]
    verdicts: dict[str, stats.Verdict | None]  # None: not measurable (no predictions, one class)
    look: Look | None = None  # the look it was taken at (--seeds auto); None: every seed, at α

    @property
    def primary(self) -> stats.Verdict | None:
        return self.verdicts[self.pair.metrics[0]]


def first_seeds(case: CaseResult, k: int | None) -> CaseResult:
    """The case on its ``k`` lowest ok seeds (all with None): the seeds a look had."""
    rows = sorted(case.ok, key=lambda r: r.seed or 0)
    return CaseResult(case.id, rows if k is None else rows[:k], case.run)


def decide(
    pair: Pair,
    cases: dict[str, CaseResult],
    seeds: tuple[int, int] | None = None,
    level: float = stats.ALPHA,
    equivalence_level: float = stats.ALPHA,
    look: Look | None = None,
) -> Decision:
    """The pair's metrics on the first ``seeds`` of each side (all with None), in fixed sequence at ``level``."""
    a, b = first_seeds(cases[pair.a], seeds and seeds[0]), first_seeds(cases[pair.b], seeds and seeds[1])
    differences, verdicts, open_gate = {}, {}, True
    for metric in pair.metrics:
        measure = MEASURES[metric]
        d = differences[metric] = measure.difference(a, b)
        if d is None:
            verdicts[metric] = None
            continue
        if not open_gate:  # an earlier metric is undecided: this one is not tested
            verdicts[metric] = stats.untested(d.difference, pair.margin(metric), level)
            continue
        v = verdicts[metric] = d.verdict(pair.margin(metric), level, equivalence_level, measure.higher_is_better)
        open_gate = v.decided
    return Decision(pair, (a.seeds, b.seeds), differences, verdicts, look)


def decided(run: Run) -> list[Decision]:
    """Each declared comparison of ``run`` as it ended: at its last recorded look (``--seeds auto``), else on every
    seed at α."""
    cases = by_case(run)
    last = {(look.a, look.b): look for look in run.looks}
    out = []
    for pair in pairs(run):
        look = last.get((pair.a, pair.b))
        if look is None:
            out.append(decide(pair, cases))
        else:
            out.append(decide(pair, cases, (look.seeds_a, look.seeds_b), look.level, look.equivalence_level, look=look))
    return out


def take_look(
    pair: Pair,
    cases: dict[str, CaseResult],
    counts: dict[str, int],
    round_: int,
    fractions: tuple[float, ...],
    most: int,
) -> Decision | None:
    """The pair's look after round ``round_`` of ``--seeds auto``, on each side's first ``counts`` seeds: the look's
    levels spend α over this pair's looks so far (``fractions``; information = the fewer seeds a side over ``most``).
    None when the pair gained no seed since its last look (a failed training): nothing new to test."""
    seeds = tuple(min(cases[c].seeds, counts[c]) for c in (pair.a, pair.b))
    fraction = min(1.0, min(seeds) / most)
    if fractions and fraction <= fractions[-1]:
        return None
    schedule = (*fractions, fraction)
    level = stats.nominal_levels(schedule)[-1]
    equivalence_level = stats.nominal_levels(schedule, sides=1)[-1]
    decision = decide(pair, cases, seeds, level, equivalence_level)
    metric = pair.metrics[0]
    verdict, d = decision.primary, decision.differences[metric]
    look = Look(
        round=round_,
        a=pair.a,
        b=pair.b,
        metric=metric,
        seeds_a=seeds[0],
        seeds_b=seeds[1],
        fraction=round(fraction, 6),
        level=level,
        equivalence_level=equivalence_level,
        margin=pair.margin(metric),
        difference=d.difference if d else 0.0,
        se=_finite(d.se) if d else None,
        df=_finite(d.df) if d else None,
        p_value=verdict.p_value if verdict else None,
        outcome=verdict.outcome if verdict else "untested",
    )
    return Decision(pair, seeds, decision.differences, decision.verdicts, look)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
