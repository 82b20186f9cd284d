"""The JSON Schema of a case file, derived from the records that hold a case (``spec``: ``Case``, ``ModelSpec``,
``DataSpec``, ``TrainSpec``, ``Reference``) and from the vocabularies a case is checked against, so that an editor
validates and completes case files with the same fields and names the loader accepts (docs/cases.md shows the
set-up). The loader's checks stay the authority: they also know what a schema cannot say (a model's options, an
optimiser's options, a grid's axes)."""

from __future__ import annotations

import copy
import dataclasses
import inspect

import pydantic

from xraybench.cases import loading, spec
from xraybench.data.augmentations import AUGMENTATIONS
from xraybench.data.images import RESAMPLE
from xraybench.models import registry
from xraybench.results import VIEWS
from xraybench.results.decisions import MEASURES
from xraybench.train.choices import LOSSES, OPTIMIZERS, SCHEDULERS
from xraybench.train.selection import SELECT_BY, VAL_LOSSES

# Fields of a case that its file does not declare: the suite is the file's, the rest is derived.
DERIVED = {"suite", "source", "sweep", "sweep_params"}
REQUIRED = ["id", "task", "title"]  # model too, unless [defaults] names one
MARGIN = {
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^\s*\+?(\d+(\.\d*)?|\.\d+)\s*pp\s*$",
            "description": 'percentage points, e.g. "2pp"',
        },
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "description": "a fraction, e.g. 0.02"},
    ]
}
QUESTION = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1},
                "answer_on": {
                    "type": "array",
                    "items": {"enum": list(MEASURES)},
                    "minItems": 1,
                    "uniqueItems": True,
                    "description": "the metrics it is answered on: the first decides, the rest in fixed sequence",
                },
            },
            "required": ["text"],
            "additionalProperties": False,
        },
    ]
}


def case_file_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a case file (TOML read as JSON)."""
    records = pydantic.TypeAdapter(spec.Case).json_schema(ref_template="#/$defs/{model}")
    defs = records.pop("$defs")
    comments = _field_comments()
    for name, field in records["properties"].items():
        field.pop("title", None)
        if ("Case", name) in comments:
            field["description"] = comments["Case", name]
    case = _without(records, DERIVED)
    case["required"] = REQUIRED
    case["properties"]["grid"] = {
        "type": "object",
        "description": 'a sweep: one case per point, e.g. { "train.lr" = [1e-3, 1e-4], "train.batch_size" = [16, 32] }',
        "patternProperties": {r"^(data|train)\.[a-z_]+$": {"type": "array", "minItems": 1}},
        "additionalProperties": False,
    }
    case["properties"]["margin"] = {
        "type": "object",
        "description": case["properties"]["margin"].get("description", ""),
        "properties": {name: MARGIN for name in MEASURES},
        "additionalProperties": False,
    }
    defaults = _without(case, set(case["properties"]) - loading.DEFAULTS)
    defaults.pop("required", None)
    _vocabularies(defs)
    for record in defs.values():
        record["additionalProperties"] = False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "an xraybench case file",
        "description": "A suite of benchmark cases (benchmarks/cases/*.toml; docs/cases.md).",
        "type": "object",
        "properties": {
            "suite": {"type": "string", "description": "the suite's name; every case id starts with it"},
            "title": {"type": "string"},
            "extends": {"type": "string", "description": "a suite whose defaults and tasks this file builds on"},
            "tasks": {"type": "object", "additionalProperties": {"type": "string"}},
            "questions": {
                "type": "object",
                "description": "task → what its comparisons answer: a string (on test_acc, then test_auc) or a table",
                "additionalProperties": QUESTION,
            },
            "views": {"type": "object", "additionalProperties": {"enum": list(VIEWS)}},
            "defaults": defaults,
            "case": {"type": "array", "items": case},
        },
        "required": ["suite"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _without(record: dict, names: set[str]) -> dict:
    trimmed = copy.deepcopy(record)
    trimmed["properties"] = {k: v for k, v in trimmed["properties"].items() if k not in names}
    trimmed["required"] = [k for k in trimmed.get("required", []) if k not in names]
    trimmed["additionalProperties"] = False
    return trimmed


def _vocabularies(defs: dict) -> None:
    """Closed vocabularies as enums (what the loader would suggest a near name from); model names as examples,
    since a user's registered models are valid too."""
    data, train = defs["DataSpec"]["properties"], defs["TrainSpec"]["properties"]
    data["resize"]["enum"] = list(RESAMPLE)
    data["augment"]["items"]["enum"] = list(AUGMENTATIONS)
    train["optimizer"]["enum"] = list(OPTIMIZERS)
    train["scheduler"]["enum"] = list(SCHEDULERS)
    train["loss"]["enum"] = list(LOSSES)
    train["select_by"]["enum"] = list(SELECT_BY)
    train["val_loss"]["enum"] = list(VAL_LOSSES)
    built_in = [name for name in registry.list_models() if registry.origin(name) == "built-in"]
    defs["ModelSpec"]["properties"]["name"]["examples"] = built_in
    comments = _field_comments()
    for record in (spec.DataSpec, spec.TrainSpec, spec.ModelSpec, spec.Reference):
        described = defs[record.__name__]
        if (described.get("description") or "").startswith(f"{record.__name__}("):  # the dataclass's own repr
            described.pop("description")
        for f in dataclasses.fields(record):
            field = described["properties"].get(f.name)
            if field is not None:
                field.pop("title", None)
                if (record.__name__, f.name) in comments:
                    field["description"] = comments[record.__name__, f.name]


def _field_comments() -> dict[tuple[str, str], str]:
    """Each field's trailing comment in spec.py, its description in the schema (said once, where it is declared)."""
    found, record = {}, None
    for line in inspect.getsource(spec).splitlines():
        if line.startswith("class "):
            record = line[6:].split("(")[0].split(":")[0]
        elif record and line.startswith("    ") and ":" in line and "  # " in line and not line.strip().startswith("#"):
            name = line.strip().split(":")[0]
            if name.isidentifier():
                found[record, name] = line.split("  # ", 1)[1].strip()
    return found
