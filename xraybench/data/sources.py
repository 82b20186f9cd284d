"""Where images come from: the built-in synthetic data, a Kermany-layout folder, a MedMNIST .npz.

Every source decodes to the same thing, a ``Dataset`` of uint8 tensors [N, 1, S, S] per split
(grayscale; models that want RGB get the channel replicated when batched). Decoding happens
once per source and size; ``cache.prepare`` keeps the result on disk.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xraybench.data import patients, synthetic
from xraybench.data.images import IMAGE_SUFFIXES, strict_pil, try_decode

CLASSES = ("NORMAL", "PNEUMONIA")  # label 0, label 1
SPLITS = ("train", "val", "test")
IGNORED_FILES = {"Thumbs.db", "desktop.ini"}  # operating-system droppings, not data
VAL_FRACTION = 0.1
MIN_VAL_PER_CLASS = 50  # a given val/ smaller than this is merged into train and carved again, by patient


class DataError(ValueError):
    """A data source cannot be used; the message names the path or key and what is expected."""


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 1, S, S]
    labels: torch.Tensor  # int64 [N], 1 = pneumonia
    ids: list[str] | None = None  # stable image ids: file path relative to the data root, or "split/index"

    def __post_init__(self):
        if self.ids is None:
            self.ids = [str(i) for i in range(len(self))]
        if len(self.ids) != len(self):
            raise ValueError(f"{len(self.ids)} image ids for {len(self)} images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        pneumonia = int(self.labels.sum())
        return {"normal": len(self) - pneumonia, "pneumonia": pneumonia}

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index], [self.ids[i] for i in torch.as_tensor(index).tolist()])


@dataclass
class Dataset:
    kind: str
    name: str
    location: str
    image_size: int
    splits: dict[str, Split]
    notes: list[str] = field(default_factory=list)
    accounting: dict = field(default_factory=dict)  # how the splits were made, what they share (leakage)

    def limited(self, max_per_split: int | None, seed: int = 0) -> Dataset:
        """At most ``max_per_split`` images per split: a seeded, class-stratified subset."""
        if max_per_split is None:
            return self
        splits = {}
        for name, split in self.splits.items():
            if len(split) <= max_per_split:
                splits[name] = split
                continue
            order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
            keep = []  # take from each class in proportion
            for label in (0, 1):
                members = order[split.labels[order] == label]
                share = round(max_per_split * len(members) / len(split))
                keep.append(members[:share])
            splits[name] = split.subset(torch.cat(keep).sort().values)
        note = f"at most {max_per_split} images per split (profile limit)"
        return Dataset(
            self.kind, self.name, self.location, self.image_size, splits, [*self.notes, note], self.accounting
        )

    def describe(self) -> dict:
        """What results.json records about the data."""
        return {
            "kind": self.kind,
            "name": self.name,
            "location": self.location,
            "notes": self.notes,
            "splits": {name: {"images": len(s), **s.counts()} for name, s in self.splits.items()},
            **self.accounting,
        }

    @property
    def leakage_warnings(self) -> list[str]:
        return patients.warnings(self.accounting.get("leakage") or {})

    @property
    def naming_warning(self) -> str | None:
        """Set when most file names name no patient (folder sources): the carve and the leakage check are by image."""
        found = self.accounting.get("patient_names")
        return patients.naming_warning(found) if found else None


# ------------------------------------------------------------------------------ sources


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
            name: Split(*synthetic.generate_split(name, n, image_size, self.seed), _indexed(name, n))
            for name, n in zip(SPLITS, self.sizes)
        }
        return (
            splits,
            ["test split imaged with a shifted acquisition (exposure, contrast, noise, patient size)"],
            {"splitting": "generated: every image is a new synthetic patient", "leakage": None},
        )


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
        files = self.files()
        notes, bad, file_digests, pixel_digests = [], [], {}, {}
        with strict_pil(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            splits = {}
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
        if bad and not self.skip_bad_images:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise DataError(f"{bad[0][0]}: {bad[0][1]}{more}; fix or remove it, or pass --skip-bad-images")
        if bad:
            notes.append(
                f"skipped {len(bad)} unreadable file(s): "
                + "; ".join(f"{path.relative_to(self.root)} ({error})" for path, error in bad)
            )
        splitting = "train/, val/ and test/ as given"
        given_val = splits.get("val")
        if given_val is None or min(given_val.counts().values()) < self.min_val_per_class:
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
            splitting = (
                f"{why}; validation carved from train {unit}: {self.val_fraction:.0%} of each class, "
                f"seed 0, {len(splits['val'])} images of {val_patients} patients"
            )
            notes.append(splitting)
        leakage = patients.leakage({name: splits[name].ids for name in SPLITS}, file_digests, pixel_digests)
        named = patients.naming([i for name in SPLITS for i in splits[name].ids])
        return (
            {name: splits[name] for name in SPLITS},
            notes,
            {"splitting": splitting, "leakage": leakage, "patient_names": named},
        )


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


# ------------------------------------------------------------------------------ helpers


def _concat(a: Split, b: Split) -> Split:
    return Split(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), a.ids + b.ids)


def _child(root: Path, name: str) -> Path | None:
    for p in root.iterdir():
        if p.is_dir() and p.name.lower() == name:
            return p
    return None


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
        x.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(labels.astype(np.int64)), _indexed(split, len(labels))
    )


def _indexed(split: str, n: int) -> list[str]:
    """Ids of images that have no file name: the split and the index in it (npz, synthetic)."""
    return [f"{split}/{i}" for i in range(n)]
