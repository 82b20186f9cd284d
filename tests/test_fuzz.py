"""Bad input never tracebacks (issue 32, item 7): property-based tests of every reader of a user's file.

Each reader is fed documents made from the committed ones (benchmarks/cases/*.toml, small valid user case files,
tests/fixtures/results-*.json, the stored baselines), parsed and then mutated a few times at random places
(a field deleted, renamed to a near miss, given another type, a negative, zero, huge or NaN number, an empty or
odd string, nested garbage), written back (TOML by the small writer below, JSON by ``json``), and now and then
truncated or replaced by random text or bytes. Every reader must then either succeed or raise the project's own
error (``CaseError``, ``ResultsError``, ``CheckError``) with a one-line message naming the file; the command line
must exit 0, 1 or 2 and, when it refuses, say so in one line naming the file. Any other exception (KeyError,
TypeError, numpy's ValueError, ...) is a bug: a traceback where a user should have read what is wrong.

The examples are derandomized (the same ones every run) and counted: each test asserts how many it ran.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import importlib
import io
import json
import math
import shutil
import tomllib
import typing
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from xraybench import check, results
from xraybench.cases import (
    PROFILES,
    Case,
    CaseError,
    DataSpec,
    Reference,
    TrainSpec,
    apply_profile,
    load_case_file,
    load_cases,
)
from xraybench.check import CheckError
from xraybench.cli import main
from xraybench.results import ResultsError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CASE_FILES = sorted((ROOT / "benchmarks" / "cases").glob("*.toml"))
RESULTS_FILES = sorted(FIXTURES.glob("results-*.json"))
BASELINE_FILES = [ROOT / "benchmarks" / "baselines" / "smoke-cpu.json", FIXTURES / "baseline-schema1-smoke.json"]

RAN: Counter = Counter()  # examples run per reader (printed at the end of each test, asserted there)


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a Mutated's repr already says what was changed
        report_multiple_bugs=True,
        suppress_health_check=list(HealthCheck),
    )


# ------------------------------------------------------------------------ writing TOML


def toml_text(doc: dict) -> str:
    """A TOML document of ``doc``: one ``"key" = value`` line per top-level key, tables and arrays inline (what
    tomllib reads back equal, NaN aside); enough for fuzzing, where the layout is not what is tested."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items())


def _toml_key(key) -> str:
    return _toml_string(str(key))


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, dt.date | dt.time):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML for {v!r}")


# ---------------------------------------------------------------------- what is mutated

# Small valid user case files, each exercising other fields than the committed ones do.
USER_FILES = {
    "minimal.toml": """
suite = "mine"
[tasks]
A = "a task"
[[case]]
id = "mine-a"
task = "A"
title = "GAP CNN"
model = { name = "hw3_gap_cnn" }
""",
    "everything.toml": """
suite = "mine"
title = "Everything a user file may say"
[tasks]
A = "a task"
B = "another"
[views]
A = "model_selection"
[defaults.data]
image_size = 64
channels = 1
mean = 0.5
std = 0.25
augment = ["hflip"]
[defaults.train]
epochs = 3
batch_size = 16
optimizer = "sgd"
optimizer_options = { momentum = 0.9 }
scheduler = "step"
scheduler_options = { step_size = 2, gamma = 0.5 }
select_by = "val_auc"
early_stopping = { patience = 2, metric = "val_loss" }
[defaults.profile_overrides]
quick = { "train.epochs" = 2 }
[defaults.seeds]
quick = 2
[[case]]
id = "mine-a-cnn"
task = "A"
title = "CNN"
model = { name = "hw3_cnn", options = { dropout = 0.5 } }
profiles = ["smoke", "quick"]
tolerances = { test_acc = "-5pp" }
target_sensitivity = 0.9
compare = ["hw3-a-cnn"]
[[case]]
id = "mine-b-sweep"
task = "B"
title = "sweep"
model = { name = "hw3_gap_cnn" }
grid = { "train.lr" = [1e-3, 1e-2], "train.batch_size" = [16, 32] }
""",
    "extends.toml": """
suite = "mine"
extends = "hw3"
[[case]]
id = "mine-x"
task = "A"
title = "x"
model = { name = "hw3_cnn" }
data = { image_size = 64, pad_to = 0 }
compare = ["hw3-a-cnn"]
""",
    "published.toml": """
suite = "mine"
[tasks]
P = "published"
[[case]]
id = "mine-p"
task = "P"
title = "ResNet-18 (28 px)"
requires_data = "pneumoniamnist@28"
profiles = ["full"]
seeds = { full = 3 }
model = { name = "resnet18_cifar" }
data = { image_size = 28, channels = 1, pad_to = 64, resize = "nearest" }
train = { scheduler = "multistep", select_by = "val_auc", early_stopping = {} }
[case.published]
source = "Yang et al."
table = "a table"
runs = 1
test_acc = 0.854
test_auc = 0.944
test_acc_sd = 0.01
deviations = ["one run"]
""",
}

CASE_SOURCES = {f.name: f.read_text(encoding="utf-8") for f in CASE_FILES} | {
    f"user/{name}": text for name, text in USER_FILES.items()
}
CASE_DOCS = {name: tomllib.loads(text) for name, text in CASE_SOURCES.items()}
JSON_RESULTS = {f.name: f.read_text(encoding="utf-8") for f in RESULTS_FILES}
JSON_BASELINES = {f.name: f.read_text(encoding="utf-8") for f in BASELINE_FILES}

# Field names a mutation may add, with garbage or a plausible value: every name the case files know.
CASE_FIELDS = sorted(
    {"suite", "title", "extends", "tasks", "views", "defaults", "case", "grid", "patience", "metric", "name"}
    | {"options", "train.lr", "train.epochs", "data.image_size", "quick", "smoke", "full"}
    | {f.name for spec in (Case, DataSpec, TrainSpec, Reference) for f in dataclasses.fields(spec)}
)
RESULT_FIELDS = sorted(
    {"schema_version", "kind", "cases", "data", "images", "ids", "labels", "predictions", "metrics", "status"}
    | {"id", "seed", "hash", "config", "retry", "warnings", "tolerances", "settings", "profile", "software"}
    | {"machine_info", "epoch_times", "history", "epoch_time_s", "test_confusion", "test_intervals", "auc", "splits"}
    | set(results.METRICS)
)
# Values the readers know, so that a mutation can get past the first check and into the next.
WORDS = [
    "",
    "ok",
    "failed",
    "skipped",
    "hw3",
    "hw3-a-cnn",
    "mine",
    "A",
    "smoke",
    "quick",
    "full",
    "hw3_cnn",
    "resnet18",
    "adam",
    "step",
    "cosine",
    "bce",
    "val_acc",
    "val_loss",
    "nearest",
    "hflip",
    "train.lr",
    "data.image_size",
    "pneumoniamnist@28",
    "pneumoniamnist@7",
    "test_acc",
    "-2pp",
    "+25%",
    "synthetic",
    "model_selection",
    "é ü 中文 \U0001f600",
    "\u202eevil",
    "two\nlines",
    'quote"back\\slash',
    "2024-01-01",
    "1e3",
    "NaN",
]
NUMBERS = [0, 1, -1, 2, 3, 7, 8, 64, 10**6, 10**30, -(10**30), 0.0, -0.0, 0.5, 1.5, -0.5, 1e-300, 1e308]
NUMBERS += [math.inf, -math.inf, math.nan, True, False]

_scalars = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(NUMBERS),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.booleans(),
)
JSON_GARBAGE = st.recursive(
    st.none() | _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(RESULT_FIELDS) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
TOML_GARBAGE = st.recursive(
    _scalars | st.dates() | st.datetimes() | st.times(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(CASE_FIELDS) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _near_miss(key: str) -> list[str]:
    return [key.upper(), key + "s", key[:-1], key.replace("_", "-"), f" {key}", key.title(), f"{key}.x"]


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _path_text(path: list) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".") or "<document>"


def _mutate(draw, box: list, foci: list[list], garbage, fields: list[str]) -> str:
    """Mutate ``box[0]`` once, at a place reached from a focus by a short random walk; what was done, as text."""
    path = []
    focus = draw(st.sampled_from(foci))
    node = box[0]
    for step in focus:  # as far as the focus still exists in this (already mutated) document
        if step == "#" and isinstance(node, list) and node:
            step = draw(st.integers(0, len(node) - 1))
        if (isinstance(node, dict) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and step < len(node)
        ):
            path.append(step)
            node = node[step]
        else:
            break
    steps = draw(st.integers(0, 3))
    while isinstance(node, dict | list) and node and (steps > 0 or not path):  # never the whole document
        keys = list(reversed(node)) if isinstance(node, dict) else None  # the rows, the cases come last
        step = draw(st.sampled_from(keys)) if keys else draw(st.integers(0, len(node) - 1))
        path.append(step)
        node = node[step]
        steps -= 1
    parent = box[0]
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1] if path else None
    where = _path_text(path)
    if key is None:
        parent, key = box, 0
    op = draw(st.sampled_from(["retype", "delete", "number", "word", "rename", "add", "list", "empty"]))
    if op == "delete" and parent is not box:
        del parent[key]
        return f"{where} deleted"
    if op == "rename" and isinstance(parent, dict):
        new = draw(st.sampled_from(_near_miss(str(key))))
        parent[new] = parent.pop(key)
        return f"{where} renamed {new!r}"
    if op == "add" and isinstance(node, dict):
        name, value = draw(st.sampled_from(fields)), draw(garbage)
        node[name] = value
        return f"{where}.{name} added := {_show(value)}"
    if op == "list" and isinstance(node, list):
        if node and draw(st.booleans()):
            size = draw(st.integers(0, len(node) - 1))
            del node[size:]
            return f"{where} cut to {size} items"
        value = draw(garbage) if not node or draw(st.booleans()) else copy.deepcopy(node[0])
        node.append(value)
        return f"{where} += {_show(value)}"
    if op == "number":
        value = draw(st.sampled_from(NUMBERS) | st.floats() | st.integers())
    elif op == "word":
        value = draw(st.sampled_from(WORDS) | st.text(max_size=8))
    elif op == "empty":
        value = copy.deepcopy(draw(st.sampled_from(["", [], {}])))
    else:
        value = draw(garbage)
    parent[key] = value
    return f"{where} := {_show(value)}"


class Mutated:
    """A file the fuzzer wrote: what it was made from, how, and its bytes (its repr, which Hypothesis prints for a
    failing example, is the reproduction: the source file and the changes, not the bytes)."""

    def __init__(self, source: str, how: list[str], data: bytes):
        self.source, self.how, self.data = source, how, data

    def __repr__(self) -> str:
        shown = f", {self.data[:80]!r}" if self.source == "generated" or len(self.data) <= 80 else ""
        return f"Mutated({self.source!r}, {self.how!r}, {len(self.data)} bytes{shown})"


@st.composite
def mutated_document(draw, names: tuple[str, ...], foci: list[list], garbage, fields: list[str], kind: str):
    """A committed document, parsed, mutated 1–3 times and written; or (one time in five or so) truncated, random
    text, random bytes or another kind of value."""
    name = draw(st.sampled_from(names))
    sources = CASE_SOURCES if kind == "toml" else JSON_RESULTS | JSON_BASELINES
    form = draw(st.sampled_from(["mutated"] * 6 + ["as is", "truncated", "text", "bytes", "value"]))
    if form == "text":
        return Mutated(name, ["random text"], draw(st.text(max_size=40)).encode("utf-8"))
    if form == "bytes":
        return Mutated(name, ["random bytes"], draw(st.binary(max_size=40)))
    if form == "value":
        value = draw(JSON_GARBAGE if kind == "json" else TOML_GARBAGE)
        if kind == "json":
            return Mutated(name, [f"the whole file := {_show(value)}"], json.dumps(value).encode())
        value = value if isinstance(value, dict) else {"suite": value}
        return Mutated(name, [f"the whole file := {_show(value)}"], toml_text(value).encode())
    box = [json.loads(sources[name])] if kind == "json" else [tomllib.loads(sources[name])]
    how = [] if form == "as is" else [_mutate(draw, box, foci, garbage, fields) for _ in range(draw(st.integers(1, 3)))]
    if kind == "json":
        text = json.dumps(box[0])
    elif isinstance(box[0], dict):
        text = toml_text(box[0])
    else:  # the whole document was replaced
        text = toml_text({"suite": box[0]})
    data = text.encode("utf-8")
    if form == "truncated":
        cut = draw(st.integers(0, max(0, len(data) - 1)))
        how.append(f"truncated to {cut} bytes")
        data = data[:cut]
    return Mutated(name, how, data)


@st.composite
def edited_toml(draw):
    """A committed or user case file edited as text: lines deleted, duplicated or swapped, characters inserted."""
    name = draw(st.sampled_from(sorted(CASE_SOURCES)))
    lines = CASE_SOURCES[name].splitlines()
    how = []
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if op == "delete":
            del lines[i]
            how.append(f"line {i + 1} deleted")
        elif op == "duplicate":
            lines.insert(i, lines[i])
            how.append(f"line {i + 1} duplicated")
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            how.append(f"lines {i + 1} and {i + 2} swapped")
        else:
            at = draw(st.integers(0, len(lines[i])))
            text = draw(
                st.sampled_from(["=", "[", "]", '"', "{", "}", ",", "#", "\\", "0", "-", "é"]) | st.text(max_size=3)
            )
            lines[i] = lines[i][:at] + text + lines[i][at:]
            how.append(f"line {i + 1}: {text!r} inserted at column {at + 1}")
        if not lines:
            break
    return Mutated(name, how, "\n".join(lines).encode("utf-8"))


# Plausible values of each field a case (or its defaults) may declare: valid ones and near misses.
FIELD_VALUES = {
    "image_size": [0, 8, 28, 64, 7, -1],
    "channels": [1, 3, 2],
    "mean": [0.5, 0],
    "std": [0.5, 0.0, -1.0],
    "augment": [[], ["hflip"], ["brightness", "hflip"], ["rotate"]],
    "pad_to": [0, 64, 224, 4],
    "resize": ["bilinear", "nearest", "cubic"],
    "epochs": [1, 3, 0],
    "batch_size": [1, 16, 0],
    "optimizer": ["adam", "sgd", "adamw", "rmsprop", "adm"],
    "optimizer_options": [{}, {"momentum": 0.9}, {"betas": [0.9, 0.99]}, {"momentum": "x"}],
    "lr": [1e-3, 0.0, -1.0],
    "weight_decay": [0.0, 0.01, -0.1],
    "scheduler": ["none", "step", "cosine", "exponential", "multistep", "plateau"],
    "scheduler_options": [{}, {"step_size": 2, "gamma": 0.5}, {"milestones": [1, 2]}, {"T_max": 3}],
    "loss": ["bce", "ce", "focal"],
    "seed": [0, 1, -1],
    "feature_cache": [True, False],
    "select_by": ["val_acc", "val_auc", "val_loss", "acc"],
    "early_stopping": [{}, {"patience": 2}, {"patience": 2, "metric": "val_loss"}, {"metric": "val_auc"}],
    "id": ["mine-a", "mine-b", "mine-a", "mine a"],
    "task": ["A", "B", "Z"],
    "title": ["a title"],
    "description": ["what it is"],
    "model": [{"name": "hw3_cnn"}, {"name": "hw3_gap_cnn", "options": {}}, {"name": "resnet18"}, {"name": "nope"}],
    "compare": [[], ["hw3-a-cnn"], ["mine-a"], ["nope"]],
    "profiles": [[], ["smoke"], ["quick", "full"], ["fast"]],
    "profile_overrides": [{}, {"quick": {"train.epochs": 2}}, {"smoke": {"data.image_size": 16}}, {"fast": {}}],
    "tolerances": [{}, {"test_acc": "-5pp"}, {"wall_time": "+25%"}, {"test_acc": "+5pp"}],
    "target_sensitivity": [0.0, 0.9, 1.0],
    "seeds": [{}, {"quick": 2}, {"quick": 0}, {"fast": 1}],
    "requires_data": ["", "pneumoniamnist@28", "pneumoniamnist@7", "cifar"],
    "grid": [{"train.lr": [1e-3, 1e-2]}, {"data.image_size": [16, 32]}, {"train.batch_size": [8]}, {"train.x": [1]}],
    "source": ["Yang et al.", ""],
    "table": ["a table", ""],
    "protocol": ["a repository"],
    "test_acc": [0.85, 85.0, 0.0],
    "test_auc": [0.9, -0.1],
    "test_acc_sd": [0.01],
    "test_auc_sd": [0.02],
    "runs": [1, 3, 0],
    "deviations": [[], ["one run"]],
}
# Hypothesis draws the first of a list most often: the fullest tables and lists first, to reach the checks inside.
FIELD_VALUES = {
    k: sorted(v, key=lambda x: -len(x) if isinstance(x, dict | list) else 0) for k, v in FIELD_VALUES.items()
}
SECTIONS = {"data": DataSpec, "train": TrainSpec, "published": Reference}
CASE_KEYS = [f.name for f in dataclasses.fields(Case) if f.name not in ("suite", "source", "sweep", "sweep_params")]


@st.composite
def _field_value(draw, name: str):
    if draw(st.integers(0, 9)) == 9:  # Hypothesis favours 0: garbage one time in ten or less
        return draw(TOML_GARBAGE)
    if name in SECTIONS:
        names = [f.name for f in dataclasses.fields(SECTIONS[name])]
        chosen = draw(st.lists(st.sampled_from(names), max_size=4, unique=True))
        return {k: draw(_field_value(k)) for k in chosen}
    value = copy.deepcopy(draw(st.sampled_from(FIELD_VALUES.get(name, [""]))))
    inner = value
    while isinstance(inner, dict) and inner and draw(st.integers(0, 2)) == 2:  # garbage inside a valid table
        key = draw(st.sampled_from(list(inner)))
        if isinstance(inner[key], dict) and inner[key] and draw(st.booleans()):
            inner = inner[key]
            continue
        inner[key] = draw(TOML_GARBAGE)
        break
    return value


@st.composite
def generated_case_file(draw):
    """A user case file built field by field: each a valid value, a near miss or garbage (then mutated 0–2 times)."""

    def table(keys: list[str], required: list[str] = ()) -> dict:
        chosen = list(required) + draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))
        return {k: draw(_field_value(k)) for k in dict.fromkeys(chosen)}

    doc = {"suite": "mine"}
    if draw(st.integers(0, 3)) == 3:
        doc["extends"] = draw(st.sampled_from(["hw3", "hw4", "published", "mine", "nope"]))
    if not doc.get("extends") or draw(st.booleans()):
        doc["tasks"] = draw(st.sampled_from([{"A": "a task"}, {"A": "a", "B": "b"}, {"A": "a", "B": "b"}, {}]))
    if draw(st.integers(0, 3)) == 3:
        doc["views"] = draw(st.sampled_from([{"A": "model_selection"}, {"A": "compare_modes"}, {"A": "test_gap"}]))
    if draw(st.booleans()):
        doc["defaults"] = table(["model", "data", "train", "profile_overrides", "seeds", "profiles", "published"])
    doc["case"] = [table(CASE_KEYS, ["id", "task", "title", "model"]) for _ in range(draw(st.integers(1, 2)))]
    box = [doc]
    how = [_mutate(draw, box, CASE_FOCI, TOML_GARBAGE, CASE_FIELDS) for _ in range(draw(st.integers(0, 3)) // 2)]
    text = toml_text(box[0] if isinstance(box[0], dict) else {"suite": box[0]})
    return Mutated("generated", [toml_text(doc).strip(), *how], text.encode("utf-8"))


CASE_FOCI = [[], ["tasks"], ["defaults"], ["defaults", "train"], ["defaults", "data"], ["case", "#"]]
CASE_FOCI += [["case", "#", "model"], ["case", "#", "train"], ["case", "#", "data"], ["case", "#", "published"]]
RESULTS_FOCI = [[], ["cases", "#"], ["cases", "#", "metrics"], ["cases", "#", "predictions"], ["data"]]
RESULTS_FOCI += [["data", "images"], ["data", "images", "test"], ["settings"], ["software"], ["schema_version"]]
BASELINE_FOCI = [*RESULTS_FOCI, ["tolerances"], ["kind"], ["cases", "#", "epoch_times"]]

case_files = mutated_document(tuple(CASE_SOURCES), CASE_FOCI, TOML_GARBAGE, CASE_FIELDS, "toml") | generated_case_file()
results_files = mutated_document(tuple(JSON_RESULTS), RESULTS_FOCI, JSON_GARBAGE, RESULT_FIELDS, "json")
baseline_files = mutated_document(tuple(JSON_BASELINES), BASELINE_FOCI, JSON_GARBAGE, RESULT_FIELDS, "json")


# ------------------------------------------------------------------------- the outcomes


def assert_refused_well(exc: Exception, error: type, files: list[Path]) -> None:
    """The project's own error, one line, naming the file (one of ``files``)."""
    assert type(exc) is error, f"{type(exc).__name__} instead of {error.__name__}: {exc}"
    message = str(exc)
    assert "\n" not in message.strip(), f"a message of several lines: {message!r}"
    assert any(str(f) in message for f in files), f"the message names no file ({files}): {message!r}"


def assert_runnable(cases) -> None:
    """A case file that loads can be run: under every profile each setting has its declared type (a setting
    of another type would fail in the middle of a run, not when the file is read)."""
    for case in cases:
        for profile in PROFILES.values():
            applied = apply_profile(case, profile)
            for spec in (applied.data, applied.train):
                for name, hint in typing.get_type_hints(type(spec)).items():
                    value, expected = getattr(spec, name), typing.get_origin(hint) or hint
                    ok = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
                    ok = ok or (expected is float and isinstance(value, int) and not isinstance(value, bool))
                    assert ok, f"{case.id} under {profile.name}: {name} = {value!r} is not {hint}"
            assert isinstance(applied.config_hash, str)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def builtin_suites():
    return load_cases()[1]


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# ------------------------------------------------------------------------------ case files


def test_toml_writer_reads_back():
    for name, doc in CASE_DOCS.items():
        assert tomllib.loads(toml_text(doc)) == doc, name


def test_unmutated_user_files_load(workdir, builtin_suites):
    for name, text in USER_FILES.items():
        path = _fresh(workdir / "plain") / name
        path.write_text(text, encoding="utf-8")
        assert_runnable(load_case_file(path, builtin_suites)[1])
        assert_runnable(load_cases([path])[0])


def _user_file(how: str, extra: str) -> Mutated:
    """The minimal user file with ``extra`` lines added to its case: a reproduction found by fuzzing."""
    return Mutated("user/minimal.toml", [how], (USER_FILES["minimal.toml"] + extra).encode("utf-8"))


def test_case_files_never_traceback(workdir, builtin_suites):
    """load_case_file on mutated case files (the committed ones and small user files) and on generated ones."""
    folder = _fresh(workdir / "case-files")

    @fuzz_settings(500)
    @given(case_files)
    @example(Mutated("user/minimal.toml", ["not UTF-8"], b'suite = "mine"\n# \xff\n'))
    @example(
        _user_file("early_stopping.metric a list", "train = { early_stopping = { patience = 2, metric = [1] } }\n")
    )
    @example(_user_file("grid over a section that is not a table", 'train = 5\ngrid = { "train.lr" = [1e-3] }\n'))
    @example(
        _user_file("profile override of another type", 'profile_overrides = { quick = { "train.epochs" = "x" } }\n')
    )
    def run(file: Mutated):
        RAN["case files"] += 1
        path = folder / "cases.toml"
        path.write_bytes(file.data)
        try:
            _, cases = load_case_file(path, builtin_suites)
        except CaseError as exc:
            assert_refused_well(exc, CaseError, [path])
            return
        assert_runnable(cases)

    run()
    print(f"case files: {RAN['case files']} examples")
    assert RAN["case files"] >= 400


def test_edited_case_files_never_traceback(workdir, builtin_suites):
    """load_case_file on case files edited as text: lines lost, doubled, swapped, stray characters."""
    folder = _fresh(workdir / "edited")

    @fuzz_settings(300)
    @given(edited_toml())
    def run(file: Mutated):
        RAN["edited case files"] += 1
        path = folder / "cases.toml"
        path.write_bytes(file.data)
        try:
            _, cases = load_case_file(path, builtin_suites)
        except CaseError as exc:
            assert_refused_well(exc, CaseError, [path])
            return
        assert_runnable(cases)

    run()
    print(f"edited case files: {RAN['edited case files']} examples")
    assert RAN["edited case files"] >= 250


def test_load_cases_never_tracebacks(workdir):
    """load_cases (built-in files, then the user's) on one mutated user file or a folder of two, the second
    extending the first (extends order, circles, duplicate ids, compare across files)."""
    folder = workdir / "load-cases"

    @fuzz_settings(120)
    @given(case_files, st.none() | case_files, st.booleans())
    def run(first: Mutated, second: Mutated | None, extend: bool):
        RAN["load_cases"] += 1
        here = _fresh(folder)
        (here / "a.toml").write_bytes(first.data)
        paths = [here / "a.toml"]
        if second is not None:
            data = second.data
            if extend:  # build on the first file's suite, whatever it is
                data = b'extends = "mine"\n' + data if b"extends" not in data else data
            (here / "b.toml").write_bytes(data)
            paths.append(here / "b.toml")
        try:
            cases, _ = load_cases([here] if second is not None else paths)
        except CaseError as exc:
            assert_refused_well(exc, CaseError, [here, *paths])
            return
        assert_runnable(cases)

    run()
    print(f"load_cases: {RAN['load_cases']} examples")
    assert RAN["load_cases"] >= 100


# ---------------------------------------------------------------------- results, baselines


def test_results_reader_never_tracebacks(workdir):
    folder = _fresh(workdir / "results")

    @fuzz_settings(400)
    @given(results_files)
    def run(file: Mutated):
        RAN["results.read"] += 1
        path = folder / "results.json"
        path.write_bytes(file.data)
        try:
            doc = results.read(path)
        except ResultsError as exc:
            assert_refused_well(exc, ResultsError, [path])
            return
        results.by_case(doc)

    run()
    print(f"results.read: {RAN['results.read']} examples")
    assert RAN["results.read"] >= 350


def test_baseline_reader_never_tracebacks(workdir):
    folder = _fresh(workdir / "baselines")

    @fuzz_settings(800)
    @given(baseline_files)
    def run(file: Mutated):
        RAN["read_baseline"] += 1
        path = folder / "baseline.json"
        path.write_bytes(file.data)
        try:
            check.read_baseline(path)
        except CheckError as exc:
            assert_refused_well(exc, CheckError, [path])

    run()
    print(f"read_baseline: {RAN['read_baseline']} examples")
    assert RAN["read_baseline"] >= 700


# The runs and the baselines they are checked against (each pair compares as stored: exit 0 or 1).
PAIRS = [
    ("results-hw3-sweep-smoke.json", "smoke-cpu.json"),
    ("results-hw3-smoke.json", "smoke-cpu.json"),
    ("results-all-smoke.json", "baseline-schema1-smoke.json"),
]


@st.composite
def run_and_baseline(draw):
    run_name, baseline_name = draw(st.sampled_from(PAIRS))
    side = draw(st.sampled_from(["run", "run", "baseline", "both"]))
    run = mutated_document((run_name,), RESULTS_FOCI, JSON_GARBAGE, RESULT_FIELDS, "json")
    base = mutated_document((baseline_name,), BASELINE_FOCI, JSON_GARBAGE, RESULT_FIELDS, "json")
    as_is = (JSON_RESULTS[run_name], JSON_BASELINES[baseline_name])
    return (
        draw(run) if side != "baseline" else Mutated(run_name, [], as_is[0].encode()),
        draw(base) if side != "run" else Mutated(baseline_name, [], as_is[1].encode()),
    )


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_cli_outcome(code, out: str, err: str, files: list[Path]) -> None:
    assert code in (0, 1, 2), f"exit code {code!r}"
    assert "Traceback" not in out + err
    if code == 2:
        last = err.rstrip("\n").split("\n")[-1]
        assert err.strip() == last.strip(), f"the refusal is not one line: {err!r}"
        assert last.startswith("xraybench: error: "), last
        assert any(str(f) in last for f in files), f"the refusal names no file ({files}): {last!r}"


def test_check_command_never_tracebacks(workdir):
    """xraybench check RUN_DIR --baseline FILE --json on a mutated run, baseline or both."""
    folder = workdir / "check"

    @fuzz_settings(500)
    @given(run_and_baseline())
    def run(pair: tuple[Mutated, Mutated]):
        RAN["check"] += 1
        run_dir = _fresh(folder / "run")
        (run_dir / "results.json").write_bytes(pair[0].data)
        baseline = folder / "baseline.json"
        baseline.write_bytes(pair[1].data)
        code, out, err = run_cli(["check", str(run_dir), "--baseline", str(baseline), "--json"])
        assert_cli_outcome(code, out, err, [run_dir, baseline])
        if code in (0, 1):
            assert json.loads(out)["exit_code"] == code

    run()
    print(f"check: {RAN['check']} examples")
    assert RAN["check"] >= 450


def test_report_command_never_tracebacks(workdir, monkeypatch):
    """xraybench report RUN_DIR on a few mutated runs (the HTML page only: the PDF would take seconds each)."""
    render = importlib.import_module("xraybench.report.render")

    def html_only(context, template, out, stem, date):
        page = out / f"{stem}.html"
        page.write_text(render.render_html(context, template, screen=True), encoding="utf-8")
        return page, out / f"{stem}.pdf"

    monkeypatch.setattr(render, "write_pages", html_only)
    folder = workdir / "report"

    @fuzz_settings(10)
    @given(mutated_document(("results-hw3-smoke.json",), RESULTS_FOCI, JSON_GARBAGE, RESULT_FIELDS, "json"))
    def run(file: Mutated):
        RAN["report"] += 1
        run_dir = _fresh(folder / "run")
        (run_dir / "results.json").write_bytes(file.data)
        code, out, err = run_cli(["report", str(run_dir)])
        assert_cli_outcome(code, out, err, [run_dir])

    run()
    print(f"report: {RAN['report']} examples")
    assert RAN["report"] >= 8
