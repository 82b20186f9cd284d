"""A run against a baseline, case by case: new, missing, failed, not comparable, or the verdict of its metrics
(``metric_verdicts``), with seeds retried after running out of memory left out of the pool and a newly degenerate
model called worse; and what the verdicts add up to: the exit code and the JSON report (see the package
docstring)."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass

import numpy as np

from xraybench import results, stats
from xraybench.check.baselines import CheckError
from xraybench.check.comparability import comparable
from xraybench.check.metric_verdicts import MetricVerdict, metric_tolerances, metric_verdicts
from xraybench.results import Baseline, CaseResult, Row, Run, Tolerance, by_case


@dataclass
class CaseVerdict:
    id: str
    seeds: str  # "baseline / run", e.g. "1 / 3"
    status: str  # better, worse, within tolerance, failed, still failing, fixed, new, missing, not comparable, skipped
    note: str = ""
    metrics: list[MetricVerdict] = dataclasses.field(default_factory=list)
    churn: float | None = None  # share of test images whose predicted label flipped against the baseline


REGRESSIONS = ("worse", "failed", "missing", "lost")

ONE_SEED = (
    "one seed on a side: the seed variation is unknown, so a quality verdict says whether these trained "
    "models differ, not whether the training did (run --seeds 3 on both sides)"
)


def compare(
    run: Run | dict, baseline: Run | dict, cli_tolerances: list[Tolerance] = (), allow_missing: list[str] = ()
) -> list[CaseVerdict]:
    """One verdict per case id in the run or the baseline, over all the seeds each side has (after
    ``comparable``). ``allow_missing``: shell-style patterns of case ids that may be missing, skipped or failed now."""
    run, baseline = results.coerce(run), results.coerce(baseline, "the baseline given")
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
    baseline: Run,
    run: Run,
    cli_tolerances: list[Tolerance],
) -> CaseVerdict:
    b, r = b_case and b_case.rows, r_case and r_case.rows
    seeds = f"{len(b or [])} / {len(r or [])}"
    by_status = _status_verdict(case_id, seeds, b, r, baseline, run)
    if by_status is not None:
        return by_status
    stored = baseline.tolerances if isinstance(baseline, Baseline) else {}  # a results file stores none
    tolerances = metric_tolerances(stored, r[0].tolerances or {}, cli_tolerances)
    full_b, full_r = (
        CaseResult(case_id, [x for x in rows if not x.retry], c.run) for rows, c in ((b, b_case), (r, r_case))
    )
    retried = [f"{side} seed {x.seed}" for side, rows in (("baseline", b), ("run", r)) for x in rows if x.retry]
    if not full_b.rows or not full_r.rows:
        return CaseVerdict(
            case_id,
            seeds,
            "not comparable",
            f"only seeds retried at a halved batch after running out of memory ({', '.join(retried)})",
        )
    verdict = _compare_case(case_id, seeds, full_b, full_r, tolerances)
    newly = _newly_degenerate(b_case, r_case)
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


def _status_verdict(
    case_id: str, seeds: str, b: list[Row] | None, r: list[Row] | None, baseline: Run, run: Run
) -> CaseVerdict | None:
    """The verdict a case gets before any metric is compared — new, missing, not comparable (its configuration
    changed), failed, lost, still failing, fixed — or None where both sides have it, alike and finished."""
    if b is None:
        return CaseVerdict(case_id, seeds, "new", "not in the baseline")
    if r is None:
        return CaseVerdict(case_id, seeds, "missing", "in the baseline, not in this run")
    if not _same_config(b[0], r[0], baseline.schema_version, run.schema_version):
        return CaseVerdict(case_id, seeds, "not comparable", f"configuration changed (hash {b[0].hash} → {r[0].hash})")
    if not all(x.ok for x in r):
        bad = next(x for x in r if not x.ok)
        was_ok = all(x.ok for x in b)
        status = (
            ("failed" if bad.status == "failed" else "lost")
            if was_ok
            else "still failing"
            if bad.status == "failed"
            else bad.status
        )
        return CaseVerdict(case_id, seeds, status, bad.reason or "")
    if not all(x.ok for x in b):
        return CaseVerdict(case_id, seeds, "fixed", "was not ok in the baseline")
    return None


def _same_config(base: Row, row: Row, baseline_schema: int, run_schema: int) -> bool:
    """Same configuration hash. Schema 1 hashed the configuration with its seed in it: a schema-1
    baseline is matched on the run row's configuration hashed that way, a schema-1 run the other way."""
    if base.hash == row.hash:
        return True
    if not row.config or baseline_schema == run_schema:  # no configuration recorded: nothing to rehash
        return False
    rehash = results.legacy_config_hash if baseline_schema < 2 else results.config_hash
    return base.hash == rehash(row.config)


def _compare_case(
    case_id: str, seeds: str, base: CaseResult, new: CaseResult, tolerances: dict[str, float]
) -> CaseVerdict:
    """A finished case's verdict from its metrics' (``metric_verdicts``): worse where one is, else better where
    one is; the note names what got worse, why a metric could not be tested, and a side with one seed."""
    verdicts = metric_verdicts(base, new, tolerances)
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


def _newly_degenerate(base: CaseResult, run: CaseResult) -> list[str]:
    """The run's degenerate seeds ("seed S why") that the baseline's were not: the same seed was not, or, for a
    seed the baseline lacks, none of the baseline's seeds was."""
    b = base.rows
    shares = all(x.metrics.test_confusion is not None or results.predictions(base.run, x) for x in b)
    was, before = {seed for seed, _ in _degenerate(base)}, {x.seed for x in b}
    return [
        f"seed {seed} {why}"
        for seed, why in _degenerate(run, shares)
        if seed not in was and (seed in before or not was)
    ]


def _degenerate(case: CaseResult, shares: bool = True) -> list[tuple]:
    """(seed, why) for each degenerate ok seed of a case; without ``shares``, by its AUC alone (a baseline that kept
    neither confusion matrices nor predictions, schema 1, cannot say which class its seeds called)."""
    if not shares:
        return [
            (r.seed, why)
            for r in case.ok
            if (why := results.degeneracy(r.metrics.model_copy(update={"test_confusion": None})))
        ]
    return [(row.seed, why) for row in case.ok if (why := results.row_degeneracy(case.run, row))]


def _churn(base: CaseResult, new: CaseResult) -> float | None:
    """Share of test images whose predicted label differs from the baseline's: per seed both sides
    ran, averaged; without a common seed, between the seed-mean predictions."""
    sb, sn = base.scores("test"), new.scores("test")
    if sb is None or sn is None or sb.ids != sn.ids:
        return None
    index_n, index_b = stats.pair_seeds(sn.seeds, sb.seeds, shared_only=True)
    if index_b:
        said_b, said_n = results.says_pneumonia(sb.probs), results.says_pneumonia(sn.probs)
        return float(np.mean([(said_b[i] != said_n[j]).mean() for i, j in zip(index_b, index_n)]))
    said_b, said_n = results.says_pneumonia(sb.probs.mean(axis=0)), results.says_pneumonia(sn.probs.mean(axis=0))
    return float((said_b != said_n).mean())


def exit_code(verdicts: list[CaseVerdict]) -> int:
    return 1 if any(v.status in REGRESSIONS for v in verdicts) else 0


def as_json(verdicts: list[CaseVerdict], warnings: list[str]) -> str:
    return json.dumps(
        {"exit_code": exit_code(verdicts), "warnings": warnings, "cases": [dataclasses.asdict(v) for v in verdicts]},
        indent=1,
    )
