"""Which epoch's weights are kept, when training stops early, and what the validation loss averages: all
judged on the validation split.

The homework keeps the epoch with the best validation accuracy; MedMNIST v2 keeps the best validation
AUC (the first epoch to reach it: ``cur_auc > best_auc`` in its train_and_eval_pytorch.py); MedMNIST+ the
lowest validation loss, stopping once it has not improved for 5 epochs. A case names its rule
(``train.select_by``) and, if it wants one, ``train.early_stopping = {patience, metric}``. An epoch replaces
the kept one only when its key is strictly larger, so ties keep the earlier epoch.

MedMNIST+ averages its validation loss over batches (the sum of per-batch mean losses over the number of
batches of 256), so the last, short batch weighs more per image; ``train.val_loss = "batch_mean"`` with
``train.eval_batch_size`` computes it so (``VAL_LOSSES``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A history row → a key where larger is better; accuracy breaks ties by the lower loss (the homework's rule).
SELECT_BY: dict[str, Callable[[dict], tuple]] = {
    "val_acc": lambda row: (row["val_acc"], -row["val_loss"]),
    "val_auc": lambda row: (row["val_auc"] if row["val_auc"] is not None else float("-inf"),),
    "val_loss": lambda row: (-row["val_loss"],),
}
EARLY_STOPPING_KEYS = ("patience", "metric")


def image_mean(losses: np.ndarray, batch_size: int) -> float:
    """Every image weighs the same."""
    return float(np.mean(losses))


def batch_mean(losses: np.ndarray, batch_size: int) -> float:
    """The mean of the per-batch mean losses over consecutive batches of ``batch_size`` images (MedMNIST+)."""
    batches = [losses[i : i + batch_size] for i in range(0, len(losses), batch_size)]
    return float(np.mean([b.mean() for b in batches]))


VAL_LOSSES: dict[str, Callable[[np.ndarray, int], float]] = {"image_mean": image_mean, "batch_mean": batch_mean}


class EarlyStopping:
    """Stops once ``metric`` has not improved for ``patience`` epochs; without a patience it never stops."""

    def __init__(self, options: dict, select_by: str):
        self.patience = options.get("patience")
        self.key = SELECT_BY[options.get("metric", select_by)]
        self.best, self.since = None, 0

    def should_stop(self, row: dict) -> bool:
        if self.patience is None:
            return False
        key = self.key(row)
        if self.best is None or key > self.best:
            self.best, self.since = key, 0
        else:
            self.since += 1
        return self.since >= self.patience


def check(select_by: str, early_stopping: dict) -> list[tuple[str, str]]:
    """(field, problem) for each thing wrong with a case's rule; empty when it is fine."""
    problems = []
    if select_by not in SELECT_BY:
        problems.append(("train.select_by", f"unknown rule {select_by!r}; use one of {', '.join(SELECT_BY)}"))
    for key in early_stopping:
        if key not in EARLY_STOPPING_KEYS:
            problems.append((f"train.early_stopping.{key}", f"not a setting; use {' and '.join(EARLY_STOPPING_KEYS)}"))
    patience = early_stopping.get("patience")
    if "patience" in early_stopping and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        problems.append(
            ("train.early_stopping.patience", f"must be a whole number of epochs, at least 1, got {patience!r}")
        )
    metric = early_stopping.get("metric")
    if "metric" in early_stopping and not (isinstance(metric, str) and metric in SELECT_BY):
        problems.append(
            (
                "train.early_stopping.metric",
                f"unknown metric {early_stopping['metric']!r}; use one of {', '.join(SELECT_BY)}",
            )
        )
    if early_stopping and "patience" not in early_stopping:
        problems.append(("train.early_stopping", "needs a patience, e.g. { patience = 5 }"))
    return problems
