"""Benchmark: do the report's verdicts hold their level when seeds vary, scatter unequally or collapse, and when
``--seeds auto`` looks again after every round of seeds?

    python benchmarks/stat_calibration.py [--repeats 2000] [--seed 0] [--jobs N] [--only SECTION ...]

Simulates two training procedures scored on the same test images, many times over, and runs the project's own tests
on each. Per image i, seed s and side: z = μ_side + b_i + u_s + ε_si, with b_i ~ N(0, 1) the image's difficulty
(shared by both sides), u_s the seed's effect (normal, or t with 3 degrees of freedom: now and then a seed far off)
and ε_si ~ N(0, 0.5) noise; the model labels the image right when z > 0 and gives P(true class) = sigmoid(z). Each
side's seed effect is scaled so that one seed's accuracy varies by the sd asked for, and μ so that the procedures'
true accuracies are 85% and 85% − effect. A collapsed seed calls every image pneumonia (P = 1), as a network stuck at
the majority class does. Every repetition draws new images and seeds; the labels (62.5% pneumonia) are drawn once per
cell, as a test set's class counts are fixed. Rates carry Clopper–Pearson 95% bounds. Sections (``--only``):

- verdicts: seeds a side × test images × seed sd × true effect; how often each test rejects at 0.05
  (``stats.accuracy_difference``, the same on the pneumonia images alone, ``stats.auc_difference``, the sign test on
  per-image correctness that treats the trained models as fixed, ``xraybench check``'s one-sided test over seeds)
  and how often the 95% interval covers the true difference;
- winners: two equally good procedures whose seeds scatter alike or not (1 vs 5 points, both orders), normal,
  heavy-tailed or 15% collapsed, on 100 or 624 images; how often a verdict names A or B better, on fixed seeds and
  round by round as ``--seeds auto`` does (``stats.nominal_levels``);
- equivalence: A truly better by the 2-point margin; how often the two are called equivalent;
- power: A truly better by 2, 4 or 6 points; how often it is named better, on how many seeds;
- report: end to end, two equally good cases in a results document, decided by ``results.decisions.decided``;
- published: ``stats.against_published`` against a published mean of k runs of the same procedure;
- ece: the coverage of the report's calibration error interval (ECE, ℓ2, debiased): per image a latent logit
  ℓ ~ N(0.8, 2) sets P(pneumonia) = sigmoid(ℓ) and draws the label; each seed predicts sigmoid(T·(ℓ + e)),
  e ~ N(0, noise): T = 1 without noise is calibrated, T = 1.5 with noise overconfident, T = 0.7 underconfident; the
  truth is the same (unbiased) estimator on two million images.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from xraybench import stats
from xraybench.results.decisions import DEFAULT_MARGINS
from xraybench.stats import delong, operating
from xraybench.stats.operating import CaseOperatingPoints, calibration_error, seed_point, squared_calibration_error

IMAGE_SD, NOISE_SD = 1.0, 0.5
SIGMA = float(np.hypot(IMAGE_SD, NOISE_SD))  # sd of z around μ + u within one seed
BASE_ACCURACY = 0.85
PREVALENCE = 0.625
MARGINS = {"accuracy": DEFAULT_MARGINS["test_acc"], "AUC": DEFAULT_MARGINS["test_auc"]}  # ±2 points, ±0.02
A_BETTER, B_BETTER, EQUIVALENT, UNDECIDED, UNTESTED = range(5)  # indices into stats.OUTCOMES
_QUANTILES = (np.arange(4000) + 0.5) / 4000


@dataclass(frozen=True)
class Rate:
    hits: int
    trials: int

    @classmethod
    def of(cls, found) -> Rate:
        """The share of true entries."""
        return cls(int(np.sum(found)), len(found))

    @property
    def share(self) -> float:
        return self.hits / self.trials

    @property
    def bounds(self) -> tuple[float, float]:
        return tuple(stats.clopper_pearson(self.hits, self.trials))

    def holds(self, target: float = 0.05, bound: float = 0.065) -> bool:
        """At most ``target``, its upper bound at most ``bound``: how a false-claim rate meets its level."""
        return self.share <= target and self.bounds[1] <= bound

    def consistent_with(self, target: float = 0.05, bound: float = 0.065) -> bool:
        """The simulation cannot tell the rate from ``target`` (its lower bound at most it) and it is not far above
        (upper bound at most ``bound``): what a test at a few thousand repetitions can assert without failing on
        the Monte Carlo noise of a rate at the target (101 of 2,000 is 5.05%)."""
        return self.bounds[0] <= target and self.bounds[1] <= bound

    def __str__(self) -> str:
        low, high = self.bounds
        return f"{100 * self.share:5.1f}% [{100 * low:4.1f}, {100 * high:4.1f}]"


# ------------------------------------------------------------------------------------------------ the simulation


@dataclass(frozen=True)
class Side:
    """How one procedure's seeds scatter: the sd of a (healthy) seed's accuracy, the seed effect's shape, and the
    share of collapsed seeds."""

    seed_sd_pp: float
    tails: str = "normal"  # or "t3": t with 3 degrees of freedom, scaled to the sd
    collapsed: float = 0.0

    @property
    def shape(self) -> str:
        return (
            f"{100 * self.collapsed:g}% collapsed"
            if self.collapsed
            else {"normal": "normal", "t3": "t3 tails"}[self.tails]
        )


@dataclass(frozen=True)
class Scenario:
    a: Side
    b: Side
    images: int
    effect_pp: float = 0.0  # A's true accuracy above B's


@functools.cache
def _standard_effects(tails: str) -> np.ndarray:
    """Quantiles of the seed effect at sd 1: where the true metrics are averaged."""
    return scipy_stats.norm.ppf(_QUANTILES) if tails == "normal" else scipy_stats.t.ppf(_QUANTILES, 3) / np.sqrt(3)


def _per_seed(metric: str, mu: float, tau: float, tails: str) -> np.ndarray:
    """A seed's true accuracy, Φ((μ + u)/σ), or AUC, P(z_pos + z_neg > 0) = Φ(√2(μ + u)/σ), per quantile of u."""
    return scipy_stats.norm.cdf(
        (1.0 if metric == "accuracy" else np.sqrt(2)) * (mu + tau * _standard_effects(tails)) / SIGMA
    )


def _true(metric: str, side: Side, mu: float, tau: float) -> float:
    """A procedure's true mean accuracy or AUC; its collapsed seeds score the majority class's accuracy and AUC ½."""
    floor = PREVALENCE if metric == "accuracy" else 0.5
    return float((1 - side.collapsed) * _per_seed(metric, mu, tau, side.tails).mean() + side.collapsed * floor)


def _mu_for(metric: str, target: float, side: Side, tau: float) -> float:
    return optimize.brentq(lambda mu: _true(metric, side, mu, tau) - target, -10.0, 10.0, xtol=1e-12)


@functools.cache
def _tau(seed_sd_pp: float, tails: str = "normal") -> float:
    """The seed effect's scale that gives a healthy seed's accuracy the sd asked for, at 85% (bisection)."""
    if seed_sd_pp == 0:
        return 0.0
    low, high = 0.0, 3.0
    for _ in range(50):
        tau = (low + high) / 2
        mu = _mu_for("accuracy", BASE_ACCURACY, Side(seed_sd_pp, tails), tau)
        low, high = (tau, high) if _per_seed("accuracy", mu, tau, tails).std() < seed_sd_pp / 100 else (low, tau)
    return (low + high) / 2


def tau_for(seed_sd_pp: float) -> float:
    """The normal seed effect's sd (on z) that gives a seed sd of accuracy of ``seed_sd_pp`` points."""
    return _tau(seed_sd_pp)


def _mu(accuracy: float, tau: float) -> float:
    """μ whose accuracy P(z > 0), over images, normal seed effects and noise, is ``accuracy``."""
    return float(scipy_stats.norm.ppf(accuracy)) * np.sqrt(SIGMA**2 + tau**2)


@functools.cache
def parameters(scenario: Scenario, match: str = "accuracy") -> tuple[tuple[float, float], tuple[float, float]]:
    """(μ, τ) of A and of B. A's healthy seeds are 85% accurate; B's μ makes its true accuracy A's less the effect, or
    (``match`` "AUC", no effect) its true AUC A's: where seeds scatter unequally, equal accuracies mean unequal AUCs
    (a wider seed spread costs more AUC than accuracy), so each metric's no-difference draw is its own."""
    a, b = scenario.a, scenario.b
    tau_a, tau_b = _tau(a.seed_sd_pp, a.tails), _tau(b.seed_sd_pp, b.tails)
    mu_a = _mu_for("accuracy", BASE_ACCURACY, replace(a, collapsed=0.0), tau_a)
    if match == "AUC" and scenario.effect_pp:
        raise ValueError("an AUC-matched draw has no effect")
    target = _true(match, a, mu_a, tau_a) - (scenario.effect_pp / 100 if match == "accuracy" else 0.0)
    return (mu_a, tau_a), (_mu_for(match, target, b, tau_b), tau_b)


def true_differences(scenario: Scenario, match: str = "accuracy") -> tuple[float, float]:
    """The true A − B in accuracy and in AUC of a draw."""
    (mu_a, tau_a), (mu_b, tau_b) = parameters(scenario, match)
    return tuple(_true(m, scenario.a, mu_a, tau_a) - _true(m, scenario.b, mu_b, tau_b) for m in ("accuracy", "AUC"))


def draw(rng: np.random.Generator, repeats: int, scenario: Scenario, seeds: int, match: str = "accuracy"):
    """(labels [n], the logit of P(pneumonia) of A's seeds [R, seeds, n] and of B's). A collapsed seed's logit is +∞
    (P = 1). The AUC ranks logits as it would P; a seed calls pneumonia where its logit is ≥ 0."""
    n = scenario.images
    labels = rng.random(n) < PREVALENCE
    difficulty = rng.normal(0, IMAGE_SD, (repeats, 1, n))

    def side(spec: Side, mu: float, tau: float) -> np.ndarray:
        shape = (repeats, seeds, 1)
        effect = rng.normal(0, 1, shape) if spec.tails == "normal" else rng.standard_t(3, shape) / np.sqrt(3)
        z = rng.normal(0, NOISE_SD, (repeats, seeds, n))
        z += difficulty
        z += mu + tau * effect
        np.negative(z, out=z, where=~labels)
        return np.where(rng.random(shape) < spec.collapsed, np.inf, z)

    (mu_a, tau_a), (mu_b, tau_b) = parameters(scenario, match)
    return labels, side(scenario.a, mu_a, tau_a), side(scenario.b, mu_b, tau_b)


# -------------------------------------------------------------------------------- verdicts: the grid of one spread


@dataclass(frozen=True)
class Cell:
    seeds: int
    images: int
    seed_sd_pp: float
    effect_pp: float

    @property
    def scenario(self) -> Scenario:
        return Scenario(Side(self.seed_sd_pp), Side(self.seed_sd_pp), self.images, self.effect_pp)


def grid(seeds=(3, 5), images=(400, 624), seed_sds=(0.0, 1.5, 3.0, 4.5), effects=(0.0, 3.0, 6.0)) -> list[Cell]:
    return [Cell(*c) for c in itertools.product(seeds, images, seed_sds, effects)]


def _sign_test_p(per_image: np.ndarray) -> np.ndarray:
    """``stats.sign_test`` of each row: at P = ½ the exact two-sided p is twice the smaller tail (checked on a few)."""
    above, below = (per_image > 0).sum(axis=-1), (per_image < 0).sum(axis=-1)
    p = np.minimum(1.0, 2 * scipy_stats.binom.cdf(np.minimum(above, below), above + below, 0.5))
    for i in range(0, len(p), max(1, len(p) // 4)):
        if not np.isclose(p[i], stats.sign_test(per_image[i]), rtol=1e-9, atol=0):
            raise AssertionError(f"the vectorised sign test differs from stats.sign_test: {p[i]}")
    return p


@functools.cache
def _mann_whitney_worse(baseline_ranks: tuple[float, ...], current_ranks: tuple[float, ...]) -> float:
    return stats.mann_whitney_worse(baseline_ranks, current_ranks, True)


def _check_worse_p(seed_a: np.ndarray, seed_b: np.ndarray) -> list[float]:
    """``xraybench check``'s one-sided p over seeds that B (the run) is worse than A (its baseline): Welch's t below
    5 seeds, Mann–Whitney from 5 — a function of the seeds' ranks alone, so each pattern is computed once."""
    k = seed_a.shape[-1]
    if k < 5:
        return [stats.welch_worse(a, b, True) for a, b in zip(seed_a, seed_b)]
    ranks = scipy_stats.rankdata(np.concatenate([seed_a, seed_b], axis=-1), axis=-1)
    found = [_mann_whitney_worse(tuple(sorted(r[:k])), tuple(sorted(r[k:]))) for r in ranks]
    if found[0] != stats.mann_whitney_worse(seed_a[0], seed_b[0], True):
        raise AssertionError("Mann–Whitney on the ranks differs from Mann–Whitney on the values")
    return found


def evaluate(rng: np.random.Generator, repeats: int, cell: Cell, with_check: bool = True) -> dict[str, Rate]:
    """Rejection rates and coverages of the report's tests in one cell of the grid (and of the check's test over
    seeds, unless ``with_check`` is false)."""
    labels, logits_a, logits_b = draw(rng, repeats, cell.scenario, cell.seeds)
    true_acc, true_auc = true_differences(cell.scenario)
    correct_a, correct_b = (logits_a >= 0) == labels, (logits_b >= 0) == labels
    acc = stats.accuracy_parts(correct_a, correct_b)
    # The model's z ignores the class, so the true sensitivity difference is the accuracy difference.
    sens = stats.accuracy_parts(correct_a[..., labels], correct_b[..., labels])
    auc = stats.auc_parts(labels, logits_a, logits_b)
    rates = {
        "accuracy: t verdict": Rate.of(acc["p_value"] < stats.ALPHA),
        "accuracy: interval covers": Rate.of((acc["low"] <= true_acc) & (true_acc <= acc["high"])),
        "sensitivity: interval covers": Rate.of((sens["low"] <= true_acc) & (true_acc <= sens["high"])),
        "AUC: t verdict": Rate.of(auc["p_value"] < stats.ALPHA),
        "AUC: interval covers": Rate.of((auc["low"] <= true_auc) & (true_auc <= auc["high"])),
        "sign test (these models only)": Rate.of(_sign_test_p(correct_a.mean(axis=1) - correct_b.mean(axis=1)) < 0.05),
    }
    if with_check:  # B as the run against A as its baseline on the same images: is B's accuracy worse?
        worse = np.array(_check_worse_p(correct_a.mean(axis=2), correct_b.mean(axis=2))) < stats.ALPHA
        rates["check: worse over seeds"] = Rate.of(worse)
    return rates


# ------------------------------------------------------------------ outcomes: fixed seeds and --seeds auto, vectorised


def outcome_codes(parts: dict, seeds: tuple[int, int], margin: float, level: float, equivalence_level: float):
    """``stats.decide`` vectorised over repetitions (``parts`` as ``stats.accuracy_parts`` gives them): each outcome's
    index in ``stats.OUTCOMES``. ``Comparisons.decide`` checks it against ``Difference.verdict`` in every batch."""
    difference, se, df = parts["difference"], parts["se"], parts["df"]
    if min(seeds) < stats.MIN_SEEDS:
        return np.full(np.shape(difference), UNTESTED)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * scipy_stats.t.sf(np.abs(difference) / se, df), np.where(difference == 0, 1.0, 0.0))
        one_sided = scipy_stats.t.isf(equivalence_level, df)
        inside = (margin > 0) & (-margin < difference - one_sided * se) & (difference + one_sided * se < margin)
    codes = np.where(p <= level, np.where(difference > 0, A_BETTER, B_BETTER), np.where(inside, EQUIVALENT, UNDECIDED))
    return np.where(np.isnan(se), UNTESTED, codes)


@dataclass(frozen=True)
class Design:
    """How many seeds a comparison gets: ``start`` a side, fixed, or a round at a time up to ``max_seeds``."""

    start: tuple[int, int]
    max_seeds: int | None = None  # None: fixed

    def __str__(self) -> str:
        seeds = f"{self.start[0]} v {self.start[1]}"
        return f"fixed {seeds}" if self.max_seeds is None else f"auto {seeds} → {self.max_seeds}"


@dataclass(frozen=True)
class Decided:
    """A design's outcomes over the repetitions (indices into ``stats.OUTCOMES``)."""

    accuracy: np.ndarray
    auc: np.ndarray | None  # AUC's outcome at the last look, at that look's levels, whatever accuracy's was
    seeds: np.ndarray  # seeds a side at the last look (the two sides' mean)

    @property
    def auc_in_sequence(self) -> np.ndarray:
        """AUC in fixed sequence, as the report tests it: only where accuracy was decided."""
        return np.where(self.accuracy <= EQUIVALENT, self.auc, UNTESTED)


class Comparisons:
    """The repetitions of one comparison, decided on a fixed number of seeds or round by round as ``--seeds auto``
    decides. Vectorised: ``stats.accuracy_parts``, the AUC from each seed's structural components (``stats.delong``,
    computed once for every look) and ``outcome_codes``; in every batch one repetition of each outcome found is
    decided again by ``stats.accuracy_difference`` / ``stats.auc_difference`` and ``Difference.verdict``, and must
    agree."""

    def __init__(self, labels: np.ndarray, logits_a: np.ndarray, logits_b: np.ndarray, with_auc: bool = True):
        self.labels, self.logits, self.repeats = labels, (logits_a, logits_b), len(logits_a)
        self.correct = tuple((logits >= 0) == labels for logits in self.logits)
        self.components = tuple(self._components(logits) for logits in self.logits) if with_auc else None

    def _components(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        repeats, seeds, n = logits.shape
        auc, v10, v01 = delong.structural_components(self.labels, logits.reshape(-1, n))
        return auc.reshape(repeats, seeds), v10.reshape(repeats, seeds, -1), v01.reshape(repeats, seeds, -1)

    def _auc_parts(self, rows: np.ndarray, seeds: tuple[int, int]) -> dict:
        """``stats.auc_parts`` of the first ``seeds`` of each side, from the structural components."""
        ((auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b)), (k_a, k_b) = self.components, seeds
        positives, negatives = v10_a.shape[-1], v01_a.shape[-1]
        d10 = v10_a[rows, :k_a].mean(axis=-2) - v10_b[rows, :k_b].mean(axis=-2)
        d01 = v01_a[rows, :k_a].mean(axis=-2) - v01_b[rows, :k_b].mean(axis=-2)
        seed_a, seed_b = auc_a[rows, :k_a], auc_b[rows, :k_b]
        difference = seed_a.mean(axis=-1) - seed_b.mean(axis=-1)
        parts = [
            (seed_a.var(axis=-1, ddof=1) / k_a, k_a - 1),
            (seed_b.var(axis=-1, ddof=1) / k_b, k_b - 1),
            (d10.var(axis=-1, ddof=1) / positives + d01.var(axis=-1, ddof=1) / negatives, positives + negatives - 2),
        ]
        return {"difference": difference, **stats.welch_t(difference, parts)}

    def difference(self, metric: str, row: int, seeds: tuple[int, int]) -> stats.Difference:
        """One repetition's difference, the project's own way."""
        (k_a, k_b), (logits_a, logits_b), (correct_a, correct_b) = seeds, self.logits, self.correct
        if metric == "accuracy":
            return stats.accuracy_difference(correct_a[row, :k_a], correct_b[row, :k_b])
        return stats.auc_difference(self.labels, logits_a[row, :k_a], logits_b[row, :k_b])

    def decide(self, metric: str, rows, seeds: tuple[int, int], level=stats.ALPHA, equivalence=None) -> np.ndarray:
        """The outcome of ``metric`` ("accuracy" or "AUC") in each of ``rows`` on the first ``seeds`` a side."""
        equivalence = level if equivalence is None else equivalence
        if metric == "accuracy":
            (k_a, k_b), (correct_a, correct_b) = seeds, self.correct
            parts = stats.accuracy_parts(correct_a[rows, :k_a], correct_b[rows, :k_b])
        else:
            parts = self._auc_parts(rows, seeds)
        codes = outcome_codes(parts, seeds, MARGINS[metric], level, equivalence)
        for i in {*np.unique(codes, return_index=True)[1].tolist(), len(codes) // 2}:
            verdict = self.difference(metric, rows[i], seeds).verdict(MARGINS[metric], level, equivalence)
            if verdict.outcome != stats.OUTCOMES[codes[i]]:
                raise AssertionError(f"{metric} at {seeds}: vectorised {stats.OUTCOMES[codes[i]]}, {verdict}")
        return codes

    def run(self, design: Design) -> Decided:
        if design.max_seeds is None:
            rows, seeds = np.arange(self.repeats), design.start
            auc = self.decide("AUC", rows, seeds) if self.components else None
            return Decided(self.decide("accuracy", rows, seeds), auc, np.full(self.repeats, sum(seeds) / 2))
        return self.auto(design.start, design.max_seeds)

    def auto(self, start: tuple[int, int], max_seeds: int) -> Decided:
        """``--seeds auto``: accuracy is tested after each round at the nominal levels of this comparison's information
        fractions so far (fewer seeds a side over ``max_seeds``), two-sided for a winner and one-sided for each test
        of equivalence; a comparison stops when decided or at ``max_seeds``, else gets one more seed a side (a side
        at the most keeps its seeds). AUC is then tested at the last look's levels."""
        accuracy = np.full(self.repeats, UNDECIDED)
        last, levels = np.zeros((self.repeats, 2), int), np.zeros((self.repeats, 2))
        rows, seeds, fractions = np.arange(self.repeats), start, ()
        while len(rows):
            fractions += (min(seeds) / max_seeds,)
            level, equivalence = stats.nominal_levels(fractions)[-1], stats.nominal_levels(fractions, sides=1)[-1]
            codes = self.decide("accuracy", rows, seeds, level, equivalence)
            stop = (codes <= EQUIVALENT) | (min(seeds) >= max_seeds)
            accuracy[rows[stop]], last[rows[stop]], levels[rows[stop]] = codes[stop], seeds, (level, equivalence)
            rows, seeds = rows[~stop], (min(seeds[0] + 1, max_seeds), min(seeds[1] + 1, max_seeds))
        auc = None
        if self.components:
            auc = np.full(self.repeats, UNTESTED)
            for look in np.unique(last, axis=0):
                rows = np.flatnonzero((last == look).all(axis=1))
                auc[rows] = self.decide("AUC", rows, tuple(int(k) for k in look), *map(float, levels[rows[0]]))
        return Decided(accuracy, auc, last.mean(axis=1))


WINNER_DESIGNS = (
    *(Design(s) for s in ((3, 3), (3, 5), (5, 5))),
    *(Design(s, m) for s, m in (((3, 3), 5), ((3, 3), 10), ((3, 5), 5), ((3, 5), 10), ((5, 5), 10))),
)
SPREADS = ((1.0, 1.0), (5.0, 5.0), (1.0, 5.0), (5.0, 1.0))
SHAPES = ({}, {"tails": "t3"}, {"collapsed": 0.15})
WINNER_SCENARIOS = tuple(
    Scenario(Side(a, **shape), Side(b, **shape), n) for n in (100, 624) for shape in SHAPES for a, b in SPREADS
)
EQUIVALENCE_SCENARIOS = tuple(
    Scenario(Side(a, **shape), Side(b, **shape), n, 100 * MARGINS["accuracy"])
    for n in (100, 624)
    for shape in SHAPES[:2]
    for a, b in SPREADS
)
EQUIVALENCE_DESIGNS = (Design((3, 3)), Design((5, 5)), Design((3, 3), 5), Design((3, 3), 10))
POWER_DESIGNS = (Design((3, 3)), Design((5, 5)), Design((10, 10)), Design((3, 3), 5), Design((3, 3), 10))
POWER_SCENARIOS = tuple(Scenario(Side(2.0), Side(2.0), 624, effect) for effect in (2.0, 4.0, 6.0))


def comparison_rates(
    rng: np.random.Generator, repeats: int, scenario: Scenario, designs=WINNER_DESIGNS, with_auc: bool = True
) -> dict[Design, dict[str, Rate | float]]:
    """Each design's outcomes over the repetitions: how often a winner is named in accuracy, in AUC after it (fixed
    sequence) and in AUC alone, how often A is named better, how often the two are called equivalent, and the mean
    seeds a side. Where the sides' seeds differ, AUC's rates come from a second draw whose true AUCs (rather than
    accuracies) are equal."""
    seeds = max(max(*d.start, d.max_seeds or 0) for d in designs)
    same = scenario.a == scenario.b
    on_accuracy = Comparisons(*draw(rng, repeats, scenario, seeds), with_auc=with_auc and same)
    on_auc = on_accuracy if same or not with_auc else Comparisons(*draw(rng, repeats, scenario, seeds, "AUC"))
    found = {}
    for design in designs:
        decided = on_accuracy.run(design)
        winner = (decided.accuracy == A_BETTER) | (decided.accuracy == B_BETTER)
        found[design] = {
            "winner (acc)": Rate.of(winner),
            "A better": Rate.of(decided.accuracy == A_BETTER),
            "equivalent": Rate.of(decided.accuracy == EQUIVALENT),
            "seeds a side": float(decided.seeds.mean()),
        }
        if with_auc:
            by_auc = decided if same else on_auc.run(design)
            for name, outcomes in (("AUC after acc", by_auc.auc_in_sequence), ("AUC alone", by_auc.auc)):
                found[design][f"winner ({name})"] = Rate.of((outcomes == A_BETTER) | (outcomes == B_BETTER))
    return found


REPORT_SCENARIOS = (Scenario(Side(2.9), Side(2.9), 468), Scenario(Side(5.0), Side(1.0), 624))


def report_trials(rng: np.random.Generator, trials: int, scenario: Scenario, seeds: int = 3) -> dict[str, Rate]:
    """End to end: two cases of a results document (A declares ``compare = ["b"]``) whose seeds' per-image predictions
    come from the simulation, decided as the report decides them (``results.decisions.decided``: test accuracy, then
    AUC in fixed sequence); how often a winner is named, and on which metric."""
    from xraybench import results
    from xraybench.results import decisions

    labels, logits_a, logits_b = draw(rng, trials, scenario, seeds)
    images = {"test": {"ids": [f"test/{i}" for i in range(len(labels))], "labels": labels.astype(int).tolist()}}
    named = {"test_acc": [], "test_auc": []}
    for r in range(trials):
        rows = [
            {
                "id": case,
                "seed": seed,
                "status": "ok",
                "compare": ["b"] if case == "a" else [],
                "predictions": {"test": p},
            }
            for case, logits in (("a", logits_a[r]), ("b", logits_b[r]))
            for seed, p in enumerate((1 / (1 + np.exp(-logits))).tolist())
        ]
        run = results.parse({"schema_version": results.SCHEMA_VERSION, "data": {"images": images}, "cases": rows}, "")
        (decision,) = decisions.decided(run)
        for metric, found in named.items():
            found.append(decision.verdicts[metric] is not None and decision.verdicts[metric].direction != 0)
    either = np.logical_or(named["test_acc"], named["test_auc"])
    return {
        "winner named": Rate.of(either),
        "on accuracy": Rate.of(named["test_acc"]),
        "on AUC": Rate.of(named["test_auc"]),
    }


# ------------------------------------------------------------------------------ published results, calibration


@dataclass(frozen=True)
class ReproductionCell:
    seeds: int  # ours
    runs: int  # the published value's (with its sd when 2 or more)
    seed_sd_pp: float
    effect_pp: float  # our pipeline's true accuracy above the published one's
    images: int = 624


REPRODUCTION_CELLS = tuple(
    ReproductionCell(n, k, sd, e)
    for n, k in ((3, 1), (5, 1), (3, 3), (5, 3))
    for sd in (0.5, 1.5, 3.0)
    for e in (0.0, 4.0)
)


def _seed_aucs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each seed's AUC (Mann–Whitney from ranks along the last axis)."""
    ranks = scipy_stats.rankdata(scores, axis=-1)
    pos = int(labels.sum())
    return (ranks[..., labels].sum(axis=-1) - pos * (pos + 1) / 2) / (pos * (len(labels) - pos))


def reproduction_rates(rng: np.random.Generator, repeats: int, cell: ReproductionCell) -> dict[str, Rate]:
    """The Published results verdict on simulated runs: ours (``seeds`` trainings) and the published pipeline
    (``runs`` trainings, reported as their mean and, from 2 runs, sd) on the same test images; under no
    effect a verdict other than "consistent" is a false one. Beside it, the rule "the published value lies
    outside our interval over seeds and test images", which ignores the published value's own seed noise."""
    scenario = Scenario(Side(cell.seed_sd_pp), Side(cell.seed_sd_pp), cell.images, -cell.effect_pp)
    labels, theirs, ours = draw(rng, repeats, scenario, max(cell.seeds, cell.runs))
    logits = ours[:, : cell.seeds], theirs[:, : cell.runs]  # per run and image
    acc_ours, acc_theirs = (((x >= 0) == labels).mean(axis=2) for x in logits)
    auc_ours, auc_theirs = (_seed_aucs(labels, x) for x in logits)
    acc_sd, auc_sd = ((x.std(axis=1, ddof=1) if cell.runs > 1 else np.zeros(len(x))) for x in (acc_theirs, auc_theirs))
    verdicts = {"accuracy": 0, "AUC": 0, "inside our interval (acc)": 0}
    for r in range(repeats):
        acc = stats.against_published(acc_ours[r], acc_theirs[r].mean(), acc_sd[r], cell.runs)
        auc = stats.against_published(auc_ours[r], auc_theirs[r].mean(), auc_sd[r], cell.runs)
        verdicts["accuracy"] += acc.direction != 0
        verdicts["AUC"] += auc.direction != 0
        low, high = stats.accuracy_interval(acc_ours[r], cell.images)
        verdicts["inside our interval (acc)"] += not low <= acc_theirs[r].mean() <= high
    return {f"differs: {name}": Rate(hits, repeats) for name, hits in verdicts.items()}


@dataclass(frozen=True)
class CalibrationCell:
    seeds: int
    images: int
    temperature: float
    noise: float


CALIBRATION_CELLS = tuple(
    CalibrationCell(k, n, t, e)
    for k, n in ((1, 400), (3, 400), (3, 624))
    for t, e in ((1.0, 0.0), (1.5, 0.3), (0.7, 0.0))
)


def _calibration_draw(rng: np.random.Generator, cell: CalibrationCell, images: int):
    """(labels [n], P(pneumonia) [seeds, n]) of one test set scored by the cell's seeds."""
    logit = rng.normal(0.8, 2.0, images)
    labels = (rng.random(images) < 1 / (1 + np.exp(-logit))).astype(int)
    noise = rng.normal(0, cell.noise, (cell.seeds, images)) if cell.noise else np.zeros((cell.seeds, images))
    return labels, 1 / (1 + np.exp(-cell.temperature * (logit + noise)))


def true_squared_ece(cell: CalibrationCell) -> float:
    if cell.temperature == 1 and not cell.noise:
        return 0.0  # calibrated by construction
    labels, probs = _calibration_draw(
        np.random.default_rng(1), CalibrationCell(1, 0, cell.temperature, cell.noise), 2_000_000
    )
    return float(squared_calibration_error(labels, probs)[0, 0])


def ece_coverage(rng: np.random.Generator, repeats: int, cell: CalibrationCell) -> dict[str, float | Rate]:
    """The truth and the mean estimate on the root scale, how often the report's 95% ECE interval covers the truth,
    and how often the percentile interval of the same bootstrap would."""
    truth = calibration_error(true_squared_ece(cell))
    covered, percentile_covered, estimates = 0, 0, []
    for _ in range(repeats):
        labels, probs = _calibration_draw(rng, cell, cell.images)
        seeds = [seed_point(labels, p, labels, p) for p in probs]
        points = CaseOperatingPoints("simulated", "Youden", seeds, labels, probs, 0, 0)
        points.squared_ece_draws = functools.cache(points.squared_ece_draws)  # fixed seed: one bootstrap serves both
        low, high = points.ece_interval()
        covered += low <= truth <= high
        low, high = (calibration_error(q) for q in np.percentile(points.squared_ece_draws(), [2.5, 97.5]))
        percentile_covered += low <= truth <= high
        estimates.append(points.ece())
    return {
        "true ECE": truth,
        "mean estimate": float(np.mean(estimates)),
        "interval covers": Rate(covered, repeats),
        "(percentile would)": Rate(percentile_covered, repeats),
    }


# --------------------------------------------------------------------------------------------- sections, printed


@dataclass
class Section:
    """A table: one task per row label (or per scenario, a row per design), the columns shown of what it returns; a
    rate in ``targets`` that misses 5% (upper bound 6.5%) is named on its row and the worst of each summed up."""

    intro: str
    header: str
    tasks: list  # (function, *arguments after the generator)
    labels: list[str]
    columns: tuple[str, ...] | None = None  # None: all
    targets: tuple[str, ...] = ()
    width: int = 22

    def show(self, results) -> None:
        print(self.intro)
        rows = []
        for label, found in zip(self.labels, results):
            by_design = isinstance(next(iter(found.values())), dict)  # then a row per design
            for where, rates in (
                [(f"{label}  {d!s:<16}", r) for d, r in found.items()] if by_design else [(label, found)]
            ):
                columns = self.columns or tuple(rates)
                if not rows:
                    print(self.header + "".join(f"  {c:>{self.width}}" for c in columns))
                rows.append((where, rates))
                cells = "".join(f"  {_cell(rates[c]):>{self.width}}" for c in columns)
                missed = [c for c in self.targets if not rates[c].holds()]
                print(where + cells + (f"   ✗ {', '.join(missed)}" if missed else ""), flush=True)
        for target in self.targets:
            where, rates = max(rows, key=lambda row: row[1][target].share)
            mark = "" if rates[target].holds() else "  ✗"
            print(f"worst {target}: {rates[target]} ({' '.join(where.split())}){mark}")


def _cell(value: Rate | float) -> str:
    return str(value) if isinstance(value, Rate) else f"{value:.3f}"


def _scenario(s: Scenario) -> str:
    return f"{f'{s.a.seed_sd_pp:g} / {s.b.seed_sd_pp:g}':>9}pp {s.a.shape:<13} {s.images:>6}"


_SCENARIO = f"{'seed sd A / B':>11} {'seed effects':<13} {'images':>6}"
_BY_DESIGN = f"{_SCENARIO}  {'design':<16}"
_TARGETS = "(target ≤ 5%, upper bound ≤ 6.5%)"


def verdicts_section(repeats: int) -> Section:
    cells = grid()
    return Section(
        f"{repeats} repetitions per cell; rates with Clopper–Pearson 95% bounds. Under no effect a verdict's rate is "
        f"its false-positive rate (target ≤ 5%), under an effect its power.",
        f"{'seeds':>5} {'images':>6} {'seed sd':>7} {'effect':>6}",
        [(evaluate, repeats, c) for c in cells],
        [f"{c.seeds:>5} {c.images:>6} {c.seed_sd_pp:>5.1f}pp {c.effect_pp:>4.1f}pp" for c in cells],
    )


def winners_section(repeats: int) -> Section:
    winners = ("winner (acc)", "winner (AUC after acc)", "winner (AUC alone)")
    return Section(
        f"\nFalse winners: two equally good procedures; a verdict naming A or B better is false {_TARGETS}. {repeats} "
        f"repetitions per row. Fixed seeds, or --seeds auto from the start given, a seed a side per round, up to the "
        f"most given. AUC after accuracy: tested at the look where accuracy was decided (fixed sequence); AUC alone: "
        f"at the last look, whatever accuracy said; where spreads differ, both from a draw with equal true AUCs. "
        f"Collapsed: that share of both sides' seeds calls every image pneumonia.",
        _BY_DESIGN,
        [(comparison_rates, repeats, s) for s in WINNER_SCENARIOS],
        [_scenario(s) for s in WINNER_SCENARIOS],
        (*winners, "seeds a side"),
        winners,
    )


def equivalence_section(repeats: int) -> Section:
    return Section(
        f"\nFalse equivalence: A truly better by the margin ({100 * MARGINS['accuracy']:g} points of accuracy); "
        f"calling the two equivalent is false {_TARGETS}. {repeats} repetitions per row:",
        _BY_DESIGN,
        [(comparison_rates, repeats, s, EQUIVALENCE_DESIGNS, False) for s in EQUIVALENCE_SCENARIOS],
        [_scenario(s) for s in EQUIVALENCE_SCENARIOS],
        ("equivalent", "A better", "seeds a side"),
        ("equivalent",),
    )


def power_section(repeats: int) -> Section:
    return Section(
        f"\nPower and compute: A truly better by 2, 4 or 6 points, a seed sd of 2 points, 624 test images; how often A "
        f"is named better, and the seeds a side it took. {repeats} repetitions per row:",
        f"{'effect':>6}  {'design':<16}",
        [(comparison_rates, repeats, s, POWER_DESIGNS, False) for s in POWER_SCENARIOS],
        [f"{s.effect_pp:>4g}pp" for s in POWER_SCENARIOS],
        ("A better", "equivalent", "seeds a side"),
    )


def report_section(repeats: int) -> Section:
    differences = [true_differences(s) for s in REPORT_SCENARIOS]
    return Section(
        f"\nEnd to end: two equally good cases (3 seeds each) in a results document, decided as the report decides "
        f"them (results.decisions.decided); {repeats // 2} trials per row; a winner named is false {_TARGETS}:",
        f"{_SCENARIO}  {'true Δ acc':>10} {'Δ AUC':>8}",
        [(report_trials, repeats // 2, s) for s in REPORT_SCENARIOS],
        [f"{_scenario(s)}  {acc:>+10.3f} {auc:>+8.4f}" for s, (acc, auc) in zip(REPORT_SCENARIOS, differences)],
        targets=("winner named",),
    )


def published_section(repeats: int) -> Section:
    return Section(
        f"\nPublished results: ours (n seeds) against a published mean of k runs on the same 624 test images; under no "
        f"effect a verdict other than 'consistent' is false (target ≤ 5%), under an effect (ours 4 points higher) it "
        f"is power. {repeats // 4} draws per cell:",
        f"{'seeds':>5} {'runs':>4} {'seed sd':>7} {'effect':>6}",
        [(reproduction_rates, repeats // 4, c) for c in REPRODUCTION_CELLS],
        [f"{c.seeds:>5} {c.runs:>4} {c.seed_sd_pp:>5.1f}pp {c.effect_pp:>4.1f}pp" for c in REPRODUCTION_CELLS],
        width=34,
    )


def ece_section(repeats: int) -> Section:
    return Section(
        f"\nThe report's ECE (ℓ2, debiased) and its 95% interval ({operating.ECE_RESAMPLES} bootstrap resamples), "
        f"{repeats // 4} draws per cell:",
        f"{'seeds':>5} {'images':>6} {'T':>4} {'noise':>5}",
        [(ece_coverage, repeats // 4, c) for c in CALIBRATION_CELLS],
        [f"{c.seeds:>5} {c.images:>6} {c.temperature:>4.1f} {c.noise:>5.1f}" for c in CALIBRATION_CELLS],
    )


SECTIONS = {
    "verdicts": verdicts_section,
    "winners": winners_section,
    "equivalence": equivalence_section,
    "power": power_section,
    "report": report_section,
    "published": published_section,
    "ece": ece_section,
}


def _timed(task, *args):
    start = time.process_time()
    return task(*args), time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: one per CPU)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run these sections (default: all)")
    args = parser.parse_args()
    start, chosen = time.perf_counter(), [name for name in SECTIONS if name in (args.only or SECTIONS)]
    # Each cell draws from its own generator, so the figures depend on neither --jobs nor --only. Every cell is
    # submitted at once, the last sections (the slowest cells) first, and the sections print in order.
    with ProcessPoolExecutor(args.jobs) as pool:
        pending = {}
        for name in reversed(chosen):
            section, index = SECTIONS[name](args.repeats), list(SECTIONS).index(name)
            generators = [np.random.default_rng([args.seed, index, i]) for i in range(len(section.tasks))]
            pending[name] = section, [pool.submit(_timed, *t[:1], g, *t[1:]) for g, t in zip(generators, section.tasks)]
        cpu = {}
        for name in chosen:
            section, futures = pending[name]
            section.show(future.result()[0] for future in futures)
            cpu[name] = sum(future.result()[1] for future in futures)
    print(
        f"\n({time.perf_counter() - start:.0f} s with {args.jobs} processes; CPU time: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())
        + ")"
    )


if __name__ == "__main__":
    main()
