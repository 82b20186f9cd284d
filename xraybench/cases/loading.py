"""Case files: TOML read, defaults merged, grids expanded, every field checked against its type and its
vocabulary (models, optimisers, schedulers, objectives, profiles) before anything trains; an error names
the file, the case and the field, with the closest valid name."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import tomllib
import types
import typing
from pathlib import Path

from xraybench.train import optim, selection
from xraybench.models import registry
from xraybench.train.objectives import OBJECTIVES
from xraybench.data import medmnist
from xraybench.data.images import RESAMPLE
from xraybench.results import Tolerance, ToleranceError
from xraybench.cases.spec import (AUGMENTATIONS, DEFAULT_CASES_DIR, PROFILES, VIEWS, Case, CaseError, DataSpec,
                                  Suite, TrainSpec)

def load_cases(paths: list[Path] | None = None) -> tuple[list[Case], dict[str, Suite]]:
    """Load and validate every case in the given files or folders (default: benchmarks/cases)."""
    files = _case_files(paths or [DEFAULT_CASES_DIR])
    cases: list[Case] = []
    suites: dict[str, Suite] = {}
    seen: dict[str, str] = {}
    for file in files:
        suite, file_cases = load_case_file(file)
        suites[suite.name] = suite
        for case in file_cases:
            if case.id in seen:
                raise CaseError(f"{file}: case {case.id!r}: duplicate id (also declared in {seen[case.id]})")
            seen[case.id] = str(file)
            cases.append(case)
    for case in cases:
        for other in case.compare:
            if other not in seen:
                raise CaseError(f"{case.source}: case {case.id!r}: field 'compare': unknown case id {other!r}")
    return cases, suites


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


def load_case_file(file: Path) -> tuple[Suite, list[Case]]:
    try:
        doc = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{file}: not valid TOML: {exc}") from None
    where = f"{file}"
    _check_keys(doc, {"suite", "title", "tasks", "views", "defaults", "case"}, where, "")
    suite_name = _typed(doc.get("suite"), str, where, "suite")
    tasks = _typed(doc.get("tasks", {}), dict, where, "tasks")
    views = _typed(doc.get("views", {}), dict, where, "views")
    for task, view in views.items():
        if task not in tasks:
            raise CaseError(f"{where}: field 'views.{task}': not a task of this file{_suggest(task, tasks)}")
        if view not in VIEWS:
            raise CaseError(f"{where}: field 'views.{task}': unknown view {view!r}{_suggest(str(view), VIEWS)}")
    suite = Suite(suite_name, _typed(doc.get("title", suite_name), str, where, "title"),
                  {str(k): _typed(v, str, where, f"tasks.{k}") for k, v in tasks.items()}, str(file), dict(views))
    defaults = _typed(doc.get("defaults", {}), dict, where, "defaults")
    _check_keys(defaults, {"model", "data", "train", "profile_overrides", "seeds", "target_sensitivity", "profiles",
                           "requires_data", "published"}, where,
                "defaults.")
    raw_cases = _typed(doc.get("case", []), list, where, "case")
    cases = []
    for i, raw in enumerate(raw_cases):
        raw = _typed(raw, dict, where, f"case[{i}]")
        case_where = f"{file}: case {raw.get('id', f'#{i + 1}')!r}"
        merged = _merge(defaults, raw)
        merged["suite"] = suite_name
        merged["source"] = str(file)
        for point in _expand_grid(merged, case_where):
            case = _build(Case, point, case_where, "")
            _validate_case(case, suite, case_where)
            cases.append(_native_size(case, case_where))
    return suite, cases


def _native_size(case: Case, where: str) -> Case:
    """Resolve ``image_size = 0`` to the model's own input size (e.g. its weights' crop size)."""
    if case.data.image_size != 0:
        return case
    size = registry.native_input_size(case.model.name)
    if size is None:
        raise CaseError(f"{where}: field 'data.image_size': 0 means the model's own input size, but "
                        f"{case.model.name} declares none; give a size in pixels")
    return dataclasses.replace(case, data=dataclasses.replace(case.data, image_size=size))


def _expand_grid(case: dict, where: str) -> list[dict]:
    """A case with ``grid = { "train.lr" = [1e-3, 1e-4], ... }`` becomes one case per point of
    the grid, with ids like ``<id>.lr1e-04.bs16``; without a grid, the case itself."""
    grid = case.pop("grid", None)
    if grid is None:
        return [case]
    grid = _typed(grid, dict, where, "grid")
    axes = []
    for key, values in grid.items():
        section, name = _dotted_field(key, where, "grid")
        axes.append((section, name, _typed(values, list, where, f"grid.{key}")))
    points = [{}]
    for section, name, values in axes:
        points = [{**p, (section, name): v} for p in points for v in values]
    expanded = []
    for point in points:
        sub = {k: dict(v) if isinstance(v, dict) else v for k, v in case.items()}
        for (section, name), value in point.items():
            sub.setdefault(section, {})[name] = value
        slug = ".".join(f"{_SHORT.get(name, name)}{value:g}" if isinstance(value, float) else f"{_SHORT.get(name, name)}{value}"
                        for (section, name), value in point.items())
        sub["id"] = f"{case.get('id')}.{slug}"
        sub["sweep"] = case.get("id", "")
        sub["sweep_params"] = {f"{section}.{name}": value for (section, name), value in point.items()}
        expanded.append(sub)
    return expanded


def _dotted_field(key: str, where: str, table: str) -> tuple[str, str]:
    """Check a "data.x" or "train.x" key of a grid or a profile override."""
    section, _, name = key.partition(".")
    spec = {"data": DataSpec, "train": TrainSpec}.get(section)
    if spec is None or name not in {f.name for f in dataclasses.fields(spec)}:
        known = [f"{s}.{f.name}" for s, c in (("data", DataSpec), ("train", TrainSpec)) for f in dataclasses.fields(c)]
        raise CaseError(f"{where}: field '{table}.{key}': not a data.* or train.* field{_suggest(key, known)}")
    return section, name


_SHORT = {"lr": "lr", "batch_size": "bs", "epochs": "ep", "weight_decay": "wd", "image_size": "px"}


def _merge(defaults: dict, case: dict) -> dict:
    """Case values over the file's defaults, one level of tables deep."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in defaults.items()}
    for key, value in case.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check_keys(data: dict, allowed: set[str], where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise CaseError(f"{where}: unknown field {prefix + key!r}{_suggest(key, allowed)}")


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (accepted: {', '.join(sorted(choices))})"


def _typed(value, expected: type, where: str, name: str):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise CaseError(f"{where}: field {name!r} must be {_type_name(expected)}, got {value!r}")
    return value


def _type_name(t) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table", list: "a list",
            tuple: "a list"}.get(t, getattr(t, "__name__", str(t)))


def _build(cls, data: dict, where: str, prefix: str):
    """Construct a (nested) dataclass from a dict, checking names and types of every field."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(data, set(fields), where, prefix)
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
        return _build(hint, _typed(value, dict, where, path), where, path + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:  # tuple[X, ...]
        item = typing.get_args(hint)[0]
        return tuple(_typed(v, item, where, f"{path}[{i}]") for i, v in enumerate(_typed(value, list, where, path)))
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported field type {hint}")  # no optional fields in cases
    return _typed(value, hint, where, path)


def _validate_case(case: Case, suite: Suite, where: str) -> None:
    """Checks beyond names and types: known model, options, ranges, names in tables."""
    def fail(path: str, message: str):
        raise CaseError(f"{where}: field {path!r}: {message}")

    if not case.id.startswith(suite.name):
        fail("id", f"must start with the suite name {suite.name!r}, got {case.id!r}")
    if not all(c.isalnum() or c in "-_." for c in case.id):
        fail("id", f"use only letters, digits, '-', '_' and '.', got {case.id!r}")
    for i, name in enumerate(case.profiles):
        if name not in PROFILES:
            fail(f"profiles[{i}]", f"unknown profile {name!r}{_suggest(name, PROFILES)}")
    for name, overrides in case.profile_overrides.items():
        if name not in PROFILES:
            fail(f"profile_overrides.{name}", f"unknown profile {name!r}{_suggest(name, PROFILES)}")
        for key in _typed(overrides, dict, where, f"profile_overrides.{name}"):
            _dotted_field(key, where, f"profile_overrides.{name}")
    for name, count in case.seeds.items():
        if name not in PROFILES:
            fail(f"seeds.{name}", f"unknown profile {name!r}{_suggest(name, PROFILES)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            fail(f"seeds.{name}", f"must be a whole number of seeds, at least 1, got {count!r}")
    for name, spec in case.tolerances.items():
        try:
            Tolerance.parse(f"{name}:{spec}")
        except ToleranceError as exc:
            fail(f"tolerances.{name}", str(exc))
    if not 0.0 <= case.target_sensitivity < 1.0:
        fail("target_sensitivity", f"must be a share between 0 and 1 (0: Youden's J), got {case.target_sensitivity}")
    if suite.tasks and case.task not in suite.tasks:
        fail("task", f"unknown task {case.task!r}{_suggest(case.task, suite.tasks)}")
    if not registry.is_model(case.model.name):
        fail("model.name", f"unknown model {case.model.name!r}{_suggest(case.model.name, registry.list_models())}")
    accepted = registry.model_options(case.model.name)
    for key in case.model.options:
        if key not in accepted:
            fail(f"model.options.{key}", f"not an option of {case.model.name}{_suggest(key, accepted)}")
    _validate_needs(case, fail)
    d, t = case.data, case.train
    if 0 < d.image_size < 8 or d.image_size < 0:
        fail("data.image_size", f"must be at least 8 pixels (or 0: the model's own input size), got {d.image_size}")
    for path, value, low in [("train.epochs", t.epochs, 1),
                             ("train.batch_size", t.batch_size, 1)]:
        if value < low:
            fail(path, f"must be at least {low}, got {value}")
    if d.pad_to and d.pad_to < d.image_size:
        fail("data.pad_to", f"pads {d.image_size}-pixel images up to a larger canvas: give at least "
                            f"{d.image_size}, or 0 for none; got {d.pad_to}")
    if d.resize not in RESAMPLE:
        fail("data.resize", f"unknown interpolation {d.resize!r}; use one of {', '.join(RESAMPLE)}")
    if d.channels not in (1, 3):
        fail("data.channels", f"must be 1 or 3, got {d.channels}")
    if d.std <= 0:
        fail("data.std", f"must be positive, got {d.std}")
    for i, name in enumerate(d.augment):
        if name not in AUGMENTATIONS:
            fail(f"data.augment[{i}]", f"unknown augmentation {name!r}{_suggest(name, AUGMENTATIONS)}")
    if not t.lr > 0:
        fail("train.lr", f"must be positive, got {t.lr}")
    if t.weight_decay < 0:
        fail("train.weight_decay", f"must not be negative, got {t.weight_decay}")
    for path, name, table in [("train.optimizer", t.optimizer, optim.OPTIMIZERS),
                              ("train.scheduler", t.scheduler, optim.SCHEDULERS),
                              ("train.loss", t.loss, OBJECTIVES)]:
        if name not in table:
            fail(path, f"unknown {path.split('.')[1]} {name!r}{_suggest(name, table)}")
    for path, problem in selection.check(t.select_by, t.early_stopping):
        fail(path, problem)
    for path, owner, options, accepted in [
        ("train.optimizer_options", t.optimizer, t.optimizer_options, optim.optimizer_options(t.optimizer)),
        ("train.scheduler_options", t.scheduler, t.scheduler_options, optim.scheduler_options(t.scheduler)),
    ]:
        for key in options:
            if key not in accepted:
                hint = _suggest(key, accepted) if accepted else " (it takes none)"
                fail(f"{path}.{key}", f"not an option of {owner!r}{hint}")


def _validate_needs(case: Case, fail) -> None:
    """The data a case requires, and the published result it reproduces."""
    if case.requires_data:
        problem = medmnist.name_problem(case.requires_data)
        if problem:
            fail("requires_data", problem)
    ref = case.published
    for name in ("test_acc", "test_auc", "test_acc_sd", "test_auc_sd"):
        if not 0.0 <= getattr(ref, name) <= 1.0:
            fail(f"published.{name}", f"a share between 0 and 1 (83.12 % is 0.8312), got {getattr(ref, name)}")
    if ref.runs < 1:
        fail("published.runs", f"the number of trainings the published value averages, at least 1, got {ref.runs}")
    if ref.source and not ref.metrics:
        fail("published", "names a source but no value: give test_acc, test_auc or both")
    if ref.metrics and not (ref.source and ref.table):
        fail("published.source" if not ref.source else "published.table",
             "a published value needs its source and the table (or file) it is printed in")


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """Cases whose id matches any shell-style pattern, in declaration order."""
    chosen = [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    if not chosen:
        raise CaseError(f"no case matches {' '.join(patterns)!r}; available: {', '.join(c.id for c in cases)}")
    return chosen
