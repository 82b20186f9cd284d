"""How the command line reaches a command without importing the others: a command's module is imported when
it runs, a flag's choices when they are read, and an error is recognised as the user's by its class alone. So
``list``, ``weights``, ``report``, ``check``, ``history`` and ``baseline`` load no torch; ``run`` does.

A new command registers as ``p.set_defaults(command=command("module", "cmd_name"))``; an error a user can fix
that a new module raises joins ``USER_ERRORS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

# The errors a user can fix: each class by the part of xraybench that defines it (the module, or a package above
# it) and its name. Recognising one imports nothing: ``list`` does not load what ``run`` needs to know its errors.
USER_ERRORS = (
    ("xraybench.cases", "CaseError"),
    ("xraybench.check", "CheckError"),
    ("xraybench.data", "DataError"),
    ("xraybench.environment", "DeviceError"),
    ("xraybench.executors", "ExecutorError"),
    ("xraybench.cli.exports", "ExportError"),
    ("xraybench.history", "HistoryError"),
    ("xraybench.train.precision", "PrecisionError"),
    ("xraybench.results", "ResultsError"),
    ("xraybench.runner", "RunError"),
    ("xraybench.train.logs", "TensorBoardMissing"),
    ("xraybench.results", "ToleranceError"),
)


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of USER_ERRORS, or of a class derived from one."""
    return any(
        (".".join(cls.__module__.split(".")[:depth]), cls.__name__) in USER_ERRORS
        for cls in type(exc).__mro__
        for depth in range(1, cls.__module__.count(".") + 2)
    )


def command(module: str, name: str):
    """The command ``name`` of ``xraybench.cli.<module>``, imported when it runs."""

    def run(args) -> int:
        return getattr(importlib.import_module(f"xraybench.cli.{module}"), name)(args)

    run.__name__ = run.__qualname__ = name
    return run


class Deferred(Sequence):
    """The choices of a flag that live in a module only its command needs (``--precision``: torch), imported when
    argparse first reads them: parsing that flag, or printing its command's help. Set on the action after
    ``add_argument``, which would otherwise read them to check the metavar."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _values(self) -> Sequence:
        return getattr(importlib.import_module(self.module), self.name)

    def __getitem__(self, index):
        return self._values()[index]

    def __len__(self) -> int:
        return len(self._values())
