"""``--import MODULE``: a user's own models, registered by importing their module before the command runs.

A console script does not put the working directory on ``sys.path`` (``python -c`` does), so a module beside
the user's case file would not be found; it is looked up there too. A path to a ``.py`` file is imported as a
module of its own name. Installed packages register through the ``xraybench.models`` entry-point group instead
(``xraybench.models.registry``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from xraybench.cases import CaseError


def import_modules(names: list[str]) -> None:
    for name in names:
        _import(name)


def _import(name: str) -> None:
    path = Path(name)
    try:
        if path.suffix == ".py":
            if not path.is_file():
                raise CaseError(f"--import {name}: no such file")
            if getattr(sys.modules.get(path.stem), "__file__", None) == str(path.resolve()):
                return  # imported already (a second command in one process): its models are registered
            spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        importlib.import_module(name)
    except CaseError:
        raise
    except ModuleNotFoundError as exc:
        raise CaseError(f"--import {name}: no module named {exc.name!r} (looked in the working directory and on "
                        f"sys.path; give a module name, or the path of a .py file)") from None
    except Exception as exc:  # the user's module failed while importing: say where, in one line
        raise CaseError(f"--import {name}: importing it failed: {type(exc).__name__}: {exc}") from None
