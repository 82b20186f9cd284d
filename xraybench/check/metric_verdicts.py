"""One case's metrics against the baseline's, metric by metric: the tolerance each is held to, which test
decides a change beyond it (over seeds, or paired on per-image predictions), and Holm's adjustment per family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xraybench import stats
from xraybench.results import METRICS, CaseResult, Metric, Tolerance


@dataclass
class MetricVerdict:
    metric: str
    baseline: float  # mean over the baseline's seeds
    current: float  # mean over this run's seeds
    change: str
    status: str  # better, worse, within tolerance, not significant (beyond the tolerance, not beyond the noise)
    test: str = ""  # which test decided, or why none could
    p_value: float | None = None


def metric_tolerances(stored: dict, declared: dict, cli: list[Tolerance]) -> dict[str, float]:
    """Defaults, then the baseline's, then the case declaration's, then the command line's."""
    amounts = {name: m.tolerance for name, m in METRICS.items()}
    for source in (stored, declared):
        for name, spec in source.items():
            t = Tolerance.parse(f"{name}:{spec}")
            amounts[t.metric] = t.amount
    for t in cli:
        amounts[t.metric] = t.amount
    return amounts


def metric_verdicts(base: CaseResult, new: CaseResult, tolerances: dict[str, float]) -> list[MetricVerdict]:
    """Every metric of one case. The quality metrics (accuracy, AUC, loss, …) are one family and the two
    times another: each family is held at α by Holm's adjustment, so that a case is not flagged six times
    as often as one metric is. A metric inside its tolerance is not tested (its p counts as 1)."""
    compared = [name for name in METRICS if base.values(name) and new.values(name)]
    quality = sum(METRICS[name].test == "seeds" for name in compared)
    verdicts, worse = [], {}
    for name in compared:
        metric = METRICS[name]
        mean_b, mean_n = float(np.mean(base.values(name))), float(np.mean(new.values(name)))
        change = 100 * (mean_n - mean_b) if metric.unit == "pp" else 100 * (mean_n - mean_b) / mean_b if mean_b else 0.0
        gain = change if metric.higher_is_better else -change
        beyond, worse[name] = abs(gain) > tolerances[name], gain < 0
        test, p = _significance(metric, base, new, worse[name], quality) if beyond else ("", None)
        verdicts.append(
            MetricVerdict(
                name,
                mean_b,
                mean_n,
                f"{change:+.1f} pp" if metric.unit == "pp" else f"{change:+.0f} %",
                "beyond" if beyond else "within tolerance",
                test,
                p,
            )
        )
    for family in ("seeds", "times", "none"):
        members = [v for v in verdicts if METRICS[v.metric].test == family]
        held = stats.holm([1.0 if v.p_value is None else v.p_value for v in members])
        for v, p in zip(members, held):
            # Not stats.direction's rule: a change beyond the tolerance stands unless its test calls it noise
            # (p > α); with no test possible (p None) the tolerance alone decides, and the note says so.
            if v.status == "beyond":
                v.status = (
                    "not significant"
                    if v.p_value is not None and p > stats.ALPHA
                    else "worse"
                    if worse[v.metric]
                    else "better"
                )
    return verdicts


def _significance(
    metric: Metric, base: CaseResult, new: CaseResult, worse: bool, family: int
) -> tuple[str, float | None]:
    """(which test, its one-sided p in the direction of the change or None); ``family``: how many quality
    metrics the case's Holm adjustment holds together."""
    higher = metric.higher_is_better if worse else not metric.higher_is_better  # "worse" direction for the test
    if metric.test == "none":
        return "no test for this metric: tolerance only", None
    if metric.test == "times":
        per_seed = "wall time" if metric.name == "wall_time_s" else "median epoch time (first epoch left out)"
        b, n = (
            case.values(metric.name) if metric.name == "wall_time_s" else case.epoch_medians() for case in (base, new)
        )
        if len(b) < 2 or len(n) < 2:
            return f"fewer than 2 seeds a side ({len(b)} / {len(n)}) to test a time: tolerance only", None
        return f"Welch's t over each seed's {per_seed} ({len(b)} / {len(n)})", stats.welch_worse(b, n, higher)
    b, n = base.values(metric.name), new.values(metric.name)
    if len(b) >= 3 and len(n) >= 3:
        if stats.smallest_mann_whitney_p(len(b), len(n)) <= stats.ALPHA / max(1, family):
            return "Mann–Whitney over seeds", stats.mann_whitney_worse(b, n, higher)
        # Too few seeds for a rank test to reach the family's level (3 a side: p ≥ 0.05): Welch's t over the seeds.
        return f"Welch's t over seeds ({len(b)} / {len(n)})", stats.welch_worse(b, n, higher)
    split = "val" if metric.name == "best_val_acc" else "test"
    sb, sn = base.scores(split), new.scores(split)
    if sb is None or sn is None or sb.ids != sn.ids:
        why = "the baseline has" if sb is None else "this run has" if sn is None else "the two sides have"
        return (
            f"{why} {'no per-image predictions' if sb is None or sn is None else 'different test images'} and "
            f"fewer than 3 seeds a side: tolerance only"
        ), None
    index_n, index_b = stats.pair_seeds(sn.seeds, sb.seeds, shared_only=True)
    if not index_b:  # two different seeds differ on many images: a paired test would call seed noise a change
        return (
            "no seed in common and fewer than 3 seeds a side: seed noise cannot be told from a change; "
            "tolerance only (run --seeds 3)"
        ), None
    return _paired_test(metric.name, sb.subset(index_b), sn.subset(index_n), higher)


def _paired_test(name: str, base: stats.SeedScores, new: stats.SeedScores, higher: bool) -> tuple[str, float]:
    """One-sided paired tests on per-image predictions of the seeds both sides ran, pooled per image;
    ``higher``: the alternative is that the metric went down (for higher-is-better metrics)."""
    alternative = "less" if higher else "greater"  # new against base
    labels = base.labels
    if name in ("test_acc", "best_val_acc", "test_sensitivity", "test_specificity"):
        keep = {"test_sensitivity": labels == 1, "test_specificity": labels == 0}.get(name, np.ones_like(labels, bool))
        seeds = f"{len(base.seeds)} seed{'s' if len(base.seeds) > 1 else ''} a side"
        paired = stats.paired_accuracy(new.correct()[:, keep], base.correct()[:, keep], alternative)
        return f"sign test on per-image correctness ({seeds})", paired.p_value
    if name == "test_auc":
        return "DeLong", stats.paired_auc(labels, new.probs, base.probs, alternative).p_value
    return "Wilcoxon on per-image loss", stats.paired_loss(labels, new.probs, base.probs, alternative)
