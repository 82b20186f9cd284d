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
            _import_file(name, path)
            return
        if str(Path.cwd()) not in sys.path and "" not in sys.path:
            sys.path.append(str(Path.cwd()))
        importlib.import_module(name)
    except CaseError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0] and not name.startswith(f"{exc.name}."):  # something the module imports
            raise CaseError(f"--import {name}: it imports {exc.name!r}, which is not installed here") from None
        raise CaseError(
            f"--import {name}: no module named {exc.name!r} (looked in the working directory and on "
            f"sys.path; give a module name, or the path of a .py file)"
        ) from None
    except BaseException as exc:  # the user's module failed (or exited) while importing: say where, in one line
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CaseError(
            f"--import {name}: importing it failed: {type(exc).__name__}" + (f": {first}" * bool(first))
        ) from None


def _import_file(name: str, path: Path) -> None:
    """A .py file, as a module of its own name: refused where that name is another module already loaded (a
    ``json.py`` would replace the standard library's), and forgotten again if it fails."""
    if not path.is_file():
        raise CaseError(f"--import {name}: no such file")
    loaded = sys.modules.get(path.stem)
    if loaded is not None:
        if getattr(loaded, "__file__", None) == str(path.resolve()):
            return  # imported already (a second command in one process): its models are registered
        raise CaseError(
            f"--import {name}: a module named {path.stem!r} is already loaded from elsewhere; rename the file"
        )
    spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
