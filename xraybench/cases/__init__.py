"""Benchmark cases: the Case record and profiles (``spec``), reading and checking case files (``loading``,
``validation``), what a run takes of them and how ``--set`` changes them (``choosing``), and the case file's JSON
Schema (``schema``).

A case file (TOML, in benchmarks/cases/) declares one suite: its tasks and the question each asks,
defaults shared by its cases, and the cases themselves. Every field is checked when the file is loaded, so a
misspelt field or an unknown model fails before any training starts, naming the file, the
case and the field.
"""

from xraybench.cases.choosing import confounded, override, select
from xraybench.cases.loading import declared_in, load_case_file, load_cases
from xraybench.cases.spec import (
    DEFAULT_CASES_DIR,
    PROFILES,
    RANDOM_INIT_NOTE,
    Case,
    CaseError,
    DataSpec,
    ModelSpec,
    Profile,
    Reference,
    Suite,
    TrainSpec,
    apply_profile,
    default_profile,
    with_random_init,
)
from xraybench.data.augmentations import AUGMENTATIONS  # what data.augment may name
from xraybench.results import VIEWS  # what a suite's views may name

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_CASES_DIR",
    "PROFILES",
    "RANDOM_INIT_NOTE",
    "VIEWS",
    "Case",
    "CaseError",
    "DataSpec",
    "ModelSpec",
    "Profile",
    "Reference",
    "Suite",
    "TrainSpec",
    "apply_profile",
    "confounded",
    "declared_in",
    "default_profile",
    "load_case_file",
    "load_cases",
    "override",
    "select",
    "with_random_init",
]
