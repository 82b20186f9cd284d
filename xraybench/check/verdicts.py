"""Verdicts: a run against a baseline, case by case and metric by metric (see the package docstring)."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass

import numpy as np

from xraybench import results, stats
from xraybench.check.baselines import CheckError
from xraybench.results import METRICS, CaseResult, Metric, Tolerance, by_case


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


REGRESSIONS = ("worse", "failed", "missing", "lost")


# ------------------------------------------------------------------------------ compare


def comparable(run: dict, baseline: dict) -> None:
    """Stop (CheckError) where the numbers cannot be compared: another profile (other sizes and epochs), other
    data, or other validation or test images. Machine, precision and software differences are warnings: the same
    experiment on other hardware, whose times and rounding may move."""
    sides = []
    if run.get("profile") != baseline.get("profile"):
        sides.append((f"profile {run.get('profile')}", f"profile {baseline.get('profile')}"))
    if not _same_data(run.get("data") or {}, baseline.get("data") or {}):
        sides.append((_data_label(run), _data_label(baseline)))
    else:
        for split in ("test", "val"):
            mine, theirs = _images(run, split), _images(baseline, split)
            if mine and theirs and mine != theirs:
                sides.append((f"{len(mine[0])} {split} images", f"{len(theirs[0])} other {split} images"))
    if sides:
        this, that = (" and ".join(side[i] for side in sides) for i in (0, 1))
        raise CheckError(
            f"cannot compare: this run is on {this}, the baseline on {that}; check a run made like the "
            f"baseline, or store a baseline of this kind of run (xraybench baseline save RUN_DIR)"
        )


def _same_data(a: dict, b: dict) -> bool:
    """Whether two runs read the same data, as far as their files say across machines: an .npz by MD5 where both
    recorded it; the built-in data by its fingerprint (generator version, seed, sizes, no path); else by kind and
    name (a folder's fingerprint holds file times; its images are compared by id after this)."""
    md5s = [(d.get("medmnist") or {}).get("md5") for d in (a, b)]
    if all(md5s):
        return md5s[0] == md5s[1]
    kinds = [d.get("kind") or str(d.get("fingerprint", "")).split("-", 1)[0] for d in (a, b)]
    if kinds[0] != kinds[1]:
        return False
    return a.get("fingerprint") == b.get("fingerprint") if kinds[0] == "synthetic" else a.get("name") == b.get("name")


def _data_label(doc: dict) -> str:
    data = doc.get("data") or {}
    md5 = (data.get("medmnist") or {}).get("md5")
    return f"{data.get('name') or 'unknown data'} ({f'MD5 {md5[:8]}' if md5 else data.get('fingerprint') or '?'})"


def _images(doc: dict, split: str) -> tuple | None:
    found = ((doc.get("data") or {}).get("images") or {}).get(split)
    return (tuple(found["ids"]), tuple(found["labels"])) if found else None


def compare(
    run: dict, baseline: dict, cli_tolerances: list[Tolerance] = (), allow_missing: list[str] = ()
) -> list[CaseVerdict]:
    """One verdict per case id in the run or the baseline, over all the seeds each side has (after
    ``comparable``). ``allow_missing``: shell-style patterns of case ids that may be missing, skipped or failed now."""
    comparable(run, baseline)
    base, current = by_case(baseline), by_case(run)
    if not set(base) & set(current):
        raise CheckError("the run and the baseline have no case in common: nothing to compare")
    verdicts = []
    for case_id in list(current) + [k for k in base if k not in current]:
        verdict = _case_verdict(case_id, base.get(case_id), current.get(case_id), baseline, run, cli_tolerances)
        if verdict.status in ("missing", "lost", "failed") and any(
            fnmatch.fnmatchcase(case_id, p) for p in allow_missing
        ):
            verdict.status, verdict.note = f"{verdict.status} (allowed)", f"{verdict.note}; --allow-missing"
        verdicts.append(verdict)
    return verdicts


def _case_verdict(
    case_id: str,
    b_case: CaseResult | None,
    r_case: CaseResult | None,
    baseline: dict,
    run: dict,
    cli_tolerances: list[Tolerance],
) -> CaseVerdict:
    b, r = b_case and b_case.rows, r_case and r_case.rows
    seeds = f"{len(b or [])} / {len(r or [])}"
    if b is None:
        return CaseVerdict(case_id, seeds, "new", "not in the baseline")
    if r is None:
        return CaseVerdict(case_id, seeds, "missing", "in the baseline, not in this run")
    if not _same_config(b[0], r[0], baseline.get("schema_version", 1), run.get("schema_version", 1)):
        return CaseVerdict(
            case_id, seeds, "not comparable", f"configuration changed (hash {b[0].get('hash')} → {r[0].get('hash')})"
        )
    if any(x["status"] != "ok" for x in r):
        bad = next(x for x in r if x["status"] != "ok")
        was_ok = all(x["status"] == "ok" for x in b)
        status = (
            ("failed" if bad["status"] == "failed" else "lost")
            if was_ok
            else "still failing"
            if bad["status"] == "failed"
            else bad["status"]
        )
        return CaseVerdict(case_id, seeds, status, bad.get("reason") or "")
    if any(x["status"] != "ok" for x in b):
        return CaseVerdict(case_id, seeds, "fixed", "was not ok in the baseline")
    tolerances = _tolerances(baseline.get("tolerances", {}), r[0].get("tolerances", {}), cli_tolerances)
    full_b, full_r = (
        CaseResult(case_id, [x for x in rows if not x.get("retry")], c.doc) for rows, c in ((b, b_case), (r, r_case))
    )
    retried = [
        f"{side} seed {x.get('seed')}" for side, rows in (("baseline", b), ("run", r)) for x in rows if x.get("retry")
    ]
    if not full_b.rows or not full_r.rows:
        return CaseVerdict(
            case_id,
            seeds,
            "not comparable",
            f"only seeds retried at a halved batch after running out of memory ({', '.join(retried)})",
        )
    verdict = _compare_case(case_id, seeds, full_b, full_r, tolerances)
    shares = all((x.get("metrics") or {}).get("test_confusion") or results.predictions(b_case.doc, x) for x in b)
    was, before = {seed for seed, _ in _degenerate(b_case)}, {x.get("seed") for x in b}
    newly = [
        f"seed {seed} {why}"
        for seed, why in _degenerate(r_case, shares)  # the same seed was not; a seed the
        if seed not in was and (seed in before or not was)
    ]  # baseline lacks, where none of its seeds was
    if newly:  # a model no better than one class for every image is worse, however its accuracy moved
        verdict.status = "worse"
        verdict.note = "; ".join(filter(None, [f"newly degenerate: {'; '.join(newly)}", verdict.note]))
    if retried:
        verdict.note = "; ".join(
            filter(
                None,
                [
                    verdict.note,
                    f"not pooled: {', '.join(retried)} trained at a halved batch after running out of memory",
                ],
            )
        )
    return verdict


def _degenerate(case: CaseResult, shares: bool = True) -> list[tuple]:
    """(seed, why) for each degenerate ok seed of a case; without ``shares``, by its AUC alone (a baseline that kept
    neither confusion matrices nor predictions, schema 1, cannot say which class its seeds called)."""
    if not shares:
        return [
            (r.get("seed"), why)
            for r in case.ok
            if (why := results.degeneracy({**r["metrics"], "test_confusion": None}))
        ]
    return [(row.get("seed"), why) for row in case.ok if (why := results.row_degeneracy(case.doc, row))]


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


def _compare_case(
    case_id: str, seeds: str, base: CaseResult, new: CaseResult, tolerances: dict[str, float]
) -> CaseVerdict:
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
            if v.status == "beyond":  # no test possible (p None): the tolerance alone decides, and the note says so
                v.status = (
                    "not significant"
                    if v.p_value is not None and p > stats.ALPHA
                    else "worse"
                    if worse[v.metric]
                    else "better"
                )
    statuses = {v.status for v in verdicts}
    status = "worse" if "worse" in statuses else "better" if "better" in statuses else "within tolerance"
    notes = [
        f"{v.metric} {v.change}" + (f" (p = {v.p_value:.2g})" if v.p_value is not None else " (no test)")
        for v in verdicts
        if v.status == "worse"
    ]
    untested = sorted({v.test for v in verdicts if v.p_value is None and v.test})
    if min(base.seeds, new.seeds) < 2:
        notes.append(ONE_SEED)
    return CaseVerdict(case_id, seeds, status, "; ".join(notes + untested), verdicts, _churn(base, new))


ONE_SEED = (
    "one seed on a side: the seed variation is unknown, so a quality verdict says whether these trained "
    "models differ, not whether the training did (run --seeds 3 on both sides)"
)


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
    for group, keys in (
        ("machine_info", ("machine", "processor", "cpu_count")),
        ("software", ("device", "torch", "torchvision", "cuda", "gpu")),
    ):
        for key in keys:
            old, new = (baseline.get(group) or {}).get(key), (run.get(group) or {}).get(key)
            if old != new:
                warnings.append(f"warning: {group}.{key} differs: baseline {old!r}, this run {new!r}")
    old, new = results.settings(baseline), results.settings(run)
    for key in ("precision", "deterministic"):
        if old[key] != new[key]:
            warnings.append(
                f"warning: {key} differs: baseline {old[key]}, this run {new[key]} "
                f"(numbers and times are expected to move)"
            )
    return warnings


def exit_code(verdicts: list[CaseVerdict]) -> int:
    return 1 if any(v.status in REGRESSIONS for v in verdicts) else 0


def as_json(verdicts: list[CaseVerdict], warnings: list[str]) -> str:
    return json.dumps(
        {"exit_code": exit_code(verdicts), "warnings": warnings, "cases": [dataclasses.asdict(v) for v in verdicts]},
        indent=1,
    )
