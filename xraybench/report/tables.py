"""The report's one table type: what every section hands the template."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    """Headers and rows of formatted cells; columns from ``numeric_from`` on are right-aligned numbers.
    ``title``, ``caption`` and ``note`` are shown where the template places them (empty: not shown)."""

    headers: list[str]
    rows: list[list] = field(default_factory=list)
    title: str = ""
    caption: str = ""
    note: str = ""
    numeric_from: int = 1
    css_class: str = ""


def task(
    settings: Table | None = None, models=(), tables=(), findings=(), not_finished=(), analysis=None, figures=()
) -> dict:
    """The parts a task section may have; the template shows those that are not empty. ``figures``:
    {"src", "caption"} shown after the tables."""
    return {
        "settings": settings,
        "models": list(models),
        "tables": list(tables),
        "findings": list(findings),
        "not_finished": list(not_finished),
        "analysis": analysis,
        "figures": list(figures),
    }
