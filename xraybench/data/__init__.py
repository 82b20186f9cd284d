"""Data: the built-in synthetic radiographs, real sources (Kermany folder, MedMNIST .npz),
the uint8 tensor cache they are decoded into, and batching from tensors.

The names below are imported when first used, so that the modules of this package that need no torch
(``medmnist_names``, ``images``, ``patients``) import without the sources and batches, which do: case files are
checked against MedMNIST's names, and the report reads patients, without torch."""

import importlib

_EXPORTS = {
    "BatchLoader": "xraybench.data.batches",
    "DataError": "xraybench.data.sources",
    "Dataset": "xraybench.data.sources",
    "Split": "xraybench.data.sources",
    "open_source": "xraybench.data.sources",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """A name above, or a submodule (``data.cache``), imported when first asked for."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists; something it imports does not
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
