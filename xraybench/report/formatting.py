"""How numbers are written in the report and the findings: percentages, points, mean ± sd, intervals."""

from __future__ import annotations

from collections.abc import Callable

from xraybench import stats

METRIC_LABELS = {"test_acc": "ACC", "test_auc": "AUC"}  # the short names of the test metrics in tables


def plural(n: int, word: str) -> str:
    """ "1 case", "2 cases": a count and its noun, agreeing."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """ "p < 0.001" or "p = 0.042", for sentences."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def mean_sd(values: list[float], spec: str = ".3f", scale: float = 1.0, *, write: Callable | None = None) -> str:
    """ "m ± sd" over seeds, the value alone with one seed, "–" with none. A table's cell: both in the format
    ``spec`` of ``scale`` × the value, the sd signed where the spec is ("+4.7 ± +0.0"). A sentence's: ``write``
    writes each with its unit, the sd without its sign ("+4.7 pp ± 1.2 pp")."""
    summary = stats.across_seeds(values)
    if summary is None:
        return "–"
    mean = write(summary.mean) if write else format(scale * summary.mean, spec)
    if summary.sd is None:
        return mean
    sd = write(summary.sd).lstrip("+") if write else format(scale * summary.sd, spec)
    return f"{mean} ± {sd}"


def percent_sd(values: list[float]) -> str:
    text = mean_sd(values, ".1f", 100)
    return text if text == "–" else text + " %"


def interval(bounds, spec: str = ".1f", scale: float = 100) -> str:
    if not bounds or bounds[0] is None:
        return "n/a"
    return f"[{format(scale * bounds[0], spec)}, {format(scale * bounds[1], spec)}]"


def min_max(values: list[float]) -> str:
    if len(values) < 2:
        return "–"
    return f"{100 * min(values):.1f}–{100 * max(values):.1f}"
