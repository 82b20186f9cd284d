"""The command line's parser: one function per command, each declaring its arguments and the module that runs
it (``dispatch.command``), so that a command's options are read in one place."""

from __future__ import annotations

import argparse
from pathlib import Path

from xraybench import __version__, history
from xraybench.cases import PROFILES
from xraybench.check.baselines import DEFAULT_DIR
from xraybench.cli.dispatch import command
from xraybench.cli.run_parser import run_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xraybench",
        description="Chest X-ray classification benchmarks "
        "(NORMAL vs PNEUMONIA) that write their own homework-style report.",
    )
    parser.add_argument("--version", action="version", version=f"xraybench {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a name, found also in the working directory, or a .py file) before the "
        "command: its @register_model models become usable (repeatable)",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser = _with_parents(sub.add_parser, common)
    cases_arg = dict(
        type=Path,
        action="append",
        metavar="PATH",
        help="your case file or folder (repeatable), added to the built-in cases; --all then means its cases",
    )
    wide = dict(action="store_true", help="print every column in full (default: fit 100 columns)")

    _list(sub, cases_arg, wide)
    run_parser(sub, cases_arg, wide)
    _weights(sub, cases_arg)
    _report(sub)
    _check(sub, wide)
    _history(sub)
    _baseline(sub)
    _export(sub)
    _schema(sub)
    return parser


def _list(sub, cases_arg: dict, wide: dict) -> None:
    p = sub.add_parser("list", help="list the declared cases")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style id patterns, e.g. 'hw3*'")
    p.add_argument("--cases", **cases_arg)
    p.add_argument(
        "--runnable",
        action="store_true",
        help="only the cases that can run here and now (profile, weights on disk, no other data needed)",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="the profile whose configuration hashes are shown "
        "(default: the one run picks here: full on a GPU, quick on a CPU)",
    )
    p.add_argument("--wide", **wide)
    p.set_defaults(command=command("listing", "cmd_list"))


def _weights(sub, cases_arg: dict) -> None:
    p = sub.add_parser("weights", help="list the pretrained weight files cases need (or fetch them)")
    p.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    p.add_argument("--cases", **cases_arg)
    p.set_defaults(command=command("listing", "cmd_weights"))


def _report(sub) -> None:
    p = sub.add_parser("report", help="(re)render report.pdf and report.html from a run's results.json")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--baseline", type=Path, metavar="FILE", help="show the regression check against FILE")
    p.set_defaults(command=command("checks", "cmd_report"))


def _check(sub, wide: dict) -> None:
    p = sub.add_parser("check", help="compare a run with a stored baseline (exit 0 ok, 1 regression, 2 could not)")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="default: benchmarks/baselines/PROFILE-DEVICE.json for the run's profile and device",
    )
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. test_acc:-2pp or wall_time:+25%% (repeatable)",
    )
    p.add_argument(
        "--allow-missing",
        nargs="+",
        default=[],
        metavar="CASE",
        help="case ids (shell-style patterns) that may be missing, skipped or failed in this run without "
        "counting as a regression",
    )
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument("--wide", **wide)
    p.set_defaults(command=command("checks", "cmd_check"))


def _history(sub) -> None:
    p = sub.add_parser(
        "history",
        help="each case's test accuracy and AUC across runs; flags a run that moved beyond "
        "the noise of the runs before it (exit 0 ok, 1 the latest run is worse, 2 could not)",
    )
    p.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="run directories or results files")
    p.add_argument(
        "--baselines",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of stored baselines (or one baseline file); repeatable",
    )
    p.add_argument(
        "--lookback",
        type=int,
        default=history.LOOKBACK,
        metavar="N",
        help=f"test each run against the pooled seeds of up to N earlier runs (default {history.LOOKBACK})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reports") / "history",
        metavar="DIR",
        help="where history.html and history.pdf go (default: reports/history)",
    )
    p.add_argument("--json", action="store_true", help="print every series as JSON instead of the table")
    p.set_defaults(command=command("checks", "cmd_history"))


def _baseline(sub) -> None:
    p = sub.add_parser("baseline", help="store a run as a baseline")
    p.add_argument("action", choices=["save"])
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--name", help="default: PROFILE-DEVICE, e.g. smoke-cpu")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="SPEC",
        help="tolerances stored with the baseline, e.g. wall_time:+300%%",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="default: benchmarks/baselines in the working directory (where check looks first)",
    )
    p.add_argument("--force", action="store_true", help="replace a baseline of the same name")
    p.set_defaults(command=command("checks", "cmd_baseline"))


def _export(sub) -> None:
    p = sub.add_parser(
        "export", help="write a run as a table: one row per case and seed, metrics and settings as columns"
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--csv", type=Path, required=True, metavar="FILE", help="the CSV file to write")
    p.set_defaults(command=command("exports", "cmd_export"))


def _schema(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a case file, results.json or a stored baseline")
    p.add_argument("kind", choices=["case", "results", "baseline"])
    p.set_defaults(command=command("exports", "cmd_schema"))


def _with_parents(add_parser, common: argparse.ArgumentParser):
    """Every command takes the common options (``--import``)."""

    def add(name, **kwargs):
        return add_parser(name, parents=[common], **kwargs)

    return add
