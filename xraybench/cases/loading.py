"""Case files: TOML read, defaults merged, grids expanded, every field checked against its type and its
vocabulary (models, optimisers, schedulers, objectives, profiles) before anything trains; an error names
the file, the case and the field, with the closest valid name."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path

from xraybench.cases.spec import DEFAULT_CASES_DIR, Case, CaseError, Suite
from xraybench.cases.validation import check_keys, dotted_field, margins, questions, suggest, typed, validate_case
from xraybench.models import registry
from xraybench.results import VIEWS

TOP_LEVEL = {"suite", "title", "extends", "tasks", "questions", "views", "defaults", "case"}
DEFAULTS = {
    "model",
    "data",
    "train",
    "profile_overrides",
    "seeds",
    "target_sensitivity",
    "profiles",
    "requires_data",
    "published",
}


def load_cases(paths: list[Path] | None = None) -> tuple[list[Case], dict[str, Suite]]:
    """The built-in cases (benchmarks/cases) and those of ``paths`` (files or folders), validated. A user's files add
    to the built-in ones, so ids resolve across both (``compare``, ``extends``, id patterns); a file declaring a
    built-in suite's name takes that suite's place."""
    own = _case_files(paths) if paths else []
    builtin = [f for f in _case_files([DEFAULT_CASES_DIR]) if f.resolve() not in {o.resolve() for o in own}]
    own = _in_extends_order(own)
    suites: dict[str, Suite] = {}
    loaded: list[tuple[Suite, list[Case]]] = []
    for file in builtin + own:
        suite, file_cases = load_case_file(file, suites)
        suites[suite.name] = suite
        loaded.append((suite, file_cases))
    replaced = {s.name for s, _ in loaded[len(builtin) :]}
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for i, (suite, file_cases) in enumerate(loaded):
        if i < len(builtin) and suite.name in replaced:
            continue  # a user's file of the same suite takes its place
        for case in file_cases:
            if case.id in seen:
                raise CaseError(f"{case.source}: case {case.id!r}: duplicate id (also declared in {seen[case.id]})")
            seen[case.id] = case.source
            cases.append(case)
    for case in cases:
        for other in case.compare:
            if other not in seen:
                raise CaseError(
                    f"{case.source}: case {case.id!r}: field 'compare': unknown case id {other!r}"
                    f"{suggest(other, seen)} (xraybench list shows the ids)"
                )
    return cases, suites


def _in_extends_order(files: list[Path]) -> list[Path]:
    """The user's files, each after the file whose suite it extends (a folder's files load in name order)."""
    headers = {}
    for file in files:
        try:
            doc = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            doc = {}  # load_case_file says what is wrong with it
        headers[file] = (doc.get("suite"), doc.get("extends"))
    declared = {suite: file for file, (suite, _) in headers.items() if isinstance(suite, str)}
    ordered: list[Path] = []

    def place(file: Path, chain: list[Path]) -> None:
        if file in ordered:
            return
        if file in chain:
            raise CaseError(
                f"{file}: field 'extends': the files extend each other in a circle "
                f"({' → '.join(str(f) for f in [*chain, file])})"
            )
        base = declared.get(headers[file][1]) if isinstance(headers[file][1], str) else None
        if base is not None and base != file:
            place(base, [*chain, file])
        ordered.append(file)

    for file in files:
        place(file, [])
    return ordered


def declared_in(cases: list[Case], paths: list[Path] | None) -> list[Case]:
    """The cases of the user's files ``paths`` (what ``--all`` means with ``--cases``), else every case."""
    if not paths:
        return cases
    files = {str(f) for f in _case_files(paths)}
    return [c for c in cases if c.source in files]


def _case_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise CaseError(f"{path}: no case files (*.toml) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CaseError(f"{path}: no such case file or folder")
    return files


def load_case_file(file: Path, known: dict[str, Suite] | None = None) -> tuple[Suite, list[Case]]:
    """One file's suite and cases. ``known``: the suites loaded before it, which ``extends = "NAME"`` builds on."""
    try:
        doc = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CaseError(f"{file}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except OSError as exc:
        raise CaseError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    where = f"{file}"
    check_keys(doc, TOP_LEVEL, where, "")
    if "suite" not in doc:
        raise CaseError(f'{where}: missing top-level suite = "NAME" (before any table; every case id starts with it)')
    suite_name = typed(doc["suite"], str, where, "suite")
    base = _extended(doc, known or {}, where)
    tasks = {**base.tasks, **typed(doc.get("tasks", {}), dict, where, "tasks")}
    views = typed(doc.get("views", {}), dict, where, "views")
    for task, view in views.items():
        if task not in tasks:
            raise CaseError(f"{where}: field 'views.{task}': not a task of this file{suggest(task, tasks)}")
        if view not in VIEWS:
            raise CaseError(f"{where}: field 'views.{task}': unknown view {view!r}{suggest(str(view), VIEWS)}")
    asked = questions(typed(doc.get("questions", {}), dict, where, "questions"), tasks, where)
    defaults = typed(doc.get("defaults", {}), dict, where, "defaults")
    check_keys(defaults, DEFAULTS, where, "defaults.")
    defaults = merge({k: v for k, v in base.defaults.items() if k != "published"}, defaults)  # a citation is not
    suite = Suite(
        suite_name,
        typed(doc.get("title", suite_name), str, where, "title"),
        {str(k): typed(v, str, where, f"tasks.{k}") for k, v in tasks.items()},
        str(file),
        dict(views),
        questions={**base.questions, **asked},
        defaults=defaults,
        extends=base.name,
    )
    cases = []
    for i, raw in enumerate(typed(doc.get("case", []), list, where, "case")):
        raw = typed(raw, dict, where, f"case[{i}]")
        case_where = f"{file}: case {raw.get('id', f'#{i + 1}')!r}"
        merged = {**merge(defaults, raw), "suite": suite_name, "source": str(file)}
        for point in _expand_grid(merged, case_where):
            case = build(Case, point, case_where, "")
            case = dataclasses.replace(case, margin=margins(case.margin, case_where))
            validate_case(case, suite, case_where)
            cases.append(native_size(case, case_where))
    return suite, cases


def _extended(doc: dict, known: dict[str, Suite], where: str) -> Suite:
    """The suite ``extends`` names (its defaults, tasks and questions are this file's starting point), or an empty
    one."""
    if "extends" not in doc:
        return Suite("", "", {}, "")
    name = typed(doc["extends"], str, where, "extends")
    if name not in known:
        raise CaseError(f"{where}: field 'extends': unknown suite {name!r}{suggest(name, known)}")
    return known[name]


def native_size(case: Case, where: str) -> Case:
    """Resolve ``image_size = 0`` to the model's own input size (e.g. its weights' crop size)."""
    if case.data.image_size != 0:
        return case
    size = registry.native_input_size(case.model.name)
    if size is None:
        raise CaseError(
            f"{where}: field 'data.image_size': 0 means the model's own input size, but "
            f"{case.model.name} declares none; give a size in pixels"
        )
    return dataclasses.replace(case, data=dataclasses.replace(case.data, image_size=size))


def _expand_grid(case: dict, where: str) -> list[dict]:
    """A case with ``grid = { "train.lr" = [1e-3, 1e-4], ... }`` becomes one case per point of
    the grid, with ids like ``<id>.lr1e-04.bs16``; without a grid, the case itself."""
    grid = case.pop("grid", None)
    if grid is None:
        return [case]
    grid = typed(grid, dict, where, "grid")
    axes = []
    for key, values in grid.items():
        section, name = dotted_field(key, where, "grid")
        typed(case.get(section, {}), dict, where, section)
        if not typed(values, list, where, f"grid.{key}"):
            raise CaseError(f"{where}: field 'grid.{key}': an empty list gives no case; list at least one value")
        axes.append((section, name, values))
    points = [{}]
    for section, name, values in axes:
        points = [{**p, (section, name): v} for p in points for v in values]
    expanded = []
    for point in points:
        sub = {k: dict(v) if isinstance(v, dict) else v for k, v in case.items()}
        for (section, name), value in point.items():
            sub.setdefault(section, {})[name] = value
        slug = ".".join(
            f"{_SHORT.get(name, name)}{value:g}" if isinstance(value, float) else f"{_SHORT.get(name, name)}{value}"
            for (section, name), value in point.items()
        )
        sub["id"] = f"{case.get('id')}.{slug}"
        sub["sweep"] = case.get("id", "")
        sub["sweep_params"] = {f"{section}.{name}": value for (section, name), value in point.items()}
        expanded.append(sub)
    return expanded


_SHORT = {"lr": "lr", "batch_size": "bs", "epochs": "ep", "weight_decay": "wd", "image_size": "px"}


def merge(defaults: dict, case: dict) -> dict:
    """Case values over the defaults, one level of tables deep. Options belong to their optimiser or scheduler:
    naming another one without its options drops the inherited ones (StepLR's step_size would not fit cosine)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in defaults.items()}
    for key, value in case.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            for owner in ("optimizer", "scheduler"):
                renamed = value.get(owner, merged[key].get(owner)) != merged[key].get(owner)
                if renamed and f"{owner}_options" not in value:
                    merged[key].pop(f"{owner}_options", None)
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def build(cls, data: dict, where: str, prefix: str):
    """Construct a (nested) dataclass from a dict, checking names and types of every field."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(data, set(fields), where, prefix)
    values = {}
    for name, f in fields.items():
        path = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CaseError(f"{where}: missing required field {path!r}")
            continue
        values[name] = _convert(hints[name], data[name], where, path)
    return cls(**values)


def _convert(hint, value, where: str, path: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, typed(value, dict, where, path), where, path + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:  # tuple[X, ...]
        item = typing.get_args(hint)[0]
        return tuple(typed(v, item, where, f"{path}[{i}]") for i, v in enumerate(typed(value, list, where, path)))
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported field type {hint}")  # no optional fields in cases
    return typed(value, hint, where, path)
