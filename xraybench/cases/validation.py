"""A case checked beyond names and types: a known model and its options, ranges, names in the vocabularies of
what implements them (optimisers, schedulers, objectives, profiles, views), what it needs and what it cites."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re

from xraybench.cases.spec import PROFILES, Case, CaseError, DataSpec, Suite, TrainSpec
from xraybench.data import medmnist_names
from xraybench.data.augmentations import AUGMENTATIONS
from xraybench.data.images import RESAMPLE
from xraybench.models import registry
from xraybench.results import Tolerance, ToleranceError
from xraybench.results.decisions import DEFAULT_ANSWER_ON, MEASURES
from xraybench.train import selection
from xraybench.train.choices import LOSSES, OPTIMIZERS, SCHEDULERS


def suggest(word: str, choices) -> str:
    """' (did you mean X?)' for the closest valid name, else the accepted ones where they are few enough to read."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (accepted: {', '.join(sorted(choices))})" if len(choices) <= 20 else ""


def check_keys(data: dict, allowed: set[str], where: str, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise CaseError(f"{where}: unknown field {prefix + key!r}{suggest(key, allowed)}")


def typed(value, expected: type, where: str, name: str):
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise CaseError(f"{where}: field {name!r} must be {type_name(expected)}, got {value!r}")
    return value


def type_name(t) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a table",
        list: "a list",
        tuple: "a list",
    }.get(t, getattr(t, "__name__", str(t)))


def dotted_field(key: str, where: str, table: str) -> tuple[str, str]:
    """Check a "data.x" or "train.x" key of a grid or a profile override."""
    section, _, name = key.partition(".")
    spec = {"data": DataSpec, "train": TrainSpec}.get(section)
    if spec is None or name not in {f.name for f in dataclasses.fields(spec)}:
        known = [f"{s}.{f.name}" for s, c in (("data", DataSpec), ("train", TrainSpec)) for f in dataclasses.fields(c)]
        named = f"{table}.{key}" if table else key
        raise CaseError(f"{where}: field {named!r}: not a data.* or train.* field{suggest(key, known)}")
    return section, name


MARGIN = '"<n>pp" or a number in [0, 1)'
METRICS = ", ".join(MEASURES)  # what a margin or a question may name
POINTS = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*pp\s*")


def margins(declared: dict, where: str) -> dict[str, float]:
    """A case's ``margin`` table as fractions ("2pp" and 0.02 are both 0.02), each metric one that comparisons are
    decided on; a margin is a distance either side of no difference, so never negative."""
    found = {}
    for name, value in declared.items():
        path = f"margin.{name}"
        if name not in MEASURES:
            raise CaseError(f"{where}: field {path!r}: unknown metric {name!r}; accepted: {METRICS}")
        match = POINTS.fullmatch(value) if isinstance(value, str) else None
        if match:
            fraction = round(float(match.group(1)) / 100, 12)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            fraction = float(value)
        else:
            raise CaseError(f"{where}: field {path!r}: a margin is {MARGIN}, got {value!r}")
        if fraction < 0:
            raise CaseError(
                f"{where}: field {path!r}: a margin is a distance either side of 0, not negative; got {value!r}"
            )
        if not fraction < 1:  # also NaN
            hint = f' ({value:g} points: "{value:g}pp" or {value / 100:g})' if not match and 1 <= fraction < 100 else ""
            raise CaseError(f"{where}: field {path!r}: a margin is {MARGIN}, got {value!r}{hint}")
        found[name] = fraction
    return found


def questions(declared: dict, tasks: dict, where: str) -> dict[str, dict]:
    """A file's ``[questions]``, each as {"text", "answer_on"}: a string is asked on the default metrics; a table names
    its own, the first deciding, so a repeat or an unknown metric would change what the answer means."""
    found = {}
    for task, value in declared.items():
        path = f"questions.{task}"
        if task not in tasks:
            raise CaseError(f"{where}: field {path!r}: not a task of this file{suggest(task, tasks)}")
        if isinstance(value, dict):
            check_keys(value, {"text", "answer_on"}, where, f"{path}.")
            if "text" not in value:
                raise CaseError(f'{where}: field {path!r}: missing text = "the question"')
            text = typed(value["text"], str, where, f"{path}.text")
            answer_on = typed(value.get("answer_on", list(DEFAULT_ANSWER_ON)), list, where, f"{path}.answer_on")
        elif isinstance(value, str):
            text, answer_on = value, list(DEFAULT_ANSWER_ON)
        else:
            raise CaseError(
                f'{where}: field {path!r}: a question is a string or a table {{ text = "...", answer_on = [...] }}, '
                f"got {value!r}"
            )
        if not text.strip():
            raise CaseError(f"{where}: field {path!r}: the question is empty")
        if not answer_on:
            raise CaseError(f"{where}: field '{path}.answer_on': name at least one metric (the first decides)")
        for i, metric in enumerate(answer_on):
            if not isinstance(metric, str) or metric not in MEASURES:
                raise CaseError(
                    f"{where}: field '{path}.answer_on[{i}]': unknown metric {metric!r}; accepted: {METRICS}"
                )
            if metric in answer_on[:i]:
                raise CaseError(f"{where}: field '{path}.answer_on[{i}]': {metric} is named twice; name each once")
        found[str(task)] = {"text": text, "answer_on": list(answer_on)}
    return found


def validate_case(case: Case, suite: Suite, where: str) -> None:
    """Checks beyond names and types: known model, options, ranges, names in tables."""

    def fail(path: str, message: str):
        raise CaseError(f"{where}: field {path!r}: {message}")

    _check_declaration(case, suite, where, fail)
    _check_model(case, fail)
    _validate_needs(case, fail)
    _check_data(case.data, fail)
    _check_train(case.train, fail)


def _check_declaration(case: Case, suite: Suite, where: str, fail) -> None:
    """The case's id, profiles and their overrides, seeds, tolerances, operating point and task."""
    if not case.id.startswith(suite.name):
        fail("id", f"must start with the suite name {suite.name!r}, got {case.id!r}")
    if not all(c.isalnum() or c in "-_." for c in case.id):
        fail("id", f"use only letters, digits, '-', '_' and '.', got {case.id!r}")
    for i, name in enumerate(case.profiles):
        if name not in PROFILES:
            fail(f"profiles[{i}]", f"unknown profile {name!r}{suggest(name, PROFILES)}")
    for name, overrides in case.profile_overrides.items():
        if name not in PROFILES:
            fail(f"profile_overrides.{name}", f"unknown profile {name!r}{suggest(name, PROFILES)}")
        for key, value in typed(overrides, dict, where, f"profile_overrides.{name}").items():
            section, field = dotted_field(key, where, f"profile_overrides.{name}")
            expected = type(getattr(getattr(case, section), field))  # the declared value's type
            if expected in (int, float, str, bool):
                typed(value, expected, where, f"profile_overrides.{name}.{key}")
    for name, count in case.seeds.items():
        if name not in PROFILES:
            fail(f"seeds.{name}", f"unknown profile {name!r}{suggest(name, PROFILES)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            fail(f"seeds.{name}", f"must be a whole number of seeds, at least 1, got {count!r}")
    for name, spec in case.tolerances.items():
        try:
            Tolerance.parse(f"{name}:{spec}")
        except ToleranceError as exc:
            fail(f"tolerances.{name}", str(exc))
    if not 0.0 <= case.target_sensitivity < 1.0:
        fail("target_sensitivity", f"must be a share between 0 and 1 (0: Youden's J), got {case.target_sensitivity}")
    if not suite.tasks:
        fail(
            "task",
            f"{case.task!r} is not declared: the file has no [tasks] table; add one (e.g. [tasks] "
            f'{case.task or "A"} = "what the task asks") or build on a suite\'s (extends = "hw3")',
        )
    if case.task not in suite.tasks:
        fail("task", f"unknown task {case.task!r}{suggest(case.task, suite.tasks)}")


def _check_model(case: Case, fail) -> None:
    """A registered model, and options its builder takes."""
    if not registry.is_model(case.model.name):
        fail(
            "model.name",
            f"unknown model {case.model.name!r}{suggest(case.model.name, registry.list_models())}; "
            f"your own model? --import its module",
        )
    accepted = registry.model_options(case.model.name)
    for key in case.model.options:
        if key not in accepted:
            fail(f"model.options.{key}", f"not an option of {case.model.name}{suggest(key, accepted)}")


def _check_data(d: DataSpec, fail) -> None:
    """Sizes, interpolation, channels, normalisation and augmentations a loader can apply."""
    if 0 < d.image_size < 8 or d.image_size < 0:
        fail("data.image_size", f"must be at least 8 pixels (or 0: the model's own input size), got {d.image_size}")
    if d.pad_to and d.pad_to < d.image_size:
        fail(
            "data.pad_to",
            f"pads {d.image_size}-pixel images up to a larger canvas: give at least "
            f"{d.image_size}, or 0 for none; got {d.pad_to}",
        )
    if d.resize not in RESAMPLE:
        fail("data.resize", f"unknown interpolation {d.resize!r}; use one of {', '.join(RESAMPLE)}")
    if d.channels not in (1, 3):
        fail("data.channels", f"must be 1 or 3, got {d.channels}")
    if not d.std > 0 or not math.isfinite(d.std):
        fail("data.std", f"must be positive, got {d.std}")
    if not math.isfinite(d.mean):
        fail("data.mean", f"must be a number, got {d.mean}")
    for i, name in enumerate(d.augment):
        if name not in AUGMENTATIONS:
            fail(f"data.augment[{i}]", f"unknown augmentation {name!r}{suggest(name, AUGMENTATIONS)}")


def _check_train(t: TrainSpec, fail) -> None:
    """Epochs, batch size, learning rate and decay; optimiser, scheduler and loss by name, and their options."""
    for path, value, low in [
        ("train.epochs", t.epochs, 1),
        ("train.batch_size", t.batch_size, 1),
        ("train.eval_batch_size", t.eval_batch_size, 1),
    ]:
        if value < low:
            fail(path, f"must be at least {low}, got {value}")
    if not t.lr > 0 or not math.isfinite(t.lr):
        fail("train.lr", f"must be positive, got {t.lr}")
    if not t.weight_decay >= 0 or not math.isfinite(t.weight_decay):
        fail("train.weight_decay", f"must not be negative, got {t.weight_decay}")
    for path, name, table in [
        ("train.optimizer", t.optimizer, OPTIMIZERS),
        ("train.scheduler", t.scheduler, SCHEDULERS),
        ("train.loss", t.loss, LOSSES),
    ]:
        if name not in table:
            fail(path, f"unknown {path.split('.')[1]} {name!r}{suggest(name, table)}")
    if t.val_loss not in selection.VAL_LOSSES:
        fail("train.val_loss", f"unknown average {t.val_loss!r}; use one of {', '.join(selection.VAL_LOSSES)}")
    for path, problem in selection.check(t.select_by, t.early_stopping):
        fail(path, problem)
    for path, owner, options, declared in [
        ("train.optimizer_options", t.optimizer, t.optimizer_options, OPTIMIZERS[t.optimizer].options),
        ("train.scheduler_options", t.scheduler, t.scheduler_options, SCHEDULERS[t.scheduler].options),
    ]:
        for key in options:
            if key in declared:
                continue
            accepted = _signature_options(path, owner)
            if key not in accepted:
                hint = suggest(key, accepted) if accepted else " (it takes none)"
                fail(f"{path}.{key}", f"not an option of {owner!r}{hint}")


def _signature_options(path: str, owner: str) -> list[str]:
    """Every option the installed torch's constructor takes (``optim.optimizer_options`` for
    train.optimizer_options, ``optim.scheduler_options`` for train.scheduler_options). Asked, and torch imported,
    only for an option ``choices`` does not list: a misspelt one, or one a newer torch added."""
    from xraybench.train import optim

    return getattr(optim, path.removeprefix("train."))(owner)


def _validate_needs(case: Case, fail) -> None:
    """The data a case requires, and the published result it reproduces."""
    if case.requires_data:
        problem = medmnist_names.name_problem(case.requires_data)
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
        fail(
            "published.source" if not ref.source else "published.table",
            "a published value needs its source and the table (or file) it is printed in",
        )
