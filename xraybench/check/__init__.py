"""Regression checks: a run against a stored baseline, case by case and metric by metric.

Unlike pytest-benchmark and asv, which treat every number as a time, each metric here
knows its direction (accuracy up is better, time up is worse) and its tolerance (absolute
percentage points for accuracy-like metrics, a ratio for time and memory). A metric is
worse only when its change is both beyond the tolerance (the smallest change that matters)
and statistically significant: over seeds when both sides have at least 3 (Mann–Whitney, or
Welch's t where too few seeds keep a rank test from reaching the level), otherwise a paired
test on the per-image predictions of the seeds both sides ran (sign test / exact McNemar,
DeLong, Wilcoxon — with one seed a side a statement about these trained models, which the
verdict says; with no seed in common, the tolerance alone). A case's quality metrics are one
family held at α = 0.05 by Holm's adjustment; its two times another, each tested over per-seed
values (wall time per seed; each seed's median epoch time, its first epoch left out). Where
the data allow no test, the tolerance alone decides and the verdict says so.

A baseline is data the gate trusts, so ``read_baseline`` recomputes every row's accuracy,
sensitivity, specificity, AUC and best validation accuracy from its own stored predictions:
an edited or corrupted baseline stops the check (exit 2). Cases are matched by id; a changed
configuration hash makes a case "not comparable" rather than "worse", as asv does for an
edited benchmark; a case that was ok in the baseline and is skipped now is "lost", a
regression unless ``allow_missing`` names it. Seeds that trained at a halved batch after
running out of memory are not pooled with the others.

The modules: ``baselines`` (made, saved, read and verified), ``comparability`` (a run and a baseline
refused across profiles, data or images; machine and software differences as warnings),
``metric_verdicts`` (each metric of a case: its tolerance, its test, Holm) and ``verdicts`` (each case,
and the exit code). ``compare``, ``comparable`` and ``environment_warnings`` take the run and the baseline as read
(``results.Run``, ``results.Baseline``) or as the plain dicts of their files.
"""

from xraybench.check.baselines import (
    BASELINE_KIND,
    BASELINE_SCHEMA,
    DEFAULT_DIR,
    SHIPPED_DIR,
    CheckError,
    default_name,
    default_path,
    make_baseline,
    read_baseline,
    save,
    verify,
)
from xraybench.check.comparability import comparable, environment_warnings
from xraybench.check.metric_verdicts import MetricVerdict
from xraybench.check.verdicts import ONE_SEED, REGRESSIONS, CaseVerdict, as_json, compare, exit_code

__all__ = [
    "BASELINE_KIND",
    "BASELINE_SCHEMA",
    "DEFAULT_DIR",
    "ONE_SEED",
    "REGRESSIONS",
    "SHIPPED_DIR",
    "CaseVerdict",
    "CheckError",
    "MetricVerdict",
    "as_json",
    "comparable",
    "compare",
    "default_name",
    "default_path",
    "environment_warnings",
    "exit_code",
    "make_baseline",
    "read_baseline",
    "save",
    "verify",
]
