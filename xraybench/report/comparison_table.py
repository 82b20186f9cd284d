"""The tables of a task's comparisons: the claims (one row per metric of each comparison, in its fixed sequence,
with the interval its outcome used), and beside them what no verdict rests on (sensitivity and specificity, the sign
test of these particular models, P(A beats B))."""

from __future__ import annotations

import markupsafe

from xraybench import stats
from xraybench.report.claims import described_cells, title
from xraybench.report.comparisons import CaseComparison
from xraybench.report.formatting import interval, p_value, pp
from xraybench.report.tables import Table

CLAIM_HEADERS = ["A vs B", "seeds", "claim", "outcome", "Δ (A − B)", "interval", "test", "margin"]

CLAIMS_CAPTION = (
    "Each comparison answers its task's question on the metrics the question names, in a fixed sequence: the "
    "first decides; each next one is tested only when every one before it was decided (otherwise “not tested”), "
    "which holds the family of claims at α = 0.05 without an adjustment, so each interval shown is the one its "
    "outcome used. Δ: the mean over A's seeds minus B's. Its standard error counts each side's seed-to-seed spread "
    "and, for a metric of the test images, their sampling (AUC: DeLong's components; the train − validation gap is "
    "measured once per seed, so the seeds' spread is all of it), referred to a t distribution whose "
    "Welch–Satterthwaite degrees of freedom, t(df), read each part at its upper 85% bound, which holds the level when "
    "one side's seeds scatter. Interval: the one the outcome used, at its confidence. "
    "Outcomes: a case is better when the two-sided t test "
    "rejects at the level (its (1 − level) interval, which excludes zero); equivalent when both one-sided tests "
    "reject a difference as large as the margin (TOST; the (1 − 2·level) interval lies inside ±margin); undecided "
    "otherwise (the (1 − level) interval, and the smallest difference these seeds detect with 80% power); not "
    f"tested with fewer than {stats.MIN_SEEDS} seeds a side. The level is α = 0.05 for a fixed number of seeds; "
    "under --seeds auto, that of the look the comparison stopped at (see “How the seeds were chosen”). Rows "
    "numbered “–”: a test metric the question does not name, described without a verdict."
)

DESCRIPTIVE_HEADERS = [
    "A vs B",
    "Δ sensitivity [95% interval]",
    "Δ specificity [95% interval]",
    "these models: sign test p; McNemar p per seed",
    "P(A beats B)",
]

DESCRIPTIVE_CAPTION = (
    "No verdicts, on the seeds each comparison was decided on. Δ sensitivity and Δ specificity: the accuracy test "
    "on the pneumonia and on the normal images alone; they trade off along the threshold, so they carry intervals "
    "and no verdict. The sign test on per-image correctness (exact McNemar per seed both ran) asks only whether "
    "these trained models differ on these images; it is no verdict on the settings. P(A beats B) over seeds is "
    f"shown from {stats.BEAT_MIN_SEEDS} seeds a side. benchmarks/stat_calibration.py shows by simulation that "
    "these tests hold their level."
)


def comparison_tables(comparisons: list[CaseComparison]) -> list[Table]:
    """The claims table, and the descriptive one where any comparison has per-image predictions."""
    tables = [
        Table(
            CLAIM_HEADERS,
            [row for c in comparisons for row in _claim_rows(c)],
            title="Paired comparisons: the claims",
            css_class="comparisons claims",
            caption=CLAIMS_CAPTION,
            numeric_from=4,
        )
    ]
    described = [c for c in comparisons if c.result is not None]
    if described:
        tables.append(
            Table(
                DESCRIPTIVE_HEADERS,
                [_descriptive_row(c) for c in described],
                title="Paired comparisons on the test images: descriptive",
                css_class="comparisons",
                caption=DESCRIPTIVE_CAPTION,
            )
        )
    return tables


def _names(c: CaseComparison) -> markupsafe.Markup:
    return markupsafe.Markup("{}<br>vs {}").format(c.a, c.b)


def _claim_rows(c: CaseComparison) -> list[list]:
    """A row per metric the question names, then one per test metric it does not; the pair and seeds once."""
    seeds = f"{c.decision.seeds[0]} / {c.decision.seeds[1]}" + (f" (look {c.look})" if c.look else "")
    rows = [claim.cells() for claim in c.claims()]
    for metric, d in c.descriptive():
        rows.append(described_cells(f"– {title(metric)}", metric, d, "descriptive (not asked)"))
    return [[_names(c), seeds, *row] if i == 0 else ["", "", *row] for i, row in enumerate(rows)]


def _descriptive_row(c: CaseComparison) -> list:
    r = c.result
    models = p_value(r.models_p) + "; " + (", ".join(p_value(p) for p in r.mcnemar_per_seed.values()) or "–")
    by_class = [
        "n/a" if d is None else "–" if not d.testable else f"{pp(d.difference)} {interval([d.low, d.high])}"
        for d in (r.sensitivity, r.specificity)
    ]
    beat = "–" if r.beat is None else f"{r.beat.p:.2f} [{r.beat.low:.2f}, {r.beat.high:.2f}]"
    return [_names(c), *by_class, models, beat]
