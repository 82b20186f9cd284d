"""Test-set analysis for the report: per task, operating points and calibration of its cases (numbers
from ``stats.operating``) as tables and a figure, and the error gallery of its best case; for the whole
run, validation against test accuracy, confusion matrices and the images themselves."""

from __future__ import annotations

import numpy as np

from xraybench import stats
from xraybench.report import plots
from xraybench.report.formatting import interval, mean_sd, pct, percent_sd
from xraybench.report.tables import Table
from xraybench.results import THRESHOLD, CaseResult, Confusion, DataInfo, Run, says_pneumonia
from xraybench.stats.operating import CALIBRATION_BINS, SPECIFICITY_TARGETS, CaseOperatingPoints, case_operating_points

THRESHOLD_HEADERS = [
    "case",
    "seeds",
    "threshold (chosen on val)",
    "test acc at 0.5",
    "test acc at threshold",
    "sensitivity at threshold",
    "specificity at threshold",
]
FIXED_SPEC_HEADERS = [
    "case",
    *(f"sensitivity at {100 * t:.0f}% val specificity (test specificity)" for t in SPECIFICITY_TARGETS),
    "Brier score",
    "ECE (ℓ2, debiased)",
]


GALLERY_SIZE = 6


def operating_section(run: Run, done: list[CaseResult]) -> dict | None:
    """Tables, figure and error gallery for the cases of a task that stored per-image predictions;
    None if none did."""
    points = [p for p in (operating_points(c) for c in done) if p is not None]
    if not points:
        return None
    thresholds, fixed = [], []
    for p in points:
        n = p.positives + p.negatives
        thresholds.append(
            [
                p.case,
                str(len(p.seeds)),
                f"{mean_sd(p.values(lambda s: s.threshold), '.3f')} ({p.rule})",
                _with_interval(p.values(lambda s: s.acc_half), n),
                _with_interval(p.values(lambda s: s.acc_at_threshold), n),
                _with_interval(p.values(lambda s: s.sensitivity_at_threshold), p.positives),
                _with_interval(p.values(lambda s: s.specificity_at_threshold), p.negatives),
            ]
        )
        fixed.append(
            [
                p.case,
                *(
                    f"{_with_interval(p.values(lambda s, t=t: s.at_specificity[t][0]), p.positives)} "
                    f"({pct(_mean(p.values(lambda s, t=t: s.at_specificity[t][1])))})"
                    for t in SPECIFICITY_TARGETS
                ),
                f"{_mean(p.values(lambda s: s.brier)):.3f} {interval(p.brier_interval(), '.3f', 1)}",
                f"{p.ece():.3f} {interval(p.ece_interval(), '.3f', 1)}",
            ]
        )
    return {
        "tables": [
            Table(
                THRESHOLD_HEADERS,
                thresholds,
                caption="Thresholds are chosen on the validation split, per seed, and frozen for the test split: "
                "the decision rule says PNEUMONIA above 0.5 (MedMNIST's); Youden's J maximises "
                "sensitivity + specificity − 1 on validation; a case declaring a target sensitivity gets the "
                "highest threshold that reaches it on validation (mean ± sd over seeds). Proportions: mean over "
                "seeds with a 95% interval counting the seeds' spread and the test images' sampling (Wilson with "
                "one seed).",
            ),
            Table(
                FIXED_SPEC_HEADERS,
                fixed,
                caption="Sensitivity at a fixed specificity: the lowest threshold that reaches the specificity on "
                "validation, applied to the test images; the test specificity it gives is in brackets "
                "(a shifted test split may fall short). Brier score: mean squared error of P(pneumonia), 95% "
                f"interval over test images. ECE: root of the squared calibration error over {CALIBRATION_BINS} "
                "equal-width bins, debiased (Kumar et al. 2019: a calibrated model scores about 0, not "
                "~0.05), seeds' mean; 95% interval from 1,000 bootstrap resamples of the test images.",
            ),
        ],
        "figure": plots.operating_curves(points),
        "gallery": error_gallery(run, [c for c in done if c.id in {p.case for p in points}]),
    }


def error_gallery(run: Run, done: list[CaseResult]) -> dict | None:
    """The task's best case — by mean validation accuracy, never by test — and its most confident errors on
    the test images (mean P(pneumonia) over seeds), and the images whose predicted label differs between
    seeds. Needs the test thumbnails of results.json (written since schema 2's thumbnails)."""
    summary = (run.data.summary if run.data else None) or {}
    thumbnails, ids = summary.get("test_thumbnails"), run.images("test")
    if not done or not thumbnails or not ids or len(thumbnails) != len(ids.ids):
        return None
    best = max(done, key=lambda c: np.mean(c.values("best_val_acc")))
    found = best.scores("test")
    if found is None:
        return None
    image_ids, labels, probs = found.ids, found.labels, found.probs
    position = {image_id: i for i, image_id in enumerate(ids.ids)}
    mean = probs.mean(axis=0)

    def items(indices) -> list[tuple[str, str]]:
        return [(thumbnails[position[image_ids[i]]], f"P = {mean[i]:.2f}") for i in indices]

    said = says_pneumonia(mean)
    false_pos = [i for i in np.argsort(-mean) if labels[i] == 0 and said[i]][:GALLERY_SIZE]
    false_neg = [i for i in np.argsort(mean) if labels[i] == 1 and not said[i]][:GALLERY_SIZE]
    predicted = says_pneumonia(probs)
    flips = np.flatnonzero(predicted.any(axis=0) & ~predicted.all(axis=0))
    all_false_pos = int((said & (labels == 0)).sum())
    all_false_neg = int((~said & (labels == 1)).sum())
    rows = [
        (f"most confident\nfalse positives\n({all_false_pos} in all)", items(false_pos)),
        (f"most confident\nfalse negatives\n({all_false_neg} in all)", items(false_neg)),
    ]
    if len(probs) > 1:
        closest = flips[np.argsort(np.abs(mean[flips] - THRESHOLD))][:GALLERY_SIZE]
        rows.append((f"label flips\nacross seeds\n({len(flips)} in all)", items(closest)))
    rows = [(title, shown) for title, shown in rows if shown]
    flipped = (
        f" {len(flips)} of {len(labels)} test images ({100 * len(flips) / len(labels):.1f} %) change their "
        f"predicted label from one seed to another."
        if len(probs) > 1
        else ""
    )
    return {
        "case": best.id,
        "figure": plots.image_gallery(rows) if rows else None,
        "caption": f"Error gallery of {best.id}, the task's case with the best mean validation accuracy: the "
        f"test images it gets most confidently wrong, by P(pneumonia) averaged over its "
        f"{len(probs)} seed(s) said PNEUMONIA above 0.5, and the images whose label flips across "
        f"seeds (those nearest 0.5 shown).{flipped}",
    }


def _mean(values: list[float]) -> float:
    return stats.across_seeds(values).mean


def _with_interval(values: list[float], images: int) -> str:
    return f"{pct(_mean(values))} {interval(stats.accuracy_interval(values, images))}"


def operating_points(case: CaseResult) -> CaseOperatingPoints | None:
    """A case's operating points per seed (``stats.operating``); None without per-image predictions (schema 1)."""
    val, test = case.scores("val"), case.scores("test")
    if val is None or test is None:
        return None
    return case_operating_points(case.id, val, test, float(case.first.target_sensitivity or 0.0))


def test_set_analysis(data: DataInfo | None, ok: list[CaseResult]) -> dict:
    """The run's closing analysis: validation vs test accuracy, confusion matrices, the images per split."""
    summary = (data.summary if data else None) or {}
    table = Table(
        ["case", "seeds", "best val acc", "test acc", "test − val", "test AUC"],
        [
            [
                c.id,
                str(c.seeds),
                percent_sd(c.values("best_val_acc")),
                percent_sd(c.values("test_acc")),
                mean_sd([g for r in c.ok if (g := r.metrics.test_val_gap) is not None], "+.1f", 100) + " pp",
                mean_sd(c.values("test_auc"), ".3f") if c.values("test_auc") else "n/a",
            ]
            for c in ok
        ],
    )
    return {
        "table": table if ok else None,
        "val_test_figure": plots.val_vs_test(
            [c.id for c in ok], [c.values("best_val_acc") for c in ok], [c.values("test_acc") for c in ok]
        )
        if ok
        else None,
        "confusion_figure": plots.confusion_matrices([(c.id, _summed_confusion(c)) for c in ok]) if ok else None,
        "histogram_figure": plots.intensity_histograms(summary["histograms"], summary["histogram_bins"])
        if summary.get("histograms")
        else None,
        "samples_figure": plots.sample_grid(summary["samples"]) if summary.get("samples") else None,
        "sample_size": summary.get("image_size"),
    }


def _summed_confusion(case: CaseResult) -> Confusion:
    found = [r.metrics.test_confusion for r in case.ok]
    return Confusion(
        tn=sum(c.tn for c in found),
        fp=sum(c.fp for c in found),
        fn=sum(c.fn for c in found),
        tp=sum(c.tp for c in found),
    )
