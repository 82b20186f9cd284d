"""Patients behind image files, validation carved by patient, and leakage across splits.

Kermany's files name their patient: ``person1946_bacteria_4874.jpeg`` and
``person1946_bacteria_4875.jpeg`` are two images of one child. A validation split carved
image by image from train puts the same patient on both sides, and the best epoch is then
chosen on patients the model trained on. So validation is carved by patient, and every
source's splits are checked for patients, files and pixels they share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from xraybench.data.labels import CLASSES

if TYPE_CHECKING:
    import torch

EXAMPLES = 5  # ids named in a warning
MIN_NAMED_SHARE = 0.95  # below this share of names matching a rule, the carve is mostly by image: say so
COPY_MARKER = re.compile(r" \(\d+\)$")  # "person1_virus_6 (1)": a copy of person1's file, as downloads name it


@dataclass(frozen=True)
class PatientRule:
    pattern: re.Pattern
    example: str
    meaning: str


# The file-name stem decides; the first rule that matches gives the patient id (its group 1).
PATIENT_RULES = (
    PatientRule(
        re.compile(r"^(person\d+)_(?:bacteria|virus)_\d+$", re.IGNORECASE),
        "person1946_bacteria_4874",
        "Kermany pneumonia: person<patient>_<bacteria|virus>_<image>",
    ),
    PatientRule(
        re.compile(r"^(NORMAL2-IM-\d+)-\d+$", re.IGNORECASE),
        "NORMAL2-IM-1427-0001",
        "Kermany normal (second batch): NORMAL2-IM-<patient>-<image>",
    ),
    PatientRule(re.compile(r"^(IM-\d+)-\d+$", re.IGNORECASE), "IM-0001-0001", "Kermany normal: IM-<patient>-<image>"),
)
UNKNOWN_RULE = "any other name: one image is one patient"


def patient_id(image_id: str) -> str | None:
    """The patient a file name names, or None (then the image is its own patient)."""
    stem = COPY_MARKER.sub("", PurePosixPath(image_id).stem)
    for rule in PATIENT_RULES:
        if match := rule.pattern.match(stem):
            return match.group(1)
    return None


def patients(ids: list[str]) -> list[str]:
    """One patient key per image: the named patient, else the image itself."""
    return [patient_id(i) or f"image:{i}" for i in ids]


def naming(ids: list[str]) -> dict:
    """How many file names name their patient: {"images", "named", "examples"} (the first names that do not)."""
    unnamed = [i for i in ids if patient_id(i) is None]
    return {"images": len(ids), "named": len(ids) - len(unnamed), "examples": unnamed[:EXAMPLES]}


def carve_unit(found: dict) -> str:
    """How a carve over these names groups images: "by patient", "by image", or both, as the note says it."""
    share = found["named"] / found["images"] if found["images"] else 0.0
    if share >= MIN_NAMED_SHARE:
        return "by patient"
    if found["named"] == 0:
        return "by image (no file name names a patient)"
    return f"by patient for the {share:.0%} of images whose file name names one, by image for the rest"


def naming_warning(found: dict) -> str | None:
    """One line when fewer than MIN_NAMED_SHARE of the names match a patient rule, naming examples."""
    images, named = found["images"], found["named"]
    if not images or named / images >= MIN_NAMED_SHARE:
        return None
    rules = "; ".join(rule.example for rule in PATIENT_RULES)
    return (
        f"patients: {images - named} of {images} file names ({(images - named) / images:.0%}) name no patient "
        f"(e.g. {', '.join(found['examples'])}; rules: {rules}): each such image counts as its own patient, so "
        f"validation is carved by image there and a patient shared across splits goes unseen"
    )


def carve_by_patient(ids: list[str], labels: torch.Tensor, fraction: float, seed: int = 0) -> list[int]:
    """Indices of a validation split of about ``fraction`` of each class, whole patients at a time.

    Patients are stratified by their (majority) class, shuffled with ``seed``, and taken until
    the class's share is reached; every image of a chosen patient goes to validation.
    """
    import torch  # here: the report reads patients without torch

    groups: dict[str, list[int]] = {}
    for index, key in enumerate(patients(ids)):
        groups.setdefault(key, []).append(index)
    g = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for label in (0, 1):
        members = [key for key, idx in sorted(groups.items()) if round(float(labels[idx].float().mean())) == label]
        if len(members) < 2:
            raise ValueError(
                f"train has {len(members)} patient(s) of class {CLASSES[label]}; "
                f"at least 2 are needed to carve a validation split by patient"
            )
        target = max(1, round(sum(len(groups[k]) for k in members) * fraction))
        taken = 0
        for position in torch.randperm(len(members), generator=g).tolist()[: len(members) - 1]:  # keep one for train
            if taken >= target:
                break
            chosen += groups[members[position]]
            taken += len(groups[members[position]])
    return sorted(chosen)


def leakage(
    split_ids: dict[str, list[str]],
    file_digests: dict[str, str] | None = None,
    pixel_digests: dict[str, str] | None = None,
) -> dict:
    """What the splits share: patients (by file name), byte-identical files, pixel-identical images.

    Returns {"patients": {...}, "identical_files": {...}, "identical_pixels": {...}}, each mapping
    "a/b" (two splits) to {"count", "examples"}; kinds that could not be checked are None.
    """
    names = list(split_ids)
    named = {s: {p for p in (patient_id(i) for i in ids) if p} for s, ids in split_ids.items()}
    found = {"patients": _shared(names, named) if any(named.values()) else None}
    for kind, digests in (("identical_files", file_digests), ("identical_pixels", pixel_digests)):
        if digests is None:
            found[kind] = None
            continue
        by_split = {s: {} for s in names}
        for s, ids in split_ids.items():
            for i in ids:
                if i in digests:
                    by_split[s].setdefault(digests[i], i)
        found[kind] = {}
        for a_pos, a in enumerate(names):
            for b in names[a_pos + 1 :]:
                common = sorted(set(by_split[a]) & set(by_split[b]), key=lambda d: by_split[a][d])
                if common:
                    found[kind][f"{a}/{b}"] = {
                        "count": len(common),
                        "examples": [f"{by_split[a][d]} = {by_split[b][d]}" for d in common[:EXAMPLES]],
                    }
    return found


def _shared(names: list[str], sets: dict[str, set[str]]) -> dict:
    out = {}
    for a_pos, a in enumerate(names):
        for b in names[a_pos + 1 :]:
            common = sorted(sets[a] & sets[b])
            if common:
                out[f"{a}/{b}"] = {"count": len(common), "examples": common[:EXAMPLES]}
    return out


def warnings(found: dict) -> list[str]:
    """One line per kind of leakage and pair of splits, naming the first few."""
    what = {
        "patients": "patient(s) in both",
        "identical_files": "byte-identical file(s) in both",
        "identical_pixels": "pixel-identical image(s) in both",
    }
    lines = []
    for kind, pairs in found.items():
        for pair, hit in (pairs or {}).items():
            a, b = pair.split("/")
            more = f", … ({hit['count'] - len(hit['examples'])} more)" if hit["count"] > len(hit["examples"]) else ""
            lines.append(f"leakage: {hit['count']} {what[kind]} {a} and {b}: {', '.join(hit['examples'])}{more}")
    return lines
