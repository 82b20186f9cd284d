"""Report views computed across a suite (a task with no cases of its own): model selection,
fine-tuned vs frozen, and the validation-vs-test gap. Each returns a task's content.

A view tests many pairs at once, on test accuracy alone, so it holds them together with Holm's adjustment and
shows the unadjusted and the adjusted p; it prints no interval that a Holm verdict could contradict. The declared
comparisons' own outcomes are in their tasks' sections and the Answers."""

from __future__ import annotations

import itertools

from xraybench import stats
from xraybench.report.comparisons import procedures
from xraybench.report.formatting import mean_sd, p_is, percent_sd, plural
from xraybench.report.tables import Table, task
from xraybench.results import CaseResult


def model_selection(suite: list[CaseResult], everything: dict[str, CaseResult]) -> dict:
    seen, rows = set(), []
    for case in suite:
        info, model = case.first.model_info, case.first.model_name or ""
        if model in seen or info is None or info.params is None:
            continue
        seen.add(model)
        rows.append(
            [
                model,
                info.weights or "–",
                info.input,
                f"{info.params / 1e6:.2f}",
                f"{info.flops / 1e9:.2f}",
                _opt(info.file_size_mb, ".1f"),
                _opt(info.imagenet_acc1, ".1f"),
                f"{info.latency_ms:.1f}",
            ]
        )
    table = Table(
        ["model", "weights", "input", "params (M)", "GFLOPs", "file (MB)", "ImageNet acc@1 (%)", "latency (ms)"],
        rows,
        numeric_from=3,
        caption="Candidate backbones at the input size of this run. GFLOPs: floating-point operations of "
        "one forward pass, counted by torch.utils.flop_counter (two per multiply-add; torchvision's "
        "meta calls the multiply-add count GFLOPS, half this). Parameters are counted with the "
        "ImageNet head. Latency: median of 10 forward passes of one image on the run's device, in "
        "the run's precision.",
    )
    if not rows:
        return task(findings=["No model costs were recorded in this run."])
    cheapest = min(rows, key=lambda row: float(row[4]))
    return task(
        tables=[table],
        findings=[
            f"{len(rows)} candidate models; the cheapest per image is {cheapest[0]} "
            f"({cheapest[4]} GFLOPs at {cheapest[2]})."
        ],
    )


def holm_directions(comparisons: list[stats.ProcedureComparison | None]) -> list[tuple[int | None, float | None]]:
    """Each comparison's test accuracy verdict with Holm's adjustment over the testable ones of a view (a view tests
    many pairs at once), and its adjusted p: +1 A higher, −1 B higher, 0 undecided, None not tested."""
    testable = [i for i, c in enumerate(comparisons) if c is not None and c.accuracy.testable]
    adjusted = dict(zip(testable, stats.holm([comparisons[i].accuracy.p_value for i in testable])))
    return [
        (stats.direction(c.accuracy.difference, adjusted[i]), adjusted[i]) if i in adjusted else (None, None)
        for i, c in enumerate(comparisons)
    ]


def compare_modes(suite: list[CaseResult], everything: dict[str, CaseResult]) -> dict:
    pairs = [
        (everything[c], case)
        for case in suite
        for c in case.first.compare
        if c in everything and everything[c].first.mode != case.first.mode
    ]
    pairs = [(a, b) for a, b in pairs if a.ok and b.ok]
    comparisons = [procedures(a, b) for a, b in pairs]
    rows, speedups, verdicts = [], [], {"first": 0, "second": 0, "none": 0}
    for (a, b), comparison, (direction, held) in zip(pairs, comparisons, holm_directions(comparisons)):
        speedup = _mean(a.values("s_per_epoch")) / _mean(b.values("s_per_epoch"))
        speedups.append(speedup)
        if direction is None:
            verdict = "not tested" if comparison is None else f"not tested (fewer than {stats.MIN_SEEDS} seeds a side)"
        else:
            which = {1: "first", -1: "second"}.get(direction, "none")
            verdicts[which] += 1
            tests = f"{p_is(comparison.accuracy.p_value)}, Holm {p_is(held)}"
            verdict = f"{which} higher ({tests})" if direction else f"undecided ({tests})"
        rows.append(
            [
                a.model_name,
                f"{a.first.mode} / {b.first.mode}",
                f"{a.seeds} / {b.seeds}",
                f"{percent_sd(a.values('test_acc'))} / {percent_sd(b.values('test_acc'))}",
                f"{mean_sd(a.values('s_per_epoch'), '.2f')} / {mean_sd(b.values('s_per_epoch'), '.2f')}",
                f"{speedup:.1f}×",
                f"{_oscillation(a):.1f} / {_oscillation(b):.1f}",
                verdict,
            ]
        )
    if not rows:
        return task(findings=["No pair of cases compared across modes finished in this run."])
    table = Table(
        [
            "model",
            "modes",
            "seeds",
            "test acc",
            "s/epoch",
            "speed-up of the second",
            "oscillation (pp)",
            "test of the settings",
        ],
        rows,
        numeric_from=2,
        caption="Each backbone in both modes (first / second); test accuracy and s/epoch as mean ± sd over "
        "seeds. Oscillation: mean absolute change of the validation accuracy from one epoch to the "
        "next, in percentage points (mean over seeds). Test: the procedure-level t test of the "
        "accuracy difference (seeds' spread and test-image sampling), its p shown unadjusted and after Holm's "
        "adjustment; the verdict holds the view's pairs together at α = 0.05 (Holm): a higher mode, or undecided. "
        f"With fewer than {stats.MIN_SEEDS} seeds a side nothing is tested.",
    )
    span = (
        f"{min(speedups):.1f}×" if max(speedups) - min(speedups) < 0.05 else f"{min(speedups):.1f}–{max(speedups):.1f}×"
    )
    faster = sum(x > 1 for x in speedups)
    tested = sum(verdicts.values())
    findings = [
        f"The second mode took less time per epoch for {faster} of {len(speedups)} model(s): speed-up {span} "
        f"(mean s/epoch over seeds, one-time feature pass included; a measurement, not a tested difference)."
    ]
    if tested:
        findings.append(
            f"Of {tested} tested pair(s), the first mode has the higher test accuracy for "
            f"{verdicts['first']}, the second for {verdicts['second']}, and {verdicts['none']} are undecided "
            f"(α = 0.05 over the pairs, Holm)."
        )
    if tested < len(rows):
        findings.append(
            f"{len(rows) - tested} pair(s) not tested: fewer than {stats.MIN_SEEDS} seeds a side (or no per-image "
            f"predictions were stored)."
        )
    return task(tables=[table], findings=findings)


def test_gap(suite: list[CaseResult], everything: dict[str, CaseResult]) -> dict:
    ok = [c for c in suite if c.ok]
    if not ok:
        return task(findings=["No case of this suite finished."])
    rows = [
        [
            c.id,
            str(c.seeds),
            percent_sd(c.values("best_val_acc")),
            percent_sd(c.values("test_acc")),
            mean_sd(_gaps(c), "+.1f", 100) + " pp",
        ]
        for c in ok
    ]
    table = Table(
        ["case", "seeds", "best val acc", "test acc", "test − val"],
        rows,
        caption="Validation vs test accuracy, mean ± sd over seeds. The test split may come from another "
        "acquisition than train and validation (for the built-in data it does), so the gap "
        "measures the shift.",
    )
    gaps = [g for c in ok for g in _gaps(c)]
    findings = [
        f"Test accuracy is between {100 * min(gaps):+.1f} and {100 * max(gaps):+.1f} pp from the best "
        f"validation accuracy (mean {100 * sum(gaps) / len(gaps):+.1f} pp over every seed)."
    ]
    scratch = [c for c in everything.values() if c.ok and c.first.mode == "from scratch"]
    if scratch:
        best = max(scratch, key=lambda c: _mean(c.values("best_val_acc")))  # chosen on validation, never on test
        comparisons = [procedures(c, best) for c in ok]
        above, tied, below, untested = [], [], [], []
        for c, (direction, _) in zip(ok, holm_directions(comparisons)):
            {None: untested, 1: above, 0: tied, -1: below}[direction].append(c.id)
        text = (
            f"The model trained from scratch with the highest mean validation accuracy in this run, {best.id}, "
            f"reached {percent_sd(best.values('test_acc'))} on the test images."
        )
        if len(untested) < len(ok):  # a tally of nothing tested would read like an answer
            text += (
                f" Against it (procedure-level t test of the test accuracy, "
                f"{plural(len(ok) - len(untested), 'case')} tested, held together at α = 0.05, Holm): "
                f"{len(above)} score higher{': ' + ', '.join(above) if above else ''}; {len(below)} lower; "
                f"{len(tied)} undecided."
            )
        if untested:
            text += (
                f" Not tested (fewer than {stats.MIN_SEEDS} seeds a side, or no per-image predictions): "
                f"{', '.join(untested[:6])}{', …' if len(untested) > 6 else ''}."
            )
        findings.append(text)
    else:
        findings.append("No model trained from scratch is in this run to compare with.")
    return task(tables=[table], findings=findings)


def _gaps(case: CaseResult) -> list[float]:
    """Each ok seed's test accuracy minus its best validation accuracy."""
    return [gap for r in case.ok if (gap := r.metrics.test_val_gap) is not None]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _oscillation(case: CaseResult) -> float:
    per_seed = []
    for r in case.ok:
        val = [h.val_acc for h in r.history]
        steps = [abs(b - a) for a, b in itertools.pairwise(val)]
        per_seed.append(100 * sum(steps) / len(steps) if steps else 0.0)
    return _mean(per_seed) if per_seed else 0.0


def _opt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


VIEWS = {"model_selection": model_selection, "compare_modes": compare_modes, "test_gap": test_gap}
