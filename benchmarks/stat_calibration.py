"""Benchmark: do the report's "A beats B" verdicts hold their level when seeds vary?

    python benchmarks/stat_calibration.py [--repeats 2000] [--seed 0] [--only verdicts|published|ece]

Simulates two training procedures scored on the same test images, many times over, and runs the
project's own tests on each (``stats.accuracy_difference``, also on the pneumonia images alone as the
report's sensitivity interval, ``stats.auc_difference``, and the sign test on per-image correctness
that treats the trained models as fixed). Per image i, seed s and
side: z = μ_side + b_i + u_s + ε_si, with b_i ~ N(0, 1) the image's difficulty (shared by both
sides), u_s ~ N(0, τ) the seed's effect and ε_si ~ N(0, 0.5) noise; the model labels the image
right when z > 0 and gives P(true class) = sigmoid(z). τ is set so that one seed's accuracy varies
by the wanted sd in percentage points; μ so that the procedures' true accuracies are 85% and
85% − effect. Every repetition draws new images (their difficulty) and seeds; the labels (62.5%
pneumonia) are drawn once per cell, as a test set's class counts are fixed.

Prints, per cell of the grid (seeds a side, test images, seed sd, true effect): how often each
test rejects at 0.05 with Clopper–Pearson 95% bounds (under no effect: the false-positive rate;
under an effect: the power), and how often the verdict's 95% interval covers the true difference.
The same draws serve ``xraybench check``'s test over seeds (B as the run, A as its baseline, one
metric at 0.05, one-sided: is B worse?).

Then the report's Published results verdict (``stats.against_published``): our seeds against a published
mean of k runs of the same procedure on the same images — how often it calls a faithful reproduction
"higher" or "lower" (target ≤ 5%), its power against a real 4-point difference, and what the rule "the
published value lies outside our interval" would have done.

Last, the report's calibration error (ECE, ℓ2, debiased, with its bootstrap interval): per image a
latent logit ℓ ~ N(0.8, 2) sets P(pneumonia) = sigmoid(ℓ) and draws the label; each seed predicts
sigmoid(T·(ℓ + e)), e ~ N(0, noise) per image and seed. T = 1 without noise is perfectly calibrated
(true ECE 0); T = 1.5 with noise is overconfident, T = 0.7 underconfident. The truth of each cell is the
same estimator on two million images (it is unbiased). Prints the interval's coverage of the truth, the
mean estimate beside it, and what the percentile interval of the same bootstrap would have covered.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from xraybench import stats
from xraybench.stats import operating
from xraybench.stats.operating import CaseOperatingPoints, calibration_error, seed_point, squared_calibration_error

IMAGE_SD, NOISE_SD = 1.0, 0.5
BASE_ACCURACY = 0.85
PREVALENCE = 0.625
SEEDS, IMAGES = (3, 5), (400, 624)
SEED_SDS_PP = (0.0, 1.5, 3.0, 4.5)
EFFECTS_PP = (0.0, 3.0, 6.0)


@dataclass(frozen=True)
class Cell:
    seeds: int
    images: int
    seed_sd_pp: float
    effect_pp: float


def _mu(accuracy: float, tau: float) -> float:
    """μ whose procedure accuracy P(z > 0), over images, seeds and noise, is ``accuracy``."""
    return float(scipy_stats.norm.ppf(accuracy)) * np.sqrt(IMAGE_SD**2 + NOISE_SD**2 + tau**2)


def _seed_sd(tau: float, mu: float) -> float:
    """sd over seeds of a seed's accuracy on an infinite test set, Φ((μ + u) / √(σ_b² + σ_ε²)), u ~ N(0, τ)."""
    u = scipy_stats.norm.ppf((np.arange(4000) + 0.5) / 4000) * tau
    return float(scipy_stats.norm.cdf((mu + u) / np.hypot(IMAGE_SD, NOISE_SD)).std())


def tau_for(seed_sd_pp: float) -> float:
    """The seed effect's sd (on z) that gives a seed sd of accuracy of ``seed_sd_pp`` points (bisection)."""
    if seed_sd_pp == 0:
        return 0.0
    low, high = 0.0, 3.0
    for _ in range(60):
        tau = (low + high) / 2
        low, high = (tau, high) if _seed_sd(tau, _mu(BASE_ACCURACY, tau)) < seed_sd_pp / 100 else (low, tau)
    return (low + high) / 2


def true_auc(mu: float, tau: float) -> float:
    """The procedure's mean per-seed AUC: a seed's AUC is P(z_pos + z_neg > 0) = Φ(2(μ + u) / √(2σ²))."""
    sigma2 = IMAGE_SD**2 + NOISE_SD**2
    return float(scipy_stats.norm.cdf(2 * mu / np.sqrt(2 * sigma2 + 4 * tau**2)))


def simulate(rng: np.random.Generator, repeats: int, cell: Cell):
    """(labels [n], P(pneumonia) of A [R, k, n] and of B, true accuracy difference, true AUC difference)."""
    tau = tau_for(cell.seed_sd_pp)
    mu_a = _mu(BASE_ACCURACY, tau)
    mu_b = _mu(BASE_ACCURACY - cell.effect_pp / 100, tau)
    k, n = cell.seeds, cell.images
    labels = rng.random(n) < PREVALENCE
    difficulty = rng.normal(0, IMAGE_SD, (repeats, 1, n))

    def side(mu):
        z = mu + difficulty + rng.normal(0, tau, (repeats, k, 1)) + rng.normal(0, NOISE_SD, (repeats, k, n))
        p_true = 1 / (1 + np.exp(-z))
        return np.where(labels, p_true, 1 - p_true)

    return labels, side(mu_a), side(mu_b), cell.effect_pp / 100, true_auc(mu_a, tau) - true_auc(mu_b, tau)


@dataclass(frozen=True)
class Rate:
    hits: int
    trials: int

    @property
    def share(self) -> float:
        return self.hits / self.trials

    @property
    def bounds(self) -> tuple[float, float]:
        return tuple(stats.clopper_pearson(self.hits, self.trials))

    def __str__(self) -> str:
        low, high = self.bounds
        return f"{100 * self.share:5.1f}% [{100 * low:4.1f}, {100 * high:4.1f}]"


def evaluate(rng: np.random.Generator, repeats: int, cell: Cell, with_check: bool = True) -> dict[str, Rate]:
    """Rejection rates and coverages of the report's tests in one cell of the grid (and of the check's test
    over seeds, unless ``with_check`` is false: its permutations are the slow part)."""
    labels, probs_a, probs_b, true_acc, true_auc_diff = simulate(rng, repeats, cell)
    correct_a, correct_b = (probs_a >= 0.5) == labels, (probs_b >= 0.5) == labels
    acc = stats.accuracy_parts(correct_a, correct_b)
    # The model's z ignores the class, so the true sensitivity difference is the accuracy difference.
    sens = stats.accuracy_parts(correct_a[..., labels], correct_b[..., labels])
    auc = stats.auc_parts(labels, probs_a, probs_b)
    per_image = correct_a.mean(axis=1) - correct_b.mean(axis=1)
    sign = [stats.sign_test(d) < stats.ALPHA for d in per_image]
    # xraybench check, B as the run against A as its baseline on the same images: is B's accuracy worse?
    # Over seeds as the check tests them: Welch's t with 3 a side, Mann–Whitney from 5.
    over_seeds = stats.welch_worse if cell.seeds < 5 else stats.mann_whitney_worse
    seed_acc_a, seed_acc_b = correct_a.mean(axis=2), correct_b.mean(axis=2)
    check_worse = [over_seeds(a, b, True) < stats.ALPHA for a, b in zip(seed_acc_a, seed_acc_b)] if with_check else []
    return {
        "accuracy: t verdict": Rate(int((acc["p_value"] < stats.ALPHA).sum()), repeats),
        "accuracy: interval covers": Rate(int(((acc["low"] <= true_acc) & (true_acc <= acc["high"])).sum()), repeats),
        "sensitivity: interval covers": Rate(
            int(((sens["low"] <= true_acc) & (true_acc <= sens["high"])).sum()), repeats
        ),
        "AUC: t verdict": Rate(int((auc["p_value"] < stats.ALPHA).sum()), repeats),
        "AUC: interval covers": Rate(
            int(((auc["low"] <= true_auc_diff) & (true_auc_diff <= auc["high"])).sum()), repeats
        ),
        "sign test (these models only)": Rate(int(np.sum(sign)), repeats),
        **({"check: worse over seeds": Rate(int(np.sum(check_worse)), repeats)} if with_check else {}),
    }


def report_trials(rng: np.random.Generator, trials: int, cell: Cell) -> Rate:
    """End to end: two cases of a results document whose seeds' per-image predictions come from the simulation,
    compared and worded as the report does; how often a sentence names a winner (test accuracy or AUC)."""
    from xraybench.report.comparisons import compare_cases
    from xraybench.results import SCHEMA_VERSION, by_case

    labels, probs_a, probs_b, _, _ = simulate(rng, trials, cell)
    named = 0
    for r in range(trials):
        rows = [
            {
                "id": case,
                "seed": seed,
                "status": "ok",
                "metrics": {"test_acc": float(((p >= 0.5) == labels).mean())},
                "predictions": {"test": p.tolist()},
            }
            for case, probs in (("a", probs_a[r]), ("b", probs_b[r]))
            for seed, p in enumerate(probs)
        ]
        doc = {
            "schema_version": SCHEMA_VERSION,
            "data": {
                "images": {
                    "test": {"ids": [f"test/{i}" for i in range(len(labels))], "labels": labels.astype(int).tolist()}
                }
            },
            "cases": rows,
        }
        cases = by_case(doc)
        sentence = compare_cases(cases["a"], cases["b"]).sentence()
        named += "has a higher test accuracy" in sentence or "AUC is higher" in sentence
    return Rate(named, trials)


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


def _seed_aucs(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each seed's AUC (Mann–Whitney from ranks along the last axis)."""
    ranks = scipy_stats.rankdata(probs, axis=-1)
    pos = int(labels.sum())
    return (ranks[..., labels].sum(axis=-1) - pos * (pos + 1) / 2) / (pos * (len(labels) - pos))


def reproduction_rates(rng: np.random.Generator, repeats: int, cell: ReproductionCell) -> dict[str, Rate]:
    """The Published results verdict on simulated runs: ours (``seeds`` trainings) and the published pipeline
    (``runs`` trainings, reported as their mean and, from 2 runs, sd) on the same test images; under no
    effect a verdict other than "consistent" is a false one. Beside it, the rule "the published value lies
    outside our interval over seeds and test images", which ignores the published value's own seed noise."""
    seeds = max(cell.seeds, cell.runs)
    labels, probs_theirs, probs_ours, _, _ = simulate(
        rng, repeats, Cell(seeds, cell.images, cell.seed_sd_pp, -cell.effect_pp)
    )
    pneumonia = probs_ours[:, : cell.seeds], probs_theirs[:, : cell.runs]  # P(pneumonia) per run and image
    acc_ours, acc_theirs = (((p >= 0.5) == labels).mean(axis=2) for p in pneumonia)
    auc_ours, auc_theirs = (_seed_aucs(labels, p) for p in pneumonia)
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


def ece_coverage(rng: np.random.Generator, repeats: int, cell: CalibrationCell) -> tuple[Rate, Rate, float, float]:
    """(how often the report's 95% ECE interval covers the truth, how often the percentile interval of the same
    bootstrap would, the truth, the mean estimate), on the root scale."""
    truth = calibration_error(true_squared_ece(cell))
    covered, percentile_covered, estimates = 0, 0, []
    for _ in range(repeats):
        labels, probs = _calibration_draw(rng, cell, cell.images)
        seeds = [seed_point(labels, p, labels, p) for p in probs]
        points = CaseOperatingPoints("simulated", "Youden", seeds, labels, probs, 0, 0)
        low, high = points.ece_interval()
        covered += low <= truth <= high
        low, high = (calibration_error(q) for q in np.percentile(points.squared_ece_draws(), [2.5, 97.5]))
        percentile_covered += low <= truth <= high
        estimates.append(points.ece())
    return Rate(covered, repeats), Rate(percentile_covered, repeats), truth, float(np.mean(estimates))


def grid(seeds=SEEDS, images=IMAGES, seed_sds=SEED_SDS_PP, effects=EFFECTS_PP) -> list[Cell]:
    return [Cell(*c) for c in itertools.product(seeds, images, seed_sds, effects)]


SECTIONS = ("verdicts", "published", "ece")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run these sections (default: all)")
    args = parser.parse_args()
    sections = args.only or SECTIONS
    start = time.perf_counter()
    if "verdicts" in sections:
        print_verdicts(np.random.default_rng(args.seed), args.repeats)
    if "published" in sections:  # each section draws from its own generator: one may run alone
        print_published(np.random.default_rng([args.seed, 1]), args.repeats // 4)
    if "ece" in sections:
        print_ece(np.random.default_rng([args.seed, 2]), args.repeats // 4)
    print(f"({time.perf_counter() - start:.0f} s)")


def print_verdicts(rng: np.random.Generator, repeats: int) -> None:
    print(
        f"{repeats} repetitions per cell; rates with Clopper–Pearson 95% bounds. Under no effect a "
        f"verdict's rate is its false-positive rate (target ≤ 5%), under an effect its power."
    )
    header = None
    for cell in grid():
        rates = evaluate(rng, repeats, cell)
        if header is None:
            header = f"{'seeds':>5} {'images':>6} {'seed sd':>7} {'effect':>6}  " + "  ".join(f"{k:>22}" for k in rates)
            print(header)
        print(
            f"{cell.seeds:>5} {cell.images:>6} {cell.seed_sd_pp:>5.1f}pp {cell.effect_pp:>4.1f}pp  "
            + "  ".join(f"{v!s:>22}" for v in rates.values()),
            flush=True,
        )
    end_to_end = Cell(3, 468, 2.9, 0.0)
    print(
        f"\nEnd to end, two equally good cases worded as the report does ({end_to_end.seeds} seeds, "
        f"{end_to_end.images} test images, seed sd {end_to_end.seed_sd_pp} pp): a winner named in "
        f"{report_trials(rng, repeats // 2, end_to_end)} of trials (target ≤ 5%)"
    )


def print_published(rng: np.random.Generator, repeats: int) -> None:
    print(
        f"\nPublished results: ours (n seeds) against a published mean of k runs on the same {IMAGES[-1]} test "
        f"images; under no effect a verdict other than 'consistent' is false (target ≤ 5%), under an effect "
        f"(ours 4 points higher) it is power. {repeats} draws per cell:"
    )
    print(
        f"{'seeds':>5} {'runs':>4} {'seed sd':>7} {'effect':>6}  "
        + "  ".join(f"{k:>34}" for k in ("differs: accuracy", "differs: AUC", "differs: inside our interval (acc)"))
    )
    for cell in REPRODUCTION_CELLS:
        rates = reproduction_rates(rng, repeats, cell)
        print(
            f"{cell.seeds:>5} {cell.runs:>4} {cell.seed_sd_pp:>5.1f}pp {cell.effect_pp:>4.1f}pp  "
            + "  ".join(f"{v!s:>34}" for v in rates.values()),
            flush=True,
        )


def print_ece(rng: np.random.Generator, repeats: int) -> None:
    print(
        f"\nThe report's ECE (ℓ2, debiased) and its 95% interval ({operating.ECE_RESAMPLES} bootstrap resamples), "
        f"{repeats} draws per cell:"
    )
    print(
        f"{'seeds':>5} {'images':>6} {'T':>4} {'noise':>5}  {'true ECE':>8} {'mean estimate':>13}  "
        f"{'interval covers':>22}  {'(percentile would)':>22}"
    )
    for cell in CALIBRATION_CELLS:
        covers, percentile, truth, mean = ece_coverage(rng, repeats, cell)
        print(
            f"{cell.seeds:>5} {cell.images:>6} {cell.temperature:>4.1f} {cell.noise:>5.1f}  {truth:>8.3f} "
            f"{mean:>13.3f}  {covers!s:>22}  {percentile!s:>22}",
            flush=True,
        )


if __name__ == "__main__":
    main()
