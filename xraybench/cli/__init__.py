"""Command line: ``xraybench list | run | report | check | history | baseline | weights | export | schema``.

The parser is ``parser`` (one function per command; ``run``'s options in ``run_parser``); each group of commands
has its module: ``run`` (training), ``listing`` (the cases and what they need), ``checks`` (reports, regression
checks, history, baselines), ``exports`` (a run as a CSV table, the JSON Schemas), imported when one of its commands
runs (``dispatch``): only ``run`` loads torch (and ``list`` without ``--profile``, to ask it for a GPU, where a GPU
driver is installed). Errors a user can fix (a bad case file, bad data, a bad flag) print one line naming the file,
field or value and exit 2; a run with a failed case exits 1.
"""

from __future__ import annotations

import sys

from xraybench.cli.dispatch import is_user_error
from xraybench.cli.imports import import_modules
from xraybench.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import_modules(args.imports)
        return args.command(args)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"xraybench: error: {exc}", file=sys.stderr)
        return 2
