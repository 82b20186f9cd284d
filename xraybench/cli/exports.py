"""``xraybench export`` and ``schema``: a run as a table for a spreadsheet or pandas, and the JSON Schemas that
editors and other tools validate case files, results and baselines with."""

from __future__ import annotations

import json

from xraybench import files, results
from xraybench.results import table


class ExportError(ValueError):
    """The table cannot be written where it was asked for."""


def cmd_export(args) -> int:
    rows = table.records(results.read(args.run_dir))
    try:
        files.write_text(args.csv, table.to_csv(rows))
    except OSError as exc:
        raise ExportError(f"{args.csv}: cannot write the table ({exc.strerror or exc}); choose another --csv") from None
    columns = len(rows[0]) if rows else len(table.IDENTITY)
    print(f"export: {args.csv} ({len(rows)} rows, one per case and seed; {columns} columns)")
    return 0


def cmd_schema(args) -> int:
    print(json.dumps(schema(args.kind), indent=2, ensure_ascii=False))
    return 0


def schema(kind: str) -> dict:
    """The JSON Schema of a case file (``case``), results.json (``results``) or a stored baseline (``baseline``)."""
    if kind == "case":
        from xraybench.cases.schema import case_file_schema

        return case_file_schema()
    return results.json_schema(kind)
