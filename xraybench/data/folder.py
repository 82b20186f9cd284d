"""A folder in the Kermany layout (train/ val/ test/, each with NORMAL/ and PNEUMONIA/): its files, decoded in
parallel, unreadable ones refused or skipped, and a validation split carved from train by patient when val/ is
missing or too small to measure anything.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xraybench.data import patients
from xraybench.data.dataset import SPLITS, DataError, Split
from xraybench.data.images import IMAGE_SUFFIXES, strict_pil, try_decode
from xraybench.data.labels import CLASSES

IGNORED_FILES = {"Thumbs.db", "desktop.ini"}  # operating-system droppings, not data
VAL_FRACTION = 0.1
MIN_VAL_PER_CLASS = 50  # a given val/ smaller than this is merged into train and carved again, by patient


@dataclass(frozen=True)
class FolderSource:
    """A folder in the Kermany layout: train/ val/ test/, each with NORMAL/ and PNEUMONIA/."""

    root: Path
    skip_bad_images: bool = False  # default strict: an unreadable file is an error naming it
    val_fraction: float = VAL_FRACTION  # of train, by patient, when val/ is missing or small
    min_val_per_class: int = MIN_VAL_PER_CLASS  # a smaller val/ is merged into train and carved again
    kind: str = "folder"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def location(self) -> str:
        return str(self.root)

    def files(self) -> dict[str, list[tuple[Path, int]]]:
        """Image files and labels per split present on disk."""
        split_dirs = {split: _child(self.root, split) for split in SPLITS}
        for required in ("train", "test"):
            if split_dirs[required] is None:
                raise DataError(
                    f"{self.root}: no {required}/ folder; expected train/, test/ and optionally val/, "
                    f"each with {' and '.join(f'{c}/' for c in CLASSES)}"
                )
        return {split: self._split_files(d) for split, d in split_dirs.items() if d is not None}

    @staticmethod
    def _split_files(split_dir: Path) -> list[tuple[Path, int]]:
        class_dirs = {p.name.upper(): p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
        unknown = sorted(set(class_dirs) - set(CLASSES))
        if unknown:
            raise DataError(f"{split_dir}: unexpected class folder {unknown[0]!r}; expected {' and '.join(CLASSES)}")
        entries = []
        for label, cls in enumerate(CLASSES):
            if cls not in class_dirs:
                raise DataError(f"{split_dir}: missing class folder {cls}/ (expected {' and '.join(CLASSES)})")
            images = sorted(
                p
                for p in class_dirs[cls].iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name not in IGNORED_FILES
            )
            if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in images):
                raise DataError(f"{class_dirs[cls]}: no images (.jpeg, .jpg or .png) in this class folder")
            entries += [(p, label) for p in images]
        return entries

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for split, entries in self.files().items():
            for path, label in entries:
                st = path.stat()
                h.update(f"{split}|{path.relative_to(self.root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return (
            f"folder-{self.root.name}-{h.hexdigest()[:16]}"
            + ("-skipbad" if self.skip_bad_images else "")
            + f"-val{self.val_fraction:g}-min{self.min_val_per_class}"
        )

    def decode(self, image_size: int, resample: str = "bilinear") -> tuple[dict[str, Split], list[str], dict]:
        splits, bad, file_digests, pixel_digests = self._read(image_size, resample)
        notes = self._skipped(bad)
        splitting = "train/, val/ and test/ as given"
        given_val = splits.get("val")
        if given_val is None or min(given_val.counts().values()) < self.min_val_per_class:
            splitting = self._carve_val(splits)
            notes.append(splitting)
        leakage = patients.leakage({name: splits[name].ids for name in SPLITS}, file_digests, pixel_digests)
        named = patients.naming([i for name in SPLITS for i in splits[name].ids])
        return (
            {name: splits[name] for name in SPLITS},
            notes,
            {"splitting": splitting, "leakage": leakage, "patient_names": named},
        )

    def _read(self, image_size: int, resample: str) -> tuple[dict[str, Split], list[tuple[Path, str]], dict, dict]:
        """Every file decoded, in parallel: the readable images per split, the unreadable files with their error,
        and each image's file and pixel digests (which the leakage check compares)."""
        files = self.files()
        splits, bad, file_digests, pixel_digests = {}, [], {}, {}
        with strict_pil(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for split, entries in files.items():
                decoded = list(pool.map(lambda e: try_decode(e[0], image_size, resample), entries))
                bad += [(path, error) for (path, _), (_, error) in zip(entries, decoded) if error]
                kept = [(image, label, path) for (path, label), (image, error) in zip(entries, decoded) if not error]
                if not kept:
                    raise DataError(f"{self.root / split}: no readable image in this split")
                splits[split] = Split(
                    torch.from_numpy(np.stack([image.pixels for image, _, _ in kept])).unsqueeze(1),
                    torch.tensor([label for _, label, _ in kept], dtype=torch.long),
                    [path.relative_to(self.root).as_posix() for _, _, path in kept],
                )
                for image, _, path in kept:
                    image_id = path.relative_to(self.root).as_posix()
                    file_digests[image_id], pixel_digests[image_id] = image.file_digest, image.pixel_digest
        return splits, bad, file_digests, pixel_digests

    def _skipped(self, bad: list[tuple[Path, str]]) -> list[str]:
        """Unreadable files: an error naming the first, or with ``skip_bad_images`` a note naming each."""
        if bad and not self.skip_bad_images:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise DataError(f"{bad[0][0]}: {bad[0][1]}{more}; fix or remove it, or pass --skip-bad-images")
        if not bad:
            return []
        return [
            f"skipped {len(bad)} unreadable file(s): "
            + "; ".join(f"{path.relative_to(self.root)} ({error})" for path, error in bad)
        ]

    def _carve_val(self, splits: dict[str, Split]) -> str:
        """Validation carved from train (a given val/ merged into it first), by patient, seeded: replaces the
        train and val of ``splits`` and returns how, for the notes and the accounting."""
        given_val = splits.get("val")
        pool_split = splits["train"] if given_val is None else _concat(splits["train"], given_val)
        try:
            val_index = patients.carve_by_patient(pool_split.ids, pool_split.labels, self.val_fraction)
        except ValueError as exc:
            raise DataError(
                f"{self.root / 'train'}: cannot carve a validation split: {exc}; add a val/ folder "
                f"with at least {self.min_val_per_class} images per class, or more images"
            ) from None
        keep = torch.ones(len(pool_split), dtype=torch.bool)
        keep[val_index] = False
        splits["train"], splits["val"] = (
            pool_split.subset(keep.nonzero().squeeze(1)),
            pool_split.subset(torch.tensor(val_index)),
        )
        why = (
            "no val/ folder"
            if given_val is None
            else f"val/ has {given_val.counts()['normal']} + {given_val.counts()['pneumonia']} images (fewer than "
            f"{self.min_val_per_class} per class), merged into train"
        )
        val_patients = len(set(patients.patients(splits["val"].ids)))
        unit = patients.carve_unit(patients.naming(pool_split.ids))
        return (
            f"{why}; validation carved from train {unit}: {self.val_fraction:.0%} of each class, "
            f"seed 0, {len(splits['val'])} images of {val_patients} patients"
        )


def _concat(a: Split, b: Split) -> Split:
    return Split(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), a.ids + b.ids)


def _child(root: Path, name: str) -> Path | None:
    for p in root.iterdir():
        if p.is_dir() and p.name.lower() == name:
            return p
    return None
