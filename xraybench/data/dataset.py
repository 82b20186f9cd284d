"""What every source decodes to: a ``Dataset`` of uint8 tensors [N, 1, S, S] per ``Split`` (grayscale; models that
want RGB get the channel replicated when batched), with its notes and its accounting (how the splits were made, what
they share). Decoding happens once per source and size; ``cache.prepare`` keeps the result on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from xraybench.data import patients

SPLITS = ("train", "val", "test")


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


def indexed(split: str, n: int) -> list[str]:
    """Ids of images that have no file name: the split and the index in it (npz, synthetic)."""
    return [f"{split}/{i}" for i in range(n)]
