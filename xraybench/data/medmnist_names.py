"""MedMNIST's names, without numpy or torch: what ``pneumoniamnist@64`` means, whether a name is one MedMNIST
offers, and its canonical spelling. A case's ``requires_data`` is checked against these when case files are loaded,
and the report compares the run's data with them; ``medmnist`` opens the data a name stands for."""

from __future__ import annotations

import re

NAME = re.compile(r"^(?P<flag>pneumoniamnist)(?:@(?P<size>\d+))?$", re.IGNORECASE)
SIZES = (28, 64, 128, 224)


def is_name(data: str) -> bool:
    return bool(NAME.match(str(data)))


def name_problem(data: str) -> str | None:
    """Why ``data`` is not a MedMNIST name with a size MedMNIST offers (None: it is one)."""
    match = NAME.match(str(data))
    if not match:
        return f"expected a MedMNIST name such as pneumoniamnist@28, got {data!r}"
    size = int(match["size"] or 28)
    if size not in SIZES:
        return f"size {size} is not one MedMNIST offers; use {match['flag'].lower()}@" + "|".join(map(str, SIZES))
    return None


def canonical(name: str) -> str:
    """ "PneumoniaMNIST" → "pneumoniamnist@28": the name with its size; "" for no MedMNIST name."""
    match = NAME.match(name or "")
    return f"{match['flag'].lower()}@{int(match['size'] or 28)}" if match else ""
