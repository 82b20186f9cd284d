"""A comparison's claims in words: each metric's outcome as ``results.decisions`` decided it (``stats.Verdict``), with
the interval that outcome used, at that interval's confidence. The findings, the comparison table and the Answers all
word a verdict here, so none can print a winner beside an interval that holds zero, or "undecided" beside one that
excludes it, and none recomputes an outcome by other rules.

Four outcomes: a winner (the two-sided t test rejects; its (1 − level) interval), equivalent within ±margin (both
one-sided tests reject; the (1 − 2·level) interval), undecided (the (1 − level) interval and what these seeds can
detect), and not tested (fewer than ``stats.MIN_SEEDS`` seeds a side, or an earlier metric of the fixed sequence
undecided: its interval is then descriptive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import markupsafe

from xraybench import stats
from xraybench.report.formatting import p_is
from xraybench.results import decisions

FEW_SEEDS, BLOCKED, UNMEASURED = "few seeds", "blocked", "unmeasured"  # the three ways a claim goes untested
COLLAPSED = "every seed of both sides scored alike, so there is no spread to test against"  # undecided, no interval


def title(metric: str) -> str:
    measure = decisions.MEASURES.get(metric)
    return measure.title if measure else metric


def higher_is_better(metric: str) -> bool:
    measure = decisions.MEASURES.get(metric)
    return measure.higher_is_better if measure else True


def degrees(df: float | None) -> str:
    """Degrees of freedom as shown: one decimal (Welch's are fractional), ∞ where nothing varies."""
    return "–" if df is None else "∞" if math.isinf(df) else f"{df:.1f}"


def confidence(c: float) -> str:
    """ "95%", "90%", "97.6%": an interval's coverage, never rounded up to 100%."""
    text = f"{100 * c:.1f}".removesuffix(".0")
    return f"{100 * c:.3f}%" if text == "100" else f"{text}%"


@dataclass(frozen=True)
class Units:
    """How a metric's differences are written: accuracies and gaps in percentage points, AUC as a number."""

    metric: str

    @property
    def points(self) -> bool:
        return self.metric != "test_auc"

    def signed(self, x: float) -> str:
        return f"{100 * x:+.1f} pp" if self.points else f"{x:+.3f}"

    def size(self, x: float) -> str:
        return f"{100 * x:.1f} pp" if self.points else f"{x:.3f}"

    def bounds(self, low: float, high: float) -> str:
        if self.points:
            return f"[{100 * low:+.1f}, {100 * high:+.1f}] pp"
        return f"[{low:+.3f}, {high:+.3f}]"

    def margin(self, m: float) -> str:
        return f"±{100 * m:g} pp" if self.points else f"±{m:g}"


def _described_interval(d: stats.Difference) -> bool:
    """Whether a difference's interval is worth printing: not with fewer than ``stats.MIN_SEEDS`` seeds a side, where
    two seeds that happen to agree give a spread of zero and an interval of nothing."""
    return d.testable and not math.isnan(d.low)


def descriptive(metric: str, d: stats.Difference) -> str:
    """ "Δ = +1.2 pp, 95% interval [-0.8, +3.2] pp, descriptive": a difference no outcome rests on."""
    u = Units(metric)
    if not _described_interval(d):
        return f"Δ = {u.signed(d.difference)}, descriptive"
    interval = f"{confidence(stats.CONFIDENCE)} interval {u.bounds(d.low, d.high)}"
    return f"Δ = {u.signed(d.difference)}, {interval}, descriptive"


def described_cells(label: str, metric: str, d: stats.Difference | None, outcome: str) -> list:
    """A comparison table's cells for a difference no verdict rests on: its 95% interval marked descriptive."""
    u = Units(metric)
    delta = u.signed(d.difference) if d else "–"
    interval = "–"
    if d and _described_interval(d):
        bounds = u.bounds(d.low, d.high)
        interval = markupsafe.Markup("{}: {},<br>descriptive").format(confidence(stats.CONFIDENCE), bounds)
    return [label, outcome, delta, interval, "–", "–"]


@dataclass(frozen=True)
class Claim:
    """One metric of one comparison: its verdict (None: not measurable) and its difference, with where it stands in
    the fixed sequence (``rank`` 0 decides) and, under ``--seeds auto``, the look the comparison ended at."""

    a: str
    b: str
    metric: str
    verdict: stats.Verdict | None
    difference: stats.Difference | None
    seeds: tuple[int, int]
    rank: int = 0
    blocked_by: str | None = None  # the earlier metric left undecided, when this one was not tested for it
    look: int | None = None  # the number of the look (1, 2, …) the comparison ended at; None: a fixed number of seeds
    unmeasured: str = "no per-image predictions"  # why, when the verdict is None

    @property
    def kind(self) -> str:
        """The verdict's outcome, or why none was tested (``FEW_SEEDS``, ``BLOCKED``, ``UNMEASURED``)."""
        if self.verdict is None:
            return UNMEASURED
        if self.verdict.outcome != "untested":
            return self.verdict.outcome
        return FEW_SEEDS if min(self.seeds) < stats.MIN_SEEDS or self.blocked_by is None else BLOCKED

    @property
    def winner(self) -> str | None:
        return {1: self.a, -1: self.b}.get(self.verdict.direction) if self.verdict else None

    def interval(self, lead: int = 1) -> str:
        """ "95% interval [+0.7, +8.7] pp" — the one the verdict used, as A − B (``lead`` −1: as B − A)."""
        v, u = self.verdict, Units(self.metric)
        low, high = (v.low, v.high) if lead > 0 else (-v.high, -v.low)
        at = " at this look's level" if self.look else ""
        return f"{confidence(v.confidence)} interval{at} {u.bounds(low, high)}"

    def evidence(self, lead: int = 1) -> str:
        """Δ, the verdict's interval and its test: what the outcome rests on."""
        v = self.verdict
        test = "two one-sided tests" if v.outcome == "equivalent" else f"t({degrees(v.df)}) {p_is(v.p_value)}"
        return f"Δ = {Units(self.metric).signed(lead * v.difference)}, {self.interval(lead)}, {test}"

    def seeds_used(self) -> str:
        look = f", look {self.look} of --seeds auto" if self.look else ""
        return f"{self.seeds[0]} and {self.seeds[1]} seeds{look}"

    def sentence(self) -> str:
        """The claim as the findings and the Answers state it; a later metric of the sequence is marked secondary."""
        kind, name, u = self.kind, title(self.metric), Units(self.metric)
        seeds = "" if self.rank else f"; {self.seeds_used()}"
        if self.winner:
            loser = self.b if self.winner == self.a else self.a  # Δ as the winner's lead: winner − loser
            text = (
                f"{self.winner} has a {'higher' if higher_is_better(self.metric) else 'smaller'} {name} than {loser} "
                f"({self.evidence(self.verdict.direction)}{seeds})."
            )
        elif kind == "equivalent":
            text = (
                f"{self.a} and {self.b} are equivalent in {name} within {u.margin(self.verdict.margin)} "
                f"({self.evidence()}{seeds})."
            )
        elif kind == "undecided":
            where = f" (look {self.look} of --seeds auto)" if self.look else ""
            said = f"{self.a} vs {self.b}: {name} undecided after {self.seeds[0]} and {self.seeds[1]} seeds{where}"
            if self.verdict.low is None:  # every seed of both sides scored alike: nothing to test against
                text = f"{said} (Δ = {u.signed(self.verdict.difference)}; {COLLAPSED})."
            else:
                detect = f"these seeds detect a difference of {u.size(self.verdict.detectable)} with 80% power"
                text = f"{said} ({self.evidence()}; {detect})."
        elif kind == BLOCKED:
            why = f"secondary; {title(self.blocked_by)} undecided"
            return f"{name[:1].upper()}{name[1:]}: not tested ({why}) — {self._described()}."
        elif kind == FEW_SEEDS:
            return (
                f"{self.a} vs {self.b}: not tested: fewer than {stats.MIN_SEEDS} seeds a side ({self.seeds[0]} and "
                f"{self.seeds[1]}; {name} {self._described()}); no winner is named."
            )
        else:
            return f"{self.a} vs {self.b}: {name} not tested ({self.unmeasured})."
        return f"Secondary: {text}" if self.rank else text

    def _described(self) -> str:
        return descriptive(self.metric, self.difference) if self.difference else "not measured"

    def phrase(self) -> str:
        """The outcome in plain words, for the Answers: "hw3-a-cnn-dropout has the smaller train − validation
        accuracy gap", "test accuracy equivalent within ±2 pp", "test accuracy undecided after 5 and 5 seeds"."""
        kind, name = self.kind, title(self.metric)
        if self.winner:
            return f"{self.winner} has the {'higher' if higher_is_better(self.metric) else 'smaller'} {name}"
        if kind == "equivalent":
            return f"{name} equivalent within {Units(self.metric).margin(self.verdict.margin)}"
        return {
            "undecided": f"{name} undecided after {self.seeds[0]} and {self.seeds[1]} seeds",
            BLOCKED: f"{name} not tested (secondary; {title(self.blocked_by or '')} undecided)",
            FEW_SEEDS: f"not tested: fewer than {stats.MIN_SEEDS} seeds a side",
        }.get(kind, f"{name} not tested ({self.unmeasured})")

    def cells(self) -> list[str]:
        """The comparison table's cells: claim, outcome, Δ (A − B), the outcome's interval, test, margin."""
        kind, u, v = self.kind, Units(self.metric), self.verdict
        label = f"{self.rank + 1}. {title(self.metric)}"
        if kind in (FEW_SEEDS, BLOCKED, UNMEASURED):
            why = {
                FEW_SEEDS: f"not tested: fewer than {stats.MIN_SEEDS} seeds a side",
                BLOCKED: f"not tested: {title(self.blocked_by or '')} undecided",
            }.get(kind, f"not tested: {self.unmeasured}")
            return described_cells(label, self.metric, self.difference, why)
        if kind == "undecided" and v.low is None:
            return [label, "undecided (no spread between seeds)", u.signed(v.difference), "–", "–", "–"]
        outcome = {
            "equivalent": "equivalent",
            "undecided": f"undecided (detects {u.size(v.detectable)})",
        }.get(kind, f"{self.winner} better" + ("" if higher_is_better(self.metric) else " (smaller)"))
        test = "TOST" if kind == "equivalent" else f"t({degrees(v.df)}) {p_is(v.p_value)}"
        interval = f"{confidence(v.confidence)}: {u.bounds(v.low, v.high)}"
        return [label, outcome, u.signed(v.difference), interval, test, u.margin(v.margin) if v.margin > 0 else "–"]


def claims(decision: decisions.Decision, look: int | None = None, unmeasured: str = "") -> list[Claim]:
    """The decision's metrics in their fixed sequence, each marked with the earlier metric that left it untested."""
    out, blocked_by = [], None
    for rank, metric in enumerate(decision.pair.metrics):
        verdict = decision.verdicts.get(metric)
        out.append(
            Claim(
                decision.pair.a,
                decision.pair.b,
                metric,
                verdict,
                decision.differences.get(metric),
                decision.seeds,
                rank,
                blocked_by,
                look,
                unmeasured or "no per-image predictions",
            )
        )
        if blocked_by is None and verdict is not None and verdict.outcome == "undecided":
            blocked_by = metric
    return out
