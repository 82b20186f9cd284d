"""Numbers in, numbers out — no words, no results files: intervals (``intervals``), DeLong's AUC variance
(``delong``), tests of these trained models on shared images and the seed-pairing rule (``paired``),
training procedures against each other (``procedure``), a run against its baseline (``regression``) or
against a published value (``reproduction``), when a test declares a difference and its direction
(``decision``), the four outcomes of a comparison (``outcomes``) and the levels of repeated looks
(``sequential``), operating points and calibration (``operating``), what a grid search finds (``selection``).
The names most callers need are here, as ``stats.wilson`` or ``stats.compare_procedures``, each imported with
its module when first used: ``decision`` needs no scipy, so the results schema reads the decision threshold
without it."""

import importlib

_HOMES = {
    "xraybench.stats.decision": ("ALPHA", "THRESHOLD", "accuracy", "direction", "says_pneumonia", "significant"),
    "xraybench.stats.intervals": (
        "CONFIDENCE",
        "DF_QUANTILE",
        "POWER",
        "SeedSummary",
        "Z",
        "accuracy_interval",
        "across_seeds",
        "auc_interval",
        "bootstrap_interval",
        "clopper_pearson",
        "confusion_intervals",
        "delong_interval",
        "detectable_difference",
        "resolution",
        "rounded",
        "test_intervals",
        "welch_t",
        "wilson",
    ),
    "xraybench.stats.outcomes": ("MIN_SEEDS", "OUTCOMES", "Verdict", "decide", "untested"),
    "xraybench.stats.sequential": ("nominal_levels", "spent"),
    "xraybench.stats.paired": (
        "BeatProbability",
        "PairedAccuracy",
        "PairedAuc",
        "SeedScores",
        "beat_probability",
        "mcnemar_exact",
        "pair_seeds",
        "paired_accuracy",
        "paired_auc",
        "paired_loss",
        "sign_test",
    ),
    "xraybench.stats.procedure": (
        "BEAT_MIN_SEEDS",
        "Difference",
        "ProcedureComparison",
        "accuracy_difference",
        "accuracy_parts",
        "auc_difference",
        "auc_parts",
        "compare_procedures",
        "holm",
        "seed_difference",
    ),
    "xraybench.stats.regression": ("mann_whitney_worse", "smallest_mann_whitney_p", "welch_worse"),
    "xraybench.stats.reproduction": ("Reproduction", "against_published"),
    "xraybench.stats.selection": ("expected_max",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    """A name of the list below, or a submodule (``stats.delong``), imported when first asked for."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists; something it imports does not
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = sorted(_HOME)
