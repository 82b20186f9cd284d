"""Reading and writing results.json and stored baselines: one reader for both, atomic writes.

Every write is atomic (a temporary file, fsync, rename): readers see the old file or the new one, never a mix. Every
read ends in a typed ``Run`` (or ``Baseline``) or in one ``ResultsError`` line that names the file and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pydantic

from xraybench import files
from xraybench.results.schema import (
    BASELINE_KIND,
    BASELINE_SCHEMA,
    SCHEMA_VERSION,
    Baseline,
    Row,
    Run,
    Settings,
)
from xraybench.results.versions import upgrade

FILENAME = "results.json"


class ResultsError(ValueError):
    """results.json (or a baseline) is missing, unreadable, or of a schema this version cannot read."""


def config_hash(config: dict) -> str:
    """A stable short hash of a resolved configuration without its seed (canonical JSON, sorted keys):
    every seed of a case shares it; rows are matched by id and seed."""
    train = {k: v for k, v in config.get("train", {}).items() if k != "seed"}
    return legacy_config_hash({**config, "train": train})


def legacy_config_hash(config: dict) -> str:
    """The hash of schema 1, the seed included."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_run(
    *, run_id: str, profile: str, machine: dict, software: dict, commit: dict, settings: dict | None = None
) -> Run:
    return Run(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        datetime=now(),
        updated=now(),
        profile=profile,
        machine_info=machine,
        software=software,
        commit_info=commit,
        settings=Settings.model_validate(settings or {}),
        suites={},
        data=None,
        cases=[],
    )


def write(path: Path, run: Run | dict) -> None:
    """Replace ``path`` atomically with ``run`` (or the dict of one), its ``updated`` stamp renewed."""
    path, run = Path(path), coerce(run, str(path))
    run.updated = now()
    files.write_text(path, json.dumps(run.dump(), indent=1, allow_nan=False))


def read(path: Path, kind: str | None = None) -> Run:
    """A results file (or the results.json of a run directory), or a stored baseline: read, brought to today's
    schema and validated. ``kind`` ("run" or "baseline") refuses the other."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    what = "baseline" if kind == "baseline" else "results file"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = " (xraybench baseline save RUN_DIR makes one)" if kind == "baseline" else ""
        raise ResultsError(f"{path}: no {what} here{hint}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: not a readable {what} ({one_line(exc)})") from None
    run = parse(doc, path, kind)
    run._source = str(path)
    return run


def parse(doc: object, path: Path | str, kind: str | None = None) -> Run:
    """``read`` on a document already decoded."""
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: not an xraybench results file or baseline (a JSON object expected)")
    baseline = doc.get("kind") == BASELINE_KIND
    if kind == "baseline" and not baseline:
        raise ResultsError(f"{path}: not an xraybench baseline (no kind {BASELINE_KIND!r} with a list of cases)")
    if kind == "run" and baseline:
        raise ResultsError(f"{path}: a stored baseline, not a run's results.json")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{path}: no schema_version; not an xraybench results file")
    limit = BASELINE_SCHEMA if baseline else SCHEMA_VERSION
    if version > limit:
        raise ResultsError(
            f"{path}: schema version {version} is newer than this xraybench reads ({limit}); upgrade xraybench"
        )
    model = Baseline if baseline else Run
    try:
        return model.model_validate(upgrade(doc))
    except pydantic.ValidationError as exc:
        raise ResultsError(f"{path}: {describe(exc)}") from None


def coerce(run: Run | dict, path: str = "the results given") -> Run:
    """A Run as it is, or a dict of one parsed: the public functions that take a run accept either."""
    return run if isinstance(run, Run) else parse(run, path)


def describe(exc: pydantic.ValidationError) -> str:
    """The first problem of a validation error as one line: the field's path, what was wrong, what was found."""
    error = exc.errors()[0]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
    found = "" if error["type"] == "missing" else f" (found {one_line(repr(error.get('input')))[:60]})"
    more = f"; {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
    return f"field {field or '(top)'}: {error['msg'].lower()}{found}{more}"


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def find(run: Run, case_id: str, seed: int | None) -> Row | None:
    return next((r for r in run.cases if r.id == case_id and r.seed == seed), None)


def upsert(run: Run, row: Row) -> None:
    """Put ``row`` in place of the row with the same id and seed, or append it."""
    for i, old in enumerate(run.cases):
        if old.id == row.id and old.seed == row.seed:
            run.cases[i] = row
            return
    run.cases.append(row)
