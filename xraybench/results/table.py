"""A run as one flat table, where analysts work: one record per case and seed, the checked and reported metrics as
columns, and the case's declared settings (``config``) as dotted columns (``train.lr``, ``model.name``)."""

from __future__ import annotations

import csv
import io
import json

from xraybench.results.schema import Metrics, Run

IDENTITY = ["id", "suite", "task", "seed", "status", "hash", "sweep", "reason"]
METRIC_COLUMNS = [
    name for name, field in Metrics.model_fields.items() if field.annotation in (float | None, int | None, str | None)
]


def records(run: Run) -> list[dict]:
    """One dict per row: identity, metrics (None where not measured), then the declared settings."""
    settings = [_flatten(row.config) for row in run.cases]
    columns = list(dict.fromkeys(k for flat in settings for k in flat))
    return [
        {
            **{k: getattr(row, k) for k in IDENTITY},
            "model": row.model_name,
            **{k: getattr(row.metrics, k) for k in METRIC_COLUMNS},
            **{k: flat.get(k) for k in columns},
        }
        for row, flat in zip(run.cases, settings)
    ]


def to_csv(table: list[dict]) -> str:
    """``records`` as CSV text (lists and tables as JSON in their cell, None as an empty cell)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table[0]) if table else IDENTITY, lineterminator="\n")
    writer.writeheader()
    for record in table:
        writer.writerow({k: _cell(v) for k, v in record.items()})
    return out.getvalue()


def to_frame(run: Run):
    """``records`` as a pandas DataFrame (pandas is an extra: pip install 'xraybench[pandas]')."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_frame needs pandas: pip install 'xraybench[pandas]'") from None
    return pd.DataFrame.from_records(records(run))


def _flatten(config: dict) -> dict:
    """``{"train": {"lr": 0.001}}`` → ``{"train.lr": 0.001}``: one level, so that every case has the same columns
    (options tables stay whole, as JSON in their cell)."""
    flat = {}
    for section, fields in config.items():
        if isinstance(fields, dict):
            flat.update({f"{section}.{k}": v for k, v in fields.items()})
        else:
            flat[section] = fields
    return flat


def _cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True)
    return value
