"""Regression checks: a run against a stored baseline, case by case and metric by metric.

Unlike pytest-benchmark and asv, which treat every number as a time, each metric here
knows its direction (accuracy up is better, time up is worse) and its tolerance (absolute
percentage points for accuracy-like metrics, a ratio for time and memory). Cases are
matched by id and seed; a changed configuration hash makes a case "not comparable"
rather than "worse", as asv does for an edited benchmark.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from xraybench import results

BASELINE_KIND = "xraybench-baseline"
BASELINE_SCHEMA = 1


class CheckError(ValueError):
    """The comparison cannot be made (unreadable baseline, bad tolerance, nothing in common)."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    unit: str  # "pp": absolute percentage points of a 0–1 value; "%": relative change
    tolerance: float  # default allowed worsening, in ``unit``


METRICS = {m.name: m for m in [
    Metric("test_acc", True, "pp", 2.0),
    Metric("test_auc", True, "pp", 2.0),
    Metric("test_sensitivity", True, "pp", 3.0),
    Metric("test_specificity", True, "pp", 3.0),
    Metric("best_val_acc", True, "pp", 2.0),
    Metric("test_loss", False, "%", 10.0),
    Metric("wall_time_s", False, "%", 25.0),
    Metric("s_per_epoch", False, "%", 25.0),
    Metric("peak_memory_mb", False, "%", 20.0),
]}
ALIASES = {"wall_time": "wall_time_s", "peak_memory": "peak_memory_mb", "acc": "test_acc", "auc": "test_auc"}


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may worsen: parsed from strings like ``test_acc:-2pp`` or ``wall_time:+25%``."""

    metric: str
    amount: float
    unit: str

    @classmethod
    def parse(cls, spec: str) -> "Tolerance":
        match = re.fullmatch(r"\s*([a-z_]+)\s*:\s*([+-]?)(\d+(?:\.\d+)?)\s*(pp|%)\s*", spec)
        if not match:
            raise CheckError(f"tolerance {spec!r}: expected METRIC:AMOUNT with pp or %, e.g. test_acc:-2pp or "
                             f"wall_time:+25%")
        name, sign, amount, unit = match.groups()
        name = ALIASES.get(name, name)
        if name not in METRICS:
            raise CheckError(f"tolerance {spec!r}: unknown metric {name!r}; known: {', '.join(METRICS)}")
        metric = METRICS[name]
        if unit != metric.unit:
            raise CheckError(f"tolerance {spec!r}: {name} takes {metric.unit}, not {unit}")
        if sign and (sign == "-") != metric.higher_is_better:
            raise CheckError(f"tolerance {spec!r}: {name} is {'higher' if metric.higher_is_better else 'lower'} "
                             f"is better, so its allowed worsening is {'-' if metric.higher_is_better else '+'}"
                             f"{amount}{unit}")
        return cls(name, float(amount), unit)


@dataclass
class MetricVerdict:
    metric: str
    baseline: float
    current: float
    change: str
    status: str  # better, worse, within tolerance


@dataclass
class CaseVerdict:
    id: str
    seed: int | None
    status: str  # better, worse, within tolerance, failed, fixed, new, missing, not comparable, skipped
    note: str = ""
    metrics: list[MetricVerdict] = dataclasses.field(default_factory=list)


REGRESSIONS = ("worse", "failed", "missing")


# ----------------------------------------------------------------------------- baselines


def make_baseline(doc: dict, name: str, tolerances: dict[str, str] | None = None) -> dict:
    """A baseline from a run: per case its status, hash and the checked metrics."""
    return {
        "kind": BASELINE_KIND, "schema_version": BASELINE_SCHEMA, "name": name, "created": results.now(),
        "run_id": doc.get("run_id"), "profile": doc.get("profile"), "machine_info": doc.get("machine_info"),
        "software": doc.get("software"), "commit_info": doc.get("commit_info"),
        "data": {k: v for k, v in (doc.get("data") or {}).items() if k != "summary"},
        "tolerances": tolerances or {},
        "cases": [{"id": r["id"], "seed": r.get("seed"), "hash": r.get("hash"), "status": r["status"],
                   "metrics": {k: (r.get("metrics") or {}).get(k) for k in METRICS}} for r in doc["cases"]],
    }


def default_name(doc: dict) -> str:
    return f"{doc.get('profile')}-{(doc.get('software') or {}).get('device', 'cpu')}"


def read_baseline(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckError(f"{path}: no baseline file here (xraybench baseline save RUN_DIR makes one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckError(f"{path}: not a readable baseline ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != BASELINE_KIND or not isinstance(doc.get("cases"), list):
        raise CheckError(f"{path}: not an xraybench baseline (no kind {BASELINE_KIND!r} with a list of cases)")
    if doc.get("schema_version", 0) > BASELINE_SCHEMA:
        raise CheckError(f"{path}: baseline schema {doc['schema_version']} is newer than this xraybench reads")
    for i, case in enumerate(doc["cases"]):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str) or not isinstance(case.get("metrics"), dict):
            raise CheckError(f"{path}: cases[{i}] needs an 'id' and 'metrics'")
    return doc


# ------------------------------------------------------------------------------ compare


def compare(run: dict, baseline: dict, cli_tolerances: list[Tolerance] = ()) -> list[CaseVerdict]:
    """Verdicts for every case in the run or the baseline."""
    base = {(c["id"], c.get("seed")): c for c in baseline["cases"]}
    current = {(r["id"], r.get("seed")): r for r in run["cases"]}
    if not set(base) & set(current):
        raise CheckError("the run and the baseline have no case in common: nothing to compare")
    verdicts = []
    for key in list(current) + [k for k in base if k not in current]:
        b, r = base.get(key), current.get(key)
        if b is None:
            verdicts.append(CaseVerdict(*key, "new", "not in the baseline"))
        elif r is None:
            verdicts.append(CaseVerdict(*key, "missing", "in the baseline, not in this run"))
        elif b.get("hash") != r.get("hash"):
            verdicts.append(CaseVerdict(*key, "not comparable",
                                        f"configuration changed (hash {b.get('hash')} → {r.get('hash')})"))
        elif r["status"] != "ok":
            newly = b["status"] == "ok" and r["status"] == "failed"
            verdicts.append(CaseVerdict(*key, "failed" if newly else r["status"], r.get("reason") or ""))
        elif b["status"] != "ok":
            verdicts.append(CaseVerdict(*key, "fixed", f"was {b['status']} in the baseline"))
        else:
            tolerances = _tolerances(baseline.get("tolerances", {}), r.get("tolerances", {}), cli_tolerances)
            verdicts.append(_compare_metrics(key, b["metrics"], r.get("metrics") or {}, tolerances))
    return verdicts


def _tolerances(stored: dict, declared: dict, cli: list[Tolerance]) -> dict[str, float]:
    """Defaults, then the baseline's, then the case declaration's, then the command line's."""
    amounts = {name: m.tolerance for name, m in METRICS.items()}
    for source in (stored, declared):
        for name, spec in source.items():
            t = Tolerance.parse(f"{name}:{spec}")
            amounts[t.metric] = t.amount
    for t in cli:
        amounts[t.metric] = t.amount
    return amounts


def _compare_metrics(key, base: dict, new: dict, tolerances: dict[str, float]) -> CaseVerdict:
    verdicts = []
    for name, metric in METRICS.items():
        b, n = base.get(name), new.get(name)
        if b is None or n is None:
            continue
        if metric.unit == "pp":
            change = 100 * (n - b)
            text = f"{change:+.1f} pp"
        else:
            change = 100 * (n - b) / b if b else 0.0
            text = f"{change:+.0f} %"
        gain = change if metric.higher_is_better else -change
        status = "worse" if gain < -tolerances[name] else "better" if gain > tolerances[name] else "within tolerance"
        verdicts.append(MetricVerdict(name, b, n, text, status))
    statuses = {v.status for v in verdicts}
    status = "worse" if "worse" in statuses else "better" if "better" in statuses else "within tolerance"
    worse = ", ".join(f"{v.metric} {v.change}" for v in verdicts if v.status == "worse")
    return CaseVerdict(*key, status, worse, verdicts)


def environment_warnings(run: dict, baseline: dict) -> list[str]:
    """Differences of machine or software that make times (and maybe numbers) differ."""
    warnings = []
    for group, keys in (("machine_info", ("machine", "processor", "cpu_count")),
                        ("software", ("device", "torch", "torchvision", "cuda", "gpu"))):
        for key in keys:
            old, new = (baseline.get(group) or {}).get(key), (run.get(group) or {}).get(key)
            if old != new:
                warnings.append(f"warning: {group}.{key} differs: baseline {old!r}, this run {new!r}")
    return warnings


def exit_code(verdicts: list[CaseVerdict]) -> int:
    return 1 if any(v.status in REGRESSIONS for v in verdicts) else 0


def as_json(verdicts: list[CaseVerdict], warnings: list[str]) -> str:
    return json.dumps({"exit_code": exit_code(verdicts), "warnings": warnings,
                       "cases": [dataclasses.asdict(v) for v in verdicts]}, indent=1)


VERDICT_HEADERS = ["case", "status", "changes", "note"]


def verdict_rows(verdicts: list[CaseVerdict]) -> list[list[str]]:
    """One row per case for a terminal or report table; changes list the metrics that moved out of tolerance
    first, then the test accuracy."""
    rows = []
    for v in verdicts:
        shown = [m for m in v.metrics if m.status != "within tolerance"] or \
                [m for m in v.metrics if m.metric == "test_acc"]
        changes = ", ".join(f"{m.metric} {m.change} ({m.status})" for m in shown)
        label = v.id + (f" (seed {v.seed})" if v.seed else "")
        rows.append([label, v.status, changes, v.note[:80]])
    return rows
