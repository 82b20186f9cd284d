"""The table of a task's paired comparisons on the test images: per pair, the tests of the training procedures
(accuracy, AUC, sensitivity and specificity), the sign test of these particular models, P(A beats B), the verdict."""

from __future__ import annotations

import markupsafe

from xraybench import stats
from xraybench.report.comparisons import CaseComparison, degrees
from xraybench.report.formatting import interval, p_value, pp
from xraybench.report.tables import Table

COMPARISON_HEADERS = [
    "A vs B",
    "seeds",
    "Δ test acc (A − B)",
    "95% interval",
    "p (t, df)",
    "Δ AUC [95% interval], p",
    "Δ sensitivity; Δ specificity [95% intervals]",
    "these models: sign test p; McNemar p per seed",
    "P(A beats B)",
    "verdict",
]


COMPARISON_CAPTION = (
    "Δ: mean test accuracy over A's seeds minus B's. Its 95% interval and p test the training "
    "procedures, not these particular networks: the standard error counts each side's "
    "seed-to-seed spread and the sampling of the test images, referred to a t distribution "
    "with Welch–Satterthwaite degrees of freedom (in brackets). Δ AUC: the same test on the mean of "
    "per-seed AUCs (image part from DeLong's components). Δ sensitivity and Δ specificity: the accuracy "
    "test on the pneumonia and the normal images; they trade off along the threshold, so they "
    "carry intervals and no verdict. The verdict names a case when the "
    "accuracy test rejects at 0.05 with the accuracy and AUC claims held together (Holm; the "
    "adjusted p is shown where it differs). With one seed a side the seed "
    "variation is unknown and nothing is tested. The sign test on per-image correctness "
    "(exact McNemar per seed both ran) asks only whether these trained models differ on these "
    "images; it is no verdict on the settings. P(A beats B) over seeds is shown from "
    f"{stats.BEAT_MIN_SEEDS} seeds a side. benchmarks/stat_calibration.py shows these tests "
    "hold their 5% level by simulation."
)


def comparison_table(comparisons: list[CaseComparison]) -> Table:
    return Table(
        COMPARISON_HEADERS,
        [_row(c) for c in comparisons],
        title="Paired comparisons on the test images",
        css_class="comparisons",
        caption=COMPARISON_CAPTION,
    )


def _row(c: CaseComparison) -> list:
    acc = c.accuracy
    models = p_value(c.models_p) + "; " + (", ".join(p_value(p) for p in c.mcnemar_per_seed.values()) or "–")
    if not acc.testable:
        tested, auc, by_class, verdict = ["–", "–"], "–", "–", "not tested (one seed a side)"
    else:
        tested, auc, by_class, verdict = _procedure_tests(c)
    beat = "–" if c.beat is None else f"{c.beat.p:.2f} [{c.beat.low:.2f}, {c.beat.high:.2f}]"
    return [
        markupsafe.Markup("{}<br>vs {}").format(c.a, c.b),
        f"{acc.seeds_a} / {acc.seeds_b}",
        pp(acc.difference),
        *tested,
        auc,
        by_class,
        models,
        beat,
        verdict,
    ]


def _procedure_tests(c: CaseComparison) -> tuple[list[str], str, str, str]:
    """The cells of a testable pair's tests of the training procedures: the accuracy difference's interval and p
    (with Holm's where it differs), the AUC's, sensitivity's and specificity's, and the verdict."""
    acc = c.accuracy
    held_acc, held_auc = c.result.held_p
    tested = [
        interval([acc.low, acc.high]),
        f"{p_value(acc.p_value)} ({degrees(acc.df)})"
        + (f"; Holm {p_value(held_acc)}" if held_acc != acc.p_value else ""),
    ]
    auc = (
        "n/a"
        if c.auc is None
        else f"{c.auc.difference:+.3f} [{c.auc.low:+.3f}, {c.auc.high:+.3f}], {p_value(c.auc.p_value)}"
        + (f"; Holm {p_value(held_auc)}" if held_auc is not None and held_auc != c.auc.p_value else "")
    )
    by_class = (
        "n/a"
        if c.sensitivity is None
        else "; ".join(f"{pp(d.difference)} {interval([d.low, d.high])}" for d in (c.sensitivity, c.specificity))
    )
    verdict = f"{c.winner} higher" if c.winner else "no detectable difference"
    return tested, auc, by_class, verdict
