"""Regression checks: a run against a stored baseline, case by case and metric by metric.

Unlike pytest-benchmark and asv, which treat every number as a time, each metric here
knows its direction (accuracy up is better, time up is worse) and its tolerance (absolute
percentage points for accuracy-like metrics, a ratio for time and memory). A metric is
worse only when its change is both beyond the tolerance (the smallest change that matters)
and statistically significant: over seeds when both sides have at least 3 (Mann–Whitney, or
Welch's t where too few seeds keep a rank test from reaching the level), otherwise a paired
test on the per-image predictions of the seeds both sides ran (sign test / exact McNemar,
DeLong, Wilcoxon; with no seed in common, the tolerance alone), at α = 0.05 shared by the quality metrics of a case (Bonferroni); times follow asv (ratio beyond the factor and Mann–Whitney p < 0.002 over
per-epoch times). Where the data allow no test (an old baseline without predictions, too few
samples), the tolerance alone decides and the verdict says so. Cases are matched by id; a
changed configuration hash makes a case "not comparable" rather than "worse", as asv does
for an edited benchmark.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xraybench import results, stats
from xraybench.results import METRICS, CaseResult, Metric, Tolerance, by_case

BASELINE_KIND = "xraybench-baseline"
BASELINE_SCHEMA = 2  # 2: every seed's metrics, per-epoch times and per-image predictions
TIME_ALPHA = 0.002  # asv's threshold for times


class CheckError(ValueError):
    """The comparison cannot be made (unreadable baseline, bad tolerance, nothing in common)."""


@dataclass
class MetricVerdict:
    metric: str
    baseline: float  # mean over the baseline's seeds
    current: float  # mean over this run's seeds
    change: str
    status: str  # better, worse, within tolerance, not significant (beyond the tolerance, not beyond the noise)
    test: str = ""  # which test decided, or why none could
    p_value: float | None = None


@dataclass
class CaseVerdict:
    id: str
    seeds: str  # "baseline / run", e.g. "1 / 3"
    status: str  # better, worse, within tolerance, failed, still failing, fixed, new, missing, not comparable, skipped
    note: str = ""
    metrics: list[MetricVerdict] = dataclasses.field(default_factory=list)
    churn: float | None = None  # share of test images whose predicted label flipped against the baseline


REGRESSIONS = ("worse", "failed", "missing")


# ----------------------------------------------------------------------------- baselines


def make_baseline(doc: dict, name: str, tolerances: dict[str, str] | None = None) -> dict:
    """A baseline from a run: per case and seed its status, hash, checked metrics, per-epoch times and
    per-image predictions (with the run's image ids and labels, once)."""
    return {
        "kind": BASELINE_KIND, "schema_version": BASELINE_SCHEMA, "name": name, "created": results.now(),
        "run_id": doc.get("run_id"), "profile": doc.get("profile"), "machine_info": doc.get("machine_info"),
        "software": doc.get("software"), "commit_info": doc.get("commit_info"),
        "settings": doc.get("settings") or {},
        "data": {k: v for k, v in (doc.get("data") or {}).items() if k != "summary"},
        "tolerances": tolerances or {},
        "cases": [{"id": r["id"], "seed": r.get("seed"), "hash": r.get("hash"), "status": r["status"],
                   "metrics": {k: (r.get("metrics") or {}).get(k) for k in METRICS},
                   "epoch_times": [h["epoch_time_s"] for h in r.get("history", []) if "epoch_time_s" in h],
                   **({"predictions": r["predictions"]} if r.get("predictions") else {}),
                   **({"images": r["images"]} if r.get("images") else {})} for r in doc["cases"]],
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
    """One verdict per case id in the run or the baseline, over all the seeds each side has."""
    base, current = by_case(baseline), by_case(run)
    if not set(base) & set(current):
        raise CheckError("the run and the baseline have no case in common: nothing to compare")
    verdicts = []
    for case_id in list(current) + [k for k in base if k not in current]:
        b_case, r_case = base.get(case_id), current.get(case_id)
        b, r = b_case and b_case.rows, r_case and r_case.rows
        seeds = f"{len(b or [])} / {len(r or [])}"
        if b is None:
            verdicts.append(CaseVerdict(case_id, seeds, "new", "not in the baseline"))
        elif r is None:
            verdicts.append(CaseVerdict(case_id, seeds, "missing", "in the baseline, not in this run"))
        elif not _same_config(b[0], r[0], baseline.get("schema_version", 1), run.get("schema_version", 1)):
            verdicts.append(CaseVerdict(case_id, seeds, "not comparable",
                                        f"configuration changed (hash {b[0].get('hash')} → {r[0].get('hash')})"))
        elif any(x["status"] != "ok" for x in r):
            bad = next(x for x in r if x["status"] != "ok")
            newly = all(x["status"] == "ok" for x in b) and bad["status"] == "failed"
            status = "failed" if newly else "still failing" if bad["status"] == "failed" else bad["status"]
            verdicts.append(CaseVerdict(case_id, seeds, status, bad.get("reason") or ""))
        elif any(x["status"] != "ok" for x in b):
            verdicts.append(CaseVerdict(case_id, seeds, "fixed", "was not ok in the baseline"))
        else:
            tolerances = _tolerances(baseline.get("tolerances", {}), r[0].get("tolerances", {}), cli_tolerances)
            verdicts.append(_compare_case(case_id, seeds, b_case, r_case, tolerances))
    return verdicts


def _same_config(base: dict, row: dict, baseline_schema: int, run_schema: int) -> bool:
    """Same configuration hash. Schema 1 hashed the configuration with its seed in it: a schema-1
    baseline is matched on the run row's configuration hashed that way, a schema-1 run the other way."""
    if base.get("hash") == row.get("hash"):
        return True
    if "config" not in row or baseline_schema == run_schema:
        return False
    rehash = results.legacy_config_hash if baseline_schema < 2 else results.config_hash
    return base.get("hash") == rehash(row["config"])


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


def _compare_case(case_id: str, seeds: str, base: CaseResult, new: CaseResult, tolerances: dict[str, float]) -> CaseVerdict:
    """Every metric of one case. The quality metrics (accuracy, AUC, loss, …) are one family: each is held
    to α / (their number), Bonferroni, so that a case is not flagged 6 times as often as one metric is."""
    verdicts = []
    quality = [name for name, m in METRICS.items() if m.test == "seeds" and base.values(name) and new.values(name)]
    family_alpha = stats.ALPHA / max(1, len(quality))
    for name, metric in METRICS.items():
        b, n = base.values(name), new.values(name)
        if not b or not n:
            continue
        mean_b, mean_n = float(np.mean(b)), float(np.mean(n))
        if metric.unit == "pp":
            change = 100 * (mean_n - mean_b)
            text = f"{change:+.1f} pp"
        else:
            change = 100 * (mean_n - mean_b) / mean_b if mean_b else 0.0
            text = f"{change:+.0f} %"
        gain = change if metric.higher_is_better else -change
        status, test, p = "within tolerance", "", None
        if abs(gain) > tolerances[name]:
            worse = gain < 0
            test, p, alpha = _significance(metric, base, new, worse, family_alpha)
            if p is None or p <= alpha:
                status = "worse" if worse else "better"
            else:
                status = "not significant"
        verdicts.append(MetricVerdict(name, mean_b, mean_n, text, status, test, p))
    statuses = {v.status for v in verdicts}
    status = "worse" if "worse" in statuses else "better" if "better" in statuses else "within tolerance"
    notes = [f"{v.metric} {v.change}" + (f" (p = {v.p_value:.2g})" if v.p_value is not None else " (no test)")
             for v in verdicts if v.status == "worse"]
    untested = sorted({v.test for v in verdicts if v.p_value is None and v.test})
    return CaseVerdict(case_id, seeds, status, "; ".join(notes + untested), verdicts, _churn(base, new))


def _significance(metric: Metric, base: CaseResult, new: CaseResult, worse: bool,
                  alpha: float) -> tuple[str, float | None, float]:
    """(which test, its one-sided p in the direction of the change or None, the α it is held to)."""
    higher = metric.higher_is_better if worse else not metric.higher_is_better  # "worse" direction for the test
    if metric.test == "none":
        return "no test for this metric: tolerance only", None, alpha
    if metric.test == "times":
        b, n = base.epoch_times(), new.epoch_times()
        if not b or not n or stats.smallest_mann_whitney_p(len(b), len(n)) > TIME_ALPHA:
            return f"too few per-epoch times ({len(b)} / {len(n)}) for p < {TIME_ALPHA}: tolerance only", None, TIME_ALPHA
        return "Mann–Whitney over per-epoch times", stats.mann_whitney_worse(b, n, higher), TIME_ALPHA
    b, n = base.values(metric.name), new.values(metric.name)
    if len(b) >= 3 and len(n) >= 3:
        if stats.smallest_mann_whitney_p(len(b), len(n)) <= alpha:
            return "Mann–Whitney over seeds", stats.mann_whitney_worse(b, n, higher), alpha
        # Too few seeds for a rank test to reach α (3 a side: p ≥ 0.05): Welch's t over the seeds.
        return f"Welch's t over seeds ({len(b)} / {len(n)})", stats.welch_worse(b, n, higher), alpha
    split = "val" if metric.name == "best_val_acc" else "test"
    sb, sn = base.scores(split), new.scores(split)
    if sb is None or sn is None or sb.ids != sn.ids:
        why = "the baseline has" if sb is None else "this run has" if sn is None else "the two sides have"
        return (f"{why} {'no per-image predictions' if sb is None or sn is None else 'different test images'} and "
                f"fewer than 3 seeds a side: tolerance only"), None, alpha
    index_n, index_b = stats.pair_seeds(sn.seeds, sb.seeds, shared_only=True)
    if not index_b:  # two different seeds differ on many images: a paired test would call seed noise a change
        return ("no seed in common and fewer than 3 seeds a side: seed noise cannot be told from a change; "
                "tolerance only (run --seeds 3)"), None, alpha
    test, p = _paired_test(metric.name, sb.subset(index_b), sn.subset(index_n), higher)
    return test, p, alpha


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


def _churn(base: CaseResult, new: CaseResult) -> float | None:
    """Share of test images whose predicted label differs from the baseline's: per seed both sides
    ran, averaged; without a common seed, between the seed-mean predictions."""
    sb, sn = base.scores("test"), new.scores("test")
    if sb is None or sn is None or sb.ids != sn.ids:
        return None
    index_n, index_b = stats.pair_seeds(sn.seeds, sb.seeds, shared_only=True)
    if index_b:
        return float(np.mean([((sb.probs[i] >= 0.5) != (sn.probs[j] >= 0.5)).mean() for i, j in zip(index_b, index_n)]))
    return float(((sb.probs.mean(axis=0) >= 0.5) != (sn.probs.mean(axis=0) >= 0.5)).mean())


def environment_warnings(run: dict, baseline: dict) -> list[str]:
    """Differences of machine or software that make times (and maybe numbers) differ."""
    warnings = []
    for group, keys in (("machine_info", ("machine", "processor", "cpu_count")),
                        ("software", ("device", "torch", "torchvision", "cuda", "gpu"))):
        for key in keys:
            old, new = (baseline.get(group) or {}).get(key), (run.get(group) or {}).get(key)
            if old != new:
                warnings.append(f"warning: {group}.{key} differs: baseline {old!r}, this run {new!r}")
    old, new = results.settings(baseline), results.settings(run)
    for key in ("precision", "deterministic"):
        if old[key] != new[key]:
            warnings.append(f"warning: {key} differs: baseline {old[key]}, this run {new[key]} "
                            f"(numbers and times are expected to move)")
    return warnings


def exit_code(verdicts: list[CaseVerdict]) -> int:
    return 1 if any(v.status in REGRESSIONS for v in verdicts) else 0


def as_json(verdicts: list[CaseVerdict], warnings: list[str]) -> str:
    return json.dumps({"exit_code": exit_code(verdicts), "warnings": warnings,
                       "cases": [dataclasses.asdict(v) for v in verdicts]}, indent=1)


VERDICT_HEADERS = ["case", "seeds (baseline / run)", "status", "changes", "churn", "note"]


def verdict_rows(verdicts: list[CaseVerdict]) -> list[list[str]]:
    """One row per case for a terminal or report table; changes list the metrics that moved out of tolerance
    first (with the test's p), then the test accuracy."""
    rows = []
    for v in verdicts:
        shown = [m for m in v.metrics if m.status != "within tolerance"] or \
                [m for m in v.metrics if m.metric == "test_acc"]
        changes = ", ".join(f"{m.metric} {m.change} ({m.status}{_p(m)})" for m in shown)
        churn = "–" if v.churn is None else f"{100 * v.churn:.1f} %"
        rows.append([v.id, v.seeds, v.status, changes, churn, v.note])
    return rows


def _p(m: MetricVerdict) -> str:
    return "" if m.p_value is None else f", p = {m.p_value:.2g}"
