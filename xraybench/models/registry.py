"""Model registry in the style of timm: builders register by name, cases refer to names.

A builder is a function ``builder(*, in_channels, image_size, num_outputs, **options)``
returning an ``nn.Module``. Its keyword-only options (with defaults) are the options a
case may set; ``model_options`` checks a case's options against them.

Models come from xraybench itself, from a module the user imports (``--import``), or from an
installed package's ``xraybench.models`` entry points (a module that registers models, or one
builder), loaded with the built-in ones; ``origin`` says which.

Registering is declaring: this module, and the modules that register the built-in models, import no torch;
a builder imports what it builds with when it is called. So reading and checking case files (model names,
their options, input sizes) never loads torch.
"""

from __future__ import annotations

import fnmatch
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

ModelBuilder = Callable[..., "nn.Module"]

_BUILDERS: dict[str, ModelBuilder] = {}
_ENTRY_POINTS: dict[str, str] = {}  # model name → the installed package whose entry point registered it
_REQUIRED = ("in_channels", "image_size", "num_outputs")
ENTRY_POINT_GROUP = "xraybench.models"
_loaded = False


def register_model(fn: ModelBuilder) -> ModelBuilder:
    """Decorator: register ``fn`` under its own name."""
    name = fn.__name__
    if name in _BUILDERS and _BUILDERS[name] is not fn:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = fn
    return fn


def external_builders(names) -> dict[str, ModelBuilder]:
    """The builders of ``names`` registered outside xraybench (a test's, a notebook's, a user's module):
    a job carries them to workers that never imported that module."""
    _load_builtin_models()
    return {n: _BUILDERS[n] for n in names if n in _BUILDERS and not _BUILDERS[n].__module__.startswith("xraybench.")}


def adopt(builders: dict[str, ModelBuilder]) -> None:
    """Register builders a job brought along, unless their names are registered here already."""
    for name, fn in builders.items():
        _BUILDERS.setdefault(name, fn)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    _load_builtin_models()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def is_model(name: str) -> bool:
    _load_builtin_models()
    return name in _BUILDERS


def model_options(name: str) -> dict[str, object]:
    """The options ``name`` accepts, with their defaults."""
    _load_builtin_models()
    params = inspect.signature(_BUILDERS[name]).parameters
    return {p.name: p.default for p in params.values() if p.name not in _REQUIRED}


def native_input_size(name: str) -> int | None:
    """The input size a model's pretrained weights were made for, if it declares one
    (a builder attribute ``input_size``, a callable)."""
    _load_builtin_models()
    size = getattr(_BUILDERS[name], "input_size", None)
    return size() if size else None


def min_input_size(name: str) -> int:
    """The smallest input a model accepts (a builder attribute ``min_input_size``; 1 if none):
    a profile never shrinks a case's input below it."""
    _load_builtin_models()
    return int(getattr(_BUILDERS[name], "min_input_size", None) or 1)


def builder(name: str) -> ModelBuilder | None:
    """The function registered under ``name`` (None if none is)."""
    return _BUILDERS.get(name)


def create_model(name: str, *, in_channels: int, image_size: int, num_outputs: int, **options) -> nn.Module:
    """Build a registered model for the given input and output size."""
    _load_builtin_models()
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _BUILDERS[name](in_channels=in_channels, image_size=image_size, num_outputs=num_outputs, **options)


def origin(name: str) -> str:
    """Where a registered model comes from: 'built-in', 'entry point of PACKAGE', or its module's name."""
    _load_builtin_models()
    if name in _ENTRY_POINTS:
        return f"entry point of {_ENTRY_POINTS[name]}"
    module = _BUILDERS[name].__module__ or "unknown"  # None for a builder made by exec or a test's factory
    return "built-in" if module.startswith("xraybench.") else f"module {module}"


def _load_builtin_models() -> None:
    """Importing the package runs its @register_model decorators; then the installed packages' entry points, once.
    A package whose entry point fails to load is named on stderr and left out: it must not stop every command."""
    global _loaded
    import xraybench.models  # noqa: F401

    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist else ep.value
        before = set(_BUILDERS)
        try:
            loaded = ep.load()
            if callable(loaded) and not inspect.ismodule(loaded) and _BUILDERS.get(loaded.__name__) is not loaded:
                register_model(loaded)  # one builder; a module registered its own on import
        except Exception as exc:
            print(
                f"warning: entry point {ep.name} = {ep.value} of {package} ({ENTRY_POINT_GROUP}) failed to load: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                file=sys.stderr,
            )
            continue
        for name in set(_BUILDERS) - before:
            _ENTRY_POINTS[name] = package
