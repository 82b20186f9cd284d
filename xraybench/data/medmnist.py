"""MedMNIST by name: ``--data pneumoniamnist@64`` instead of a path.

The archive's address and MD5 come from the ``medmnist`` package (the optional extra
``xraybench[medmnist]``); the file lives where that package keeps it (``~/.medmnist``, its
``get_default_root``), under its own name (``pneumoniamnist_64.npz``; 28 px has no suffix).
A file already there is checked against the MD5 before use; a missing one is downloaded
(xraybench/download.py) unless offline, where the error names the file to place and where. The names
themselves (``is_name``, ``name_problem``, ``canonical``, importable from here too) live in ``medmnist_names``,
which case files are checked with and which needs no torch.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xraybench import download
from xraybench.data.medmnist_names import NAME, SIZES, canonical, is_name, name_problem  # noqa: F401 (is_name)
from xraybench.data.sources import DataError, NpzSource


def catalogue(flag: str) -> tuple[dict, Path]:
    """The medmnist package's entry for ``flag`` and its data root."""
    try:
        from medmnist.info import INFO, get_default_root
    except ImportError:
        raise DataError(
            "--data pneumoniamnist: needs the medmnist package: pip install 'xraybench[medmnist]' "
            "(or pass the path of a MedMNIST .npz you have)"
        ) from None
    return INFO[flag], Path(get_default_root() or Path.home() / ".medmnist")


def open_by_name(data: str, *, offline: bool = False, timeout: float = download.TIMEOUT_S) -> NpzSource:
    """The NpzSource of a MedMNIST name, its archive checked (and fetched if allowed)."""
    problem = name_problem(data)
    if problem:
        raise DataError(f"--data {data}: {problem}")
    match = NAME.match(data)
    flag, size = match["flag"].lower(), int(match["size"] or 28)
    info, root = catalogue(flag)
    suffix = "" if size == 28 else f"_{size}"
    url, md5 = info[f"url{suffix}"], info[f"MD5{suffix}"]
    path = root / f"{flag}{suffix}.npz"
    place = f"place {path.name} (from {url}, MD5 {md5}) at {path}"
    if path.exists():
        found = download.file_digest(path, "md5")
        if found != md5:
            raise DataError(
                f"{path}: MD5 {found} is not MedMNIST's {md5}; the file is damaged or not the "
                f"original: delete it (it is fetched again) or {place}"
            )
        return NpzSource(path)
    if download.offline(offline):
        raise DataError(
            f"--data {data}: {path.name} is not in {root} and downloading is off (--offline or "
            f"{download.OFFLINE_ENV}); {place}"
        )
    print(f"data: fetching {url} → {path}")
    try:
        download.download(url, path, md5=md5, timeout=timeout)
    except download.DownloadError as exc:
        raise DataError(f"--data {data}: {exc}; {place}") from None
    return NpzSource(path)


@dataclass(frozen=True)
class Identity:
    """What an .npz is to a case that requires MedMNIST data: the side of its images and, by MD5, whether
    it is MedMNIST's own file (a verdict against a published result needs that file, not a subset)."""

    size: int
    official: str  # "pneumoniamnist@28" when the MD5 is MedMNIST's for that name; "" otherwise
    md5: str

    def satisfies(self, need: str) -> bool:
        """The images have the side ``need`` names; MedMNIST's own file must be the one named (an .npz of
        another origin at that side, such as the tests' subset, is accepted and is not official)."""
        match = NAME.match(need)
        return self.size == int(match["size"] or 28) and self.official in ("", canonical(need))


def identify(source) -> Identity | None:
    """The Identity of an .npz source; None for other sources (a folder, the built-in data)."""
    path = getattr(source, "path", None)
    if getattr(source, "kind", "") != "npz" or path is None:
        return None
    md5 = download.file_digest(path, "md5")  # remembered per file version: the runner asks more than once
    return Identity(_side(Path(path)), _official_name(md5), md5)


def _side(path: Path) -> int:
    """The side of the training images, from the array's header alone (the archive is not decompressed)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("train_images.npy") as member:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[
                np.lib.format.read_magic(member)
            ]
            shape = read_header(member)[0]
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: no readable train_images array in this .npz ({exc})") from None
    return int(shape[1])


def _official_name(md5: str) -> str:
    try:
        from medmnist.info import INFO
    except ImportError:  # without the catalogue no file can be told official
        return ""
    for flag, info in INFO.items():
        for size in SIZES:
            if info.get("MD5" + ("" if size == 28 else f"_{size}")) == md5:
                return f"{flag}@{size}"
    return ""
