"""Decoded datasets on disk as uint8 arrays, keyed by source and image size.

Decoding (JPEG, resizing, generating synthetic images) happens once; every later case and
run memory-maps the arrays. A cache entry is written to a temporary folder and renamed into
place, so an interrupted decode never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xraybench.data.sources import SPLITS, Dataset, Split

FORMAT = 5  # a cache written in another format is decoded again


def cache_dir() -> Path:
    """$XRAYBENCH_CACHE, else $XDG_CACHE_HOME/xraybench, else ~/.cache/xraybench."""
    if os.environ.get("XRAYBENCH_CACHE"):
        return Path(os.environ["XRAYBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xraybench"


@dataclass(frozen=True)
class CachedData:
    """A decoded dataset on disk: what a worker needs to map it, without the source (a worker on
    another node may not see the raw images, only the cache)."""

    entry: Path
    kind: str
    name: str
    location: str
    image_size: int

    def open(self) -> Dataset:
        meta = json.loads((self.entry / "meta.json").read_text())
        ids = json.loads((self.entry / "ids.json").read_text())
        splits = {
            name: Split(_mmap(self.entry / f"{name}_images.npy"), _mmap(self.entry / f"{name}_labels.npy"), ids[name])
            for name in SPLITS
        }
        return Dataset(
            self.kind,
            self.name,
            self.location,
            self.image_size,
            splits,
            list(meta["notes"]),
            meta.get("accounting") or {},
        )


def prepare(source, image_size: int, root: Path | None = None, resample: str = "bilinear") -> CachedData:
    """Decode ``source`` at ``image_size`` (resized with ``resample``) into the cache unless it is there."""
    root = Path(root) if root else cache_dir()
    how = "" if resample == "bilinear" else f"|{resample}"  # bilinear entries keep the keys they had
    key = hashlib.sha256(f"{FORMAT}|{source.fingerprint()}|{image_size}{how}".encode()).hexdigest()[:20]
    entry = (root / f"{source.kind}-{image_size}px-{key}").absolute()
    if not (entry / "meta.json").exists():
        splits, notes, accounting = source.decode(image_size, resample)
        _write(
            entry,
            splits,
            {"source": source.fingerprint(), "image_size": image_size, "notes": notes, "accounting": accounting},
        )
    return CachedData(entry, source.kind, source.name, source.location, image_size)


def _mmap(path: Path) -> torch.Tensor:
    # Copy-on-write map: pages are read lazily and shared between runs by the OS page cache.
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def _write(entry: Path, splits: dict[str, Split], meta: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        for name, split in splits.items():
            np.save(tmp / f"{name}_images.npy", split.images.numpy())
            np.save(tmp / f"{name}_labels.npy", split.labels.numpy())
        (tmp / "ids.json").write_text(json.dumps({name: split.ids for name, split in splits.items()}))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            tmp.rename(entry)
        except OSError:  # another process finished the same entry first
            if not (entry / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
