"""The checked metrics: what each means for the check and for the tolerances a case file declares — its
direction, its unit and its default tolerance — and tolerances parsed from strings like ``test_acc:-2pp``."""

from __future__ import annotations

import re
from dataclasses import dataclass


class ToleranceError(ValueError):
    """A tolerance string that does not parse or does not fit its metric."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    unit: str  # "pp": absolute percentage points of a 0–1 value; "%": relative change
    tolerance: float  # default allowed worsening, in ``unit``
    test: str = "seeds"  # "seeds": Mann–Whitney or a paired test; "times": per-epoch times; "none"


METRICS = {
    m.name: m
    for m in [
        Metric("test_acc", True, "pp", 2.0),
        Metric("test_auc", True, "pp", 2.0),
        Metric("test_sensitivity", True, "pp", 3.0),
        Metric("test_specificity", True, "pp", 3.0),
        Metric("best_val_acc", True, "pp", 2.0),
        Metric("test_loss", False, "%", 10.0),
        Metric("wall_time_s", False, "%", 25.0, "times"),
        Metric("s_per_epoch", False, "%", 25.0, "times"),
        Metric("peak_memory_mb", False, "%", 20.0, "none"),
    ]
}
ALIASES = {"wall_time": "wall_time_s", "peak_memory": "peak_memory_mb", "acc": "test_acc", "auc": "test_auc"}


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may worsen: parsed from strings like ``test_acc:-2pp`` or ``wall_time:+25%``."""

    metric: str
    amount: float
    unit: str

    @classmethod
    def parse(cls, spec: str) -> Tolerance:
        match = re.fullmatch(r"\s*([a-z_]+)\s*:\s*([+-]?)(\d+(?:\.\d+)?)\s*(pp|%)\s*", spec)
        if not match:
            raise ToleranceError(
                f"tolerance {spec!r}: expected METRIC:AMOUNT with pp or %, e.g. test_acc:-2pp or wall_time:+25%"
            )
        name, sign, amount, unit = match.groups()
        name = ALIASES.get(name, name)
        if name not in METRICS:
            raise ToleranceError(f"tolerance {spec!r}: unknown metric {name!r}; known: {', '.join(METRICS)}")
        metric = METRICS[name]
        if unit != metric.unit:
            raise ToleranceError(f"tolerance {spec!r}: {name} takes {metric.unit}, not {unit}")
        if sign and (sign == "-") != metric.higher_is_better:
            raise ToleranceError(
                f"tolerance {spec!r}: {name} is {'higher' if metric.higher_is_better else 'lower'} "
                f"is better, so its allowed worsening is {'-' if metric.higher_is_better else '+'}"
                f"{amount}{unit}"
            )
        return cls(name, float(amount), unit)
