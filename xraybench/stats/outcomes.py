"""How a comparison ends: A better, B better, equivalent within a margin, or undecided — each a tested statement.

A difference A − B (``procedure.Difference``: its se and degrees of freedom) is decided at a look by two tests at
that look's nominal levels (``sequential.nominal_levels``; α itself for a fixed number of seeds):

- *A better* / *B better*: the two-sided test rejects (p ≤ level); the interval printed is its (1 − level)
  interval, which then excludes zero;
- *equivalent*: otherwise, both one-sided tests of |Δ| ≥ margin reject (TOST, Schuirmann 1987) — the
  (1 − 2·level) interval lies inside ±margin; that interval is the one printed;
- *undecided*: neither; the (1 − level) interval (it holds zero) and the smallest difference these seeds detect
  with 80% power — or no interval where nothing varies (every seed of both sides scored alike: collapsed seeds
  give no spread to test against, and a zero standard error would call anything certain).

*Untested* where a side has fewer than ``MIN_SEEDS`` seeds. A difference can be both significant and within the
margin; it is then *A better* (or *B*), the smaller claim being implied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from xraybench.stats.decision import ALPHA
from xraybench.stats.intervals import POWER

MIN_SEEDS = 3  # a verdict's fewest seeds a side: with 2, two collapsed seeds agreeing exactly give a zero spread
OUTCOMES = ("A better", "B better", "equivalent", "undecided", "untested")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one metric of one comparison at one look, with the interval the outcome rests on."""

    outcome: str  # one of OUTCOMES
    difference: float  # A − B
    low: float | None  # the interval the outcome used: (1 − level) two-sided, or (1 − 2·level) for equivalence
    high: float | None
    confidence: float | None  # that interval's coverage
    p_value: float | None  # the two-sided test's p (its t reference)
    level: float  # the nominal level this look tested at (α for a fixed number of seeds)
    margin: float  # ± the equivalence margin (0: equivalence not asked)
    detectable: float | None  # the smallest true difference these seeds find with 80% power at ``level``
    df: float | None

    @property
    def decided(self) -> bool:
        return self.outcome in OUTCOMES[:3]

    @property
    def direction(self) -> int:
        """+1 where A is better, −1 where B is, 0 otherwise (``higher_is_better`` already applied)."""
        return {"A better": 1, "B better": -1}.get(self.outcome, 0)


def untested(difference: float, margin: float, level: float = ALPHA) -> Verdict:
    return Verdict("untested", difference, None, None, None, None, level, margin, None, None)


def decide(
    difference: float,
    se: float,
    df: float,
    seeds: tuple[int, int],
    margin: float = 0.0,
    level: float = ALPHA,
    equivalence_level: float | None = None,
    higher_is_better: bool = True,
) -> Verdict:
    """The outcome of A − B = ``difference`` (standard error ``se``, t reference with ``df`` degrees of freedom,
    ``seeds`` a side) at nominal ``level`` (two-sided) and ``equivalence_level`` (each one-sided test; default
    ``level``)."""
    equivalence_level = level if equivalence_level is None else equivalence_level
    if min(seeds) < MIN_SEEDS or math.isnan(se):
        return untested(difference, margin, level)
    quantile = float(stats.t.isf(level / 2, df))
    if se == 0:  # every seed of both sides scored alike (collapsed seeds): no spread to test against
        return Verdict("undecided", difference, None, None, None, None, level, margin, None, df)
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    detectable = (quantile + float(stats.t.ppf(POWER, df))) * se
    one_sided = float(stats.t.isf(equivalence_level, df))
    low, high = difference - one_sided * se, difference + one_sided * se
    if p > level and margin > 0 and -margin < low and high < margin:
        return Verdict("equivalent", difference, low, high, 1 - 2 * equivalence_level, p, level, margin, detectable, df)
    if p <= level:
        outcome = "A better" if (difference > 0) == higher_is_better else "B better"
    else:
        outcome = "undecided"
    low, high = difference - quantile * se, difference + quantile * se
    return Verdict(outcome, difference, low, high, 1 - level, p, level, margin, detectable, df)
