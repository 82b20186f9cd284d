"""A MedMNIST .npz (e.g. PneumoniaMNIST), by path; ``medmnist.py`` finds one by name and tells whether a file is
MedMNIST's own. The archive brings its own train, val and test; images are resized to the case's size here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xraybench.data import patients
from xraybench.data.dataset import SPLITS, DataError, Split, indexed


@dataclass(frozen=True)
class NpzSource:
    """A MedMNIST .npz (e.g. PneumoniaMNIST): {train,val,test}_{images,labels}, uint8."""

    path: Path
    kind: str = "npz"

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def location(self) -> str:
        return str(self.path)

    def fingerprint(self) -> str:
        st = self.path.stat()
        key = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        return f"npz-{self.path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def decode(self, image_size: int, resample: str = "bilinear") -> tuple[dict[str, Split], list[str], dict]:
        try:
            archive = np.load(self.path)
        except Exception as exc:
            raise DataError(f"{self.path}: not a readable .npz archive ({exc})") from None
        splits, pixel_digests = {}, {}
        with archive:
            for split in SPLITS:
                images, labels = (_npz_array(archive, self.path, f"{split}_{what}") for what in ("images", "labels"))
                splits[split] = _npz_split(self.path, split, images, labels, image_size, resample)
                pixel_digests.update(
                    (f"{split}/{i}", hashlib.sha1(image.tobytes()).hexdigest()) for i, image in enumerate(images)
                )
        leakage = patients.leakage({name: splits[name].ids for name in SPLITS}, None, pixel_digests)
        return splits, [], {"splitting": "train, val and test as the archive gives them", "leakage": leakage}


def _npz_array(archive, path: Path, key: str) -> np.ndarray:
    if key not in archive.files:
        raise DataError(
            f"{path}: missing key {key!r}; a MedMNIST .npz has "
            f"{', '.join(f'{s}_images, {s}_labels' for s in SPLITS)} (found: {', '.join(archive.files)})"
        )
    return archive[key]


def _npz_split(
    path: Path, split: str, images: np.ndarray, labels: np.ndarray, size: int, resample: str = "bilinear"
) -> Split:
    labels = labels.reshape(-1)
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.mean(axis=-1)  # RGB (or a trailing channel) → grayscale
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{path}: {split}_images has shape {images.shape}, expected (N, H, W) or (N, H, W, 3) "
            f"with N = {labels.shape[0]} labels"
        )
    if not np.isin(labels, (0, 1)).all():
        raise DataError(
            f"{path}: {split}_labels holds values other than 0 and 1 "
            f"({sorted(set(np.unique(labels).tolist()) - {0, 1})[:5]}); expected binary labels"
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = (
            F.interpolate(x, size=(size, size), mode="nearest")
            if resample == "nearest"
            else F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        )
    return Split(
        x.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(labels.astype(np.int64)), indexed(split, len(labels))
    )
