"""Where images come from: which source a ``--data`` value names, and the built-in synthetic source.

Each kind of source has its module: a Kermany-layout folder (``folder.py``), a MedMNIST .npz by path (``npz.py``) or
by name (``medmnist.py``). Every source decodes to the same thing, the ``Dataset`` of ``dataset.py``; decoding happens
once per source and size, and ``cache.prepare`` keeps the result on disk. The records and the sources are importable
from here too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xraybench.data import synthetic
from xraybench.data.dataset import SPLITS, DataError, Dataset, Split, indexed
from xraybench.data.folder import VAL_FRACTION, FolderSource
from xraybench.data.labels import CLASSES
from xraybench.data.npz import NpzSource

__all__ = [
    "CLASSES",
    "SPLITS",
    "DataError",
    "Dataset",
    "FolderSource",
    "NpzSource",
    "Split",
    "SyntheticSource",
    "open_source",
]


@dataclass(frozen=True)
class SyntheticSource:
    sizes: tuple[int, int, int]  # train, val, test
    seed: int = 0
    kind: str = "synthetic"

    @property
    def name(self) -> str:
        return "synthetic"

    @property
    def location(self) -> str:
        return f"built-in, generator v{synthetic.GENERATOR_VERSION}, seed {self.seed}"

    def fingerprint(self) -> str:
        return f"synthetic-v{synthetic.GENERATOR_VERSION}-seed{self.seed}-{'-'.join(map(str, self.sizes))}"

    def decode(self, image_size: int, resample: str = "bilinear") -> tuple[dict[str, Split], list[str], dict]:
        """Generated at ``image_size``: there is nothing to resample."""
        splits = {
            name: Split(*synthetic.generate_split(name, n, image_size, self.seed), indexed(name, n))
            for name, n in zip(SPLITS, self.sizes)
        }
        return (
            splits,
            ["test split imaged with a shifted acquisition (exposure, contrast, noise, patient size)"],
            {"splitting": "generated: every image is a new synthetic patient", "leakage": None},
        )


def open_source(
    data: str | os.PathLike | None,
    synthetic_sizes: tuple[int, int, int],
    skip_bad_images: bool = False,
    val_fraction: float | None = None,
    offline: bool = False,
):
    """The source a ``--data`` value names: nothing or "synthetic" → built-in, a MedMNIST name
    (``pneumoniamnist@64``), a folder, or a .npz."""
    from xraybench.data import medmnist

    if val_fraction is not None and not 0 < val_fraction <= 0.5:
        raise DataError(f"--val-fraction {val_fraction:g}: must be above 0 and at most 0.5")
    if data is None or str(data) == "synthetic":
        source = SyntheticSource(synthetic_sizes)
    elif medmnist.is_name(str(data)) and not Path(data).exists():
        source = medmnist.open_by_name(str(data), offline=offline)
    else:
        source = _path_source(data, skip_bad_images, val_fraction)
    if val_fraction is not None and not isinstance(source, FolderSource):
        raise DataError(
            f"--val-fraction applies to a Kermany-layout folder, whose validation split may be carved "
            f"from train; {source.name} brings its own validation split"
        )
    return source


def _path_source(data, skip_bad_images: bool, val_fraction: float | None):
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; --data takes a Kermany-layout folder, a .npz file, "
            f"a MedMNIST name such as pneumoniamnist@64, or 'synthetic'"
        )
    if path.is_dir():
        return FolderSource(path.resolve(), skip_bad_images, VAL_FRACTION if val_fraction is None else val_fraction)
    if path.suffix.lower() == ".npz":
        return NpzSource(path.resolve())
    raise DataError(
        f"{path}: not a folder or a .npz file; --data takes a Kermany-layout folder "
        f"(train/ val/ test/) or a MedMNIST .npz"
    )
