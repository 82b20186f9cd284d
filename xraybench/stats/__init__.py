"""Numbers in, numbers out — no words, no results files: intervals (``intervals``), DeLong's AUC variance
(``delong``), tests of these trained models on shared images and the seed-pairing rule (``paired``),
training procedures against each other (``procedure``), a run against its baseline (``regression``) or
against a published value (``reproduction``),
operating points and calibration (``operating``), what a grid search finds (``selection``). The names
most callers need are here, as ``stats.wilson`` or ``stats.compare``."""

from xraybench.stats.intervals import (ALPHA, CONFIDENCE, POWER, Z, SeedSummary, accuracy_interval, across_seeds,
                                       auc_interval,
                                       bootstrap_interval, delong_interval, clopper_pearson, confusion_intervals,
                                       detectable_difference, resolution, rounded, test_intervals, wilson)
from xraybench.stats.paired import (BeatProbability, PairedAccuracy, PairedAuc, SeedScores, beat_probability,
                                    mcnemar_exact, pair_seeds, paired_accuracy, paired_auc, paired_loss, sign_test)
from xraybench.stats.procedure import (BEAT_MIN_SEEDS, Comparison, Difference, accuracy_difference, accuracy_parts,
                                       auc_difference, auc_parts, compare, holm)
from xraybench.stats.reproduction import Reproduction, against_published
from xraybench.stats.regression import mann_whitney_worse, smallest_mann_whitney_p, welch_worse
from xraybench.stats.selection import expected_max

__all__ = ["ALPHA", "CONFIDENCE", "POWER", "Z", "SeedSummary", "accuracy_interval", "across_seeds", "auc_interval",
           "bootstrap_interval", "delong_interval", "clopper_pearson", "confusion_intervals", "detectable_difference", "resolution",
           "rounded", "test_intervals", "wilson",
           "BEAT_MIN_SEEDS", "BeatProbability", "Comparison", "Difference", "PairedAccuracy", "PairedAuc",
           "SeedScores", "accuracy_difference", "accuracy_parts", "auc_difference", "auc_parts", "beat_probability",
           "compare", "holm", "mcnemar_exact", "pair_seeds", "paired_accuracy", "paired_auc", "paired_loss",
           "sign_test",
           "Reproduction", "against_published",
           "mann_whitney_worse", "smallest_mann_whitney_p", "welch_worse",
           "expected_max"]
