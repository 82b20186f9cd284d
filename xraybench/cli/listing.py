"""``xraybench list`` and ``xraybench weights``: the declared cases, what each needs, what it cites."""

from __future__ import annotations

import ctypes
import os
import sys
from collections import Counter

from tabulate import tabulate

from xraybench import cases as case_mod
from xraybench.cases import PROFILES, apply_profile
from xraybench.models import registry
from xraybench.models.backbones import required_weights
from xraybench.models.weights import fetch as fetch_weights
from xraybench.report.console import clip
from xraybench.report.formatting import plural

MODES = {"from scratch": "scratch", "finetune": "finetune", "frozen": "frozen", "linear_probe": "probe"}
LEGEND = (
    "needs: weights = a weight file on disk; fetch = one not on disk (fetched where the network answers, "
    "else skipped); @N = --data pneumoniamnist@N; full = --profile full. A sweep is one line (list 'SWEEP*' "
    "--wide: each point and its hash)"
)


def cmd_list(args) -> int:
    cases, suites = case_mod.load_cases(args.cases)
    cases = case_mod.select(cases, args.patterns) if args.patterns else case_mod.declared_in(cases, args.cases)
    profile = PROFILES[args.profile or default_profile()]
    shown = [c for c in cases if _runnable(c, profile)] if args.runnable else cases
    if args.wide:
        headers = [
            "id",
            "task",
            "title",
            "model",
            "mode",
            "needs",
            "profiles",
            "declared hash",
            f"hash ({profile.name})",
            "published (test)",
        ]
        rows = [
            [
                c.id,
                f"{c.suite} {c.task}",
                c.title,
                c.model.name,
                c.mode,
                "; ".join(_needs(c, full=True)) or "-",
                ", ".join(c.profiles) or "all",
                c.config_hash,
                apply_profile(c, profile).config_hash,
                _reference(c.published),
            ]
            for c in shown
        ]
        print(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    else:
        print(_grouped_table(shown, suites, profile))
    by_suite = Counter(c.suite for c in cases)
    runnable = sum(_runnable(c, profile) for c in cases)
    print(
        clip(
            f"\n{len(shown)} of {plural(len(cases), 'case')} shown ("
            + ", ".join(f"{suite} {n}" for suite, n in by_suite.items())
            + f"); {runnable} can run here and now "
            f"with --profile {profile.name} (xraybench list --runnable)",
            args.wide,
        )
    )
    print(clip(LEGEND, args.wide))
    for name in sorted({c.model.name for c in cases}):
        if registry.origin(name) != "built-in":
            print(f"model {name}: {registry.origin(name)}")
    return 0


def _grouped_table(cases, suites, profile) -> str:
    """One line per case (a sweep's points as one), under a line naming its suite and task: the task column's
    width goes to the ids."""
    points = Counter(c.sweep for c in cases if c.sweep)
    rows, groups = [], []
    for c in cases:
        if c.sweep and rows and rows[-1][0] == f"{c.sweep}.*":
            continue
        rows.append(
            [
                f"{c.sweep}.*" if c.sweep else c.id,
                c.model.name,
                MODES.get(c.mode, c.mode),
                " ".join(_needs(c)) or "-",
                plural(points[c.sweep], "point") if c.sweep else apply_profile(c, profile).config_hash,
            ]
        )
        groups.append((c.suite, c.task))
    lines = tabulate(
        rows,
        headers=["id", "model", "mode", "needs", f"hash ({profile.name})"],
        tablefmt="simple",
        disable_numparse=True,
    ).split("\n")
    out, previous = lines[:2], None
    for line, group in zip(lines[2:], groups):
        if group != previous:
            task = suites[group[0]].tasks.get(group[1], "") if group[0] in suites else ""
            out.append(clip(f"{group[0]} {group[1]}" + (f": {task}" if task else ""), False))
            previous = group
        out.append(line)
    return "\n".join(out)


def default_profile() -> str:
    """The profile ``run`` picks here when none is named (by whether torch sees a GPU). Without a GPU driver torch
    can see none, and is not loaded to be asked: ``list`` stays without torch on a machine without a GPU."""
    gpu = "torch" in sys.modules or _gpu_driver()
    if gpu:
        import torch

        gpu = torch.cuda.is_available()
    return case_mod.default_profile("cuda" if gpu else "cpu").name


def _gpu_driver() -> bool:
    """Whether a driver through which torch might see a GPU is installed: CUDA's (libcuda; nvcuda.dll on Windows)
    or ROCm's (/dev/kfd). macOS has neither."""
    if sys.platform == "darwin":
        return False
    if os.path.exists("/dev/kfd"):
        return True
    for library in ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(library)
        except OSError:
            continue
        return True
    return False


def _runnable(case, profile) -> bool:
    """In this profile, on the built-in data, with its weight file on disk (or none needed)."""
    file = required_weights(case.model.name, case.model.options)
    return (
        (not case.profiles or profile.name in case.profiles)
        and not case.requires_data
        and (file is None or file.present)
    )


def _needs(case, full: bool = False) -> list[str]:
    file = required_weights(case.model.name, case.model.options)
    needs = []
    if case.requires_data:
        needs.append(f"--data {case.requires_data}" if full else f"@{case.requires_data.rpartition('@')[2]}")
    if file is not None:
        needs.append(
            f"weights {file.path.name} ({'present' if file.present else 'missing'})"
            if full
            else "weights"
            if file.present
            else "fetch"
        )
    if case.profiles and "quick" not in case.profiles and (full or not case.requires_data):
        needs.append(f"--profile {' or '.join(case.profiles)}" if full else "/".join(case.profiles))
    return needs


def _reference(ref) -> str:
    if not ref.source:
        return "-"
    values = ", ".join(f"{name.removeprefix('test_').upper()} {value:.4g}" for name, (value, _) in ref.metrics.items())
    return f"{values} ({ref.source}, {ref.table})"


def cmd_weights(args) -> int:
    cases, _ = case_mod.load_cases(args.cases)
    cases = case_mod.declared_in(cases, args.cases)
    files = {}
    for case in cases:
        file = required_weights(case.model.name, case.model.options)
        if file is not None:
            files.setdefault(file.path, (file, []))[1].append(case.id)
    if args.action == "fetch":
        for file, _ in files.values():
            if not file.present and file.url:
                print(f"fetching {file.url} → {file.path}")
                fetch_weights(file)
    rows = [
        [file.model, "present" if file.present else "MISSING", str(file.path), len(ids)] for file, ids in files.values()
    ]
    print(tabulate(rows, headers=["model", "status", "file (where it belongs)", "cases"], tablefmt="simple"))
    missing = [file for file, _ in files.values() if not file.present]
    if missing and args.action == "list":
        print(
            f"\n{len(missing)} file(s) missing: cases that need them are skipped. Place each file at the path "
            f"shown (TORCH_HOME moves the torch hub cache), or run 'xraybench weights fetch' where a network exists."
        )
    return 0
