"""Which epoch's weights are kept, and when training stops early: both judged on the validation split.

The homework keeps the epoch with the best validation accuracy; MedMNIST v2 keeps the best validation
AUC; MedMNIST+ the lowest validation loss, stopping once it has not improved for 5 epochs. A case
names its rule (``train.select_by``) and, if it wants one, ``train.early_stopping = {patience, metric}``.
"""

from __future__ import annotations

from collections.abc import Callable

# A history row → a key where larger is better; accuracy and AUC break ties by the lower loss.
SELECT_BY: dict[str, Callable[[dict], tuple]] = {
    "val_acc": lambda row: (row["val_acc"], -row["val_loss"]),
    "val_auc": lambda row: (row["val_auc"] if row["val_auc"] is not None else float("-inf"), -row["val_loss"]),
    "val_loss": lambda row: (-row["val_loss"],),
}
EARLY_STOPPING_KEYS = ("patience", "metric")


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
