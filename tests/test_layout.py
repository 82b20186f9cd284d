"""The package map of docs/architecture.md, held by tests: public names import from their documented
place, each part imports only the parts beneath it, and the top level stays small."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xraybench"

# (module, name): the places docs/ and the README point users to.
PUBLIC = [
    ("xraybench.cli", "main"),
    ("xraybench", "register_model"),
    ("xraybench", "create_model"),
    ("xraybench", "list_models"),
    ("xraybench.models", "register_model"),
    ("xraybench.models", "create_model"),
    ("xraybench.models", "list_models"),
    ("xraybench.models", "model_options"),
    ("xraybench.cases", "load_cases"),
    ("xraybench.cases", "select"),
    ("xraybench.cases", "Case"),
    ("xraybench.cases", "PROFILES"),
    ("xraybench.cases", "apply_profile"),
    ("xraybench.cases", "declared_in"),
    ("xraybench.cases", "override"),
    ("xraybench.cases", "confounded"),
    ("xraybench.cases", "default_profile"),
    ("xraybench.results", "SCHEMA_VERSION"),
    ("xraybench.results", "read"),
    ("xraybench.results", "write"),
    ("xraybench.results", "by_case"),
    ("xraybench.results", "CaseResult"),
    ("xraybench.results", "METRICS"),
    ("xraybench.results", "Tolerance"),
    ("xraybench.runner", "run"),
    ("xraybench.runner", "RunPlan"),
    ("xraybench.check", "compare"),
    ("xraybench.check", "make_baseline"),
    ("xraybench.check", "read_baseline"),
    ("xraybench.check", "comparable"),
    ("xraybench.check", "save"),
    ("xraybench.check", "default_path"),
    ("xraybench.report", "render"),
    ("xraybench.report", "build_context"),
    ("xraybench.data", "open_source"),
    ("xraybench.data", "BatchLoader"),
    ("xraybench.data", "Dataset"),
    ("xraybench.data.cache", "prepare"),
    ("xraybench.train.engine", "train_case"),
    ("xraybench.train.worker", "run_job"),
    ("xraybench.train.worker", "Job"),
    ("xraybench.train.precision", "choose"),
    ("xraybench.executors", "create"),
    ("xraybench.executors", "LocalExecutor"),
    ("xraybench.stats", "wilson"),
    ("xraybench.stats", "compare_procedures"),
    ("xraybench.stats", "direction"),
    ("xraybench.stats", "THRESHOLD"),
    ("xraybench.stats", "pair_seeds"),
    ("xraybench.stats", "paired_accuracy"),
    ("xraybench.stats.delong", "compare_aucs"),
    ("xraybench.results", "read"),
    ("xraybench.results", "Run"),
    ("xraybench.results", "Row"),
    ("xraybench.results", "json_schema"),
    ("xraybench.cases.schema", "case_file_schema"),
    ("xraybench.stats.operating", "case_operating_points"),
    ("xraybench.stats", "expected_max"),
]


@pytest.mark.parametrize("module, name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_names_import_from_their_documented_place(module, name):
    assert getattr(importlib.import_module(module), name) is not None


# What each part may import (the parts of xraybench; a dotted name allows one module of a part). The data
# flows case → data + model → training → results → report / check; the vocabularies a case is checked
# against (the model registry, optimisers, objectives) and the results schema sit beneath the cases.
ALLOWED = {
    "files": set(),
    "stats": {"stats"},
    "download": {"files"},
    "environment": {"xraybench"},
    "results": {"files", "stats"},
    "data": {"data", "download"},
    "models": {"models", "download", "environment"},
    "cases": {
        "results",
        "models",
        "train.choices",
        "train.optim",  # only for an option train.choices does not list (it imports torch)
        "train.selection",
        "data.images",
        "data.augmentations",
        "data.medmnist_names",
    },
    "train": {"train", "data", "models", "environment", "results", "stats"},
    "executors": {"executors", "train"},
    "runner": {"cases", "data", "environment", "executors", "models", "results", "stats", "train"},
    "check": {"files", "results", "stats"},
    "history": {"results", "stats", "check"},
    "report": {"report", "results", "stats", "check", "history", "data.patients", "data.medmnist_names"},
    "cli": {"*"},
}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "xraybench"


def imports(module: str, path: Path) -> set[str]:
    """Every xraybench module ``path`` imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("xraybench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xraybench"):
            found |= {f"{node.module}.{a.name}" for a in node.names}  # a submodule, or a name in the module
    return found


def allowed(source: str, target: str) -> bool:
    rules = ALLOWED[part(source)]
    if "*" in rules or part(target) == part(source):
        return True
    inner = target.split(".", 1)[1] if "." in target else "xraybench"
    return any(inner == rule or inner.startswith(rule + ".") for rule in rules)


def test_every_part_has_rules():
    assert {part(m) for m, _ in modules()} == set(ALLOWED) | {"xraybench"}


def test_each_part_imports_only_the_parts_beneath_it():
    wrong = [
        f"{module} imports {target}"
        for module, path in modules()
        if part(module) != "xraybench"
        for target in sorted(imports(module, path))
        if not allowed(module, target)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_an_upward_import():
    assert not allowed("xraybench.stats.paired", "xraybench.report.formatting.pct")
    assert not allowed("xraybench.cases", "xraybench.check.Tolerance")
    assert not allowed("xraybench.cases", "xraybench.train.engine.train_case")
    assert allowed("xraybench.cases", "xraybench.train.optim")
    assert allowed("xraybench.report.render", "xraybench.check")


def test_loading_cases_needs_neither_the_checker_nor_scipy():
    code = (
        "import sys, xraybench.cases as c; c.load_cases(); "
        "print(sorted(m for m in ('scipy', 'sklearn', 'torch', 'xraybench.check', 'xraybench.report') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_top_level_stays_small():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 8, top


@pytest.mark.parametrize("module, path", list(modules()), ids=[m for m, _ in modules()])
def test_no_module_grows_past_one_screenful_of_jobs(module, path):
    """~350 lines is where a module starts holding two jobs (cases.py reached 440 and became a package:
    the records and profiles in ``spec``, reading and checking files in ``loading``)."""
    assert len(path.read_text().splitlines()) <= 350


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff_holds_the_code(command):
    """ruff's lint rules and its formatting (settings in pyproject.toml) hold on every file, so CI keeps them."""
    root = PACKAGE.parent
    done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
