"""A task's results tables: training (losses, accuracies, time, throughput, memory) and the test set (accuracy
with its interval, AUC, sensitivity, specificity, F1, beside the majority-class baseline and the resolution the
test images allow)."""

from __future__ import annotations

from xraybench import results, stats
from xraybench.report.formatting import interval, mean_sd, min_max, pct, percent_sd
from xraybench.report.tables import Table
from xraybench.results import CaseResult, Row, Run

TRAINING_HEADERS = [
    "case",
    "seeds",
    "train loss",
    "train acc",
    "best val loss",
    "best val acc",
    "time (s)",
    "s/epoch",
    "img/s",
    "peak MB",
]


TEST_HEADERS = ["case", "test acc", "95% interval", "min–max", "test AUC", "sensitivity", "specificity", "F1"]


def training_table(done: list[CaseResult]) -> Table:
    rows = [
        [
            c.id,
            str(c.seeds),
            mean_sd(c.values("train_loss"), ".4f"),
            percent_sd(c.values("train_acc")),
            mean_sd(c.values("best_val_loss"), ".4f"),
            percent_sd(c.values("best_val_acc")),
            mean_sd(c.values("wall_time_s"), ".1f"),
            mean_sd(c.values("s_per_epoch"), ".2f"),
            mean_sd(c.values("train_images_per_s"), ",.0f"),
            mean_sd(c.values("peak_memory_mb"), ",.0f"),
        ]
        for c in done
    ]
    kinds = sorted({r.metrics.peak_memory_kind or "" for c in done for r in c.ok} - {""})
    at_start = [r.metrics.memory_at_start_mb for c in done for r in c.ok if r.metrics.memory_at_start_mb]
    held = (
        f" (of which {min(at_start):,.0f}–{max(at_start):,.0f} MB were in use when the case started)"
        if at_start
        else ""
    )
    return Table(
        TRAINING_HEADERS,
        rows,
        title="Results: training",
        css_class="results",
        caption="Mean ± sd over seeds (the value alone with one seed); time: training time per seed. img/s: "
        "training images per second in the median epoch (the first carries one-time costs). "
        f"Peak MB: {' / '.join(kinds) or 'peak memory as recorded'}{held}.",
    )


def test_set_table(run: Run, done: list[CaseResult]) -> Table:
    counted = run.data.splits.get("test") if run.data else None
    n_test = counted.images if counted else 0
    rows = []
    for c in done:
        acc = c.values("test_acc")
        single = test_intervals_of(c.ok[0]) if c.seeds == 1 else {}
        acc_interval = interval(single.get("acc") if c.seeds == 1 else stats.accuracy_interval(acc, n_test))
        rows.append(
            [
                c.id,
                percent_sd(acc),
                acc_interval,
                min_max(acc),
                _with_interval(c, "test_auc", single.get("auc"), ".3f", 1),
                _with_interval(c, "test_sensitivity", single.get("sensitivity")),
                _with_interval(c, "test_specificity", single.get("specificity")),
                _with_interval(c, "test_f1", single.get("f1")),
            ]
        )
    majority = majority_class(run)
    if majority:
        n, positives = majority
        rows.append(
            [
                "majority class (always PNEUMONIA)",
                pct(positives / n if n else 0.0),
                interval(stats.wilson(positives, n)),
                "–",
                "0.500",
                "100.0 %",
                "0.0 %",
                "–",
            ]
        )
    detectable = stats.resolution([c.summary("test_acc") for c in done], n_test)
    note = ""
    if detectable is not None:
        note = (
            f"Resolution: with {n_test} test images and this seed spread, differences in test accuracy smaller "
            f"than about {100 * detectable:.1f} points cannot be told apart (80% power, two-sided α = 0.05)."
        )
    return Table(
        TEST_HEADERS,
        rows,
        title="Results: test set",
        note=note,
        caption="Test accuracy: mean ± sd over seeds; 95% interval of that mean, counting both the seeds' "
        "spread (t) and the sampling of the test images (binomial), or with one seed Wilson's on the "
        "test images; min–max over seeds. AUC, sensitivity, specificity and F1: "
        "mean ± sd over seeds, or with one seed the value and its 95% interval (DeLong, Wilson, "
        "BCa bootstrap). The majority-class row is the trivial baseline on the same test images.",
    )


def majority_class(run: Run | dict) -> tuple[int, int] | None:
    """(test images, pneumonia images) of the run's test split, for the trivial always-PNEUMONIA baseline."""
    run = results.coerce(run)
    images = run.images("test")
    if images:
        return len(images.labels), int(sum(images.labels))
    counted = run.data.splits.get("test") if run.data else None
    return (counted.images, counted.pneumonia) if counted else None


def _with_interval(case: CaseResult, metric: str, single, spec: str = ".1f", scale: float = 100) -> str:
    values = case.values(metric)
    if not values:
        return "n/a"
    if case.seeds > 1:
        text = mean_sd(values, spec, scale)
        return text + (" %" if scale == 100 else "")
    value = format(scale * values[0], spec) + (" %" if scale == 100 else "")
    return value + (f" {interval(single, '.3f' if scale == 1 else '.1f', scale)}" if single else "")


def test_intervals_of(row: Row) -> dict:
    """A row's stored test-metric intervals; for rows written before intervals were stored, Wilson
    intervals from its confusion matrix."""
    if row.metrics.test_intervals:
        return row.metrics.test_intervals
    c = row.metrics.test_confusion
    return stats.confusion_intervals(tn=c.tn, fp=c.fp, fn=c.fn, tp=c.tp) if c else {}
