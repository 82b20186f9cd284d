"""Choosing among configurations: what a search over a grid can be expected to find."""

from __future__ import annotations

import numpy as np


def expected_max(values: list[float]) -> list[float]:
    """E[max of n trials drawn with replacement from ``values``], n = 1 … len(values) (Dodge et al. 2019,
    "Show your work", eq. 1): the best validation accuracy a user who tries only n of a grid's points
    reaches, on average."""
    v = np.sort(np.asarray(values, dtype=float))
    k = len(v)
    share = np.arange(1, k + 1) / k
    return [float(np.sum(v * (share**n - (share - 1 / k) ** n))) for n in range(1, k + 1)]
