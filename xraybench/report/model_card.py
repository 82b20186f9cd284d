"""A model card per suite (Mitchell et al. 2019), from results.json alone: what the models are for and
not for, what data they saw, what they cost to train, and what limits the numbers."""

from __future__ import annotations

from xraybench.data import patients
from xraybench.results import CaseResult, DataInfo, Run

INTENDED = (
    "Teaching and benchmarking: comparing training set-ups for NORMAL vs PNEUMONIA classification of "
    "chest radiographs, as in a course's homework, with the uncertainty of every number stated."
)
OUT_OF_SCOPE = (
    "Diagnosis or triage of patients, or any clinical decision. These models were not validated "
    "clinically, on external sites or across patient groups, and their thresholds were not set for a "
    "clinical operating point."
)
LIMITATIONS = {
    "synthetic": "The built-in images are synthetic radiographs drawn by xraybench; results on them say how the "
    "set-ups compare on a controlled task, nothing about performance on real patients. The test split "
    "is drawn with a shifted acquisition to show a validation-to-test gap.",
    "folder": "A Kermany-layout folder. If it is the Kermany et al. (2018) set: paediatric patients aged one to "
    "five, from one centre (Guangzhou Women and Children's Medical Center), with a test split whose class "
    "balance differs from training; results need not transfer to adults or to other hospitals.",
    "npz": "A MedMNIST-style .npz. PneumoniaMNIST is derived from the Kermany et al. (2018) images (paediatric, one "
    "centre) and downsampled, which removes fine detail.",
}


def model_card(run: Run, cases: list[CaseResult]) -> list[tuple[str, str]]:
    """(heading, text) pairs for one suite's cases."""
    data, settings, software = run.data, run.settings, run.software
    rows = [r for c in cases for r in c.rows]
    ok = [r for r in rows if r.ok]
    hours = sum(r.metrics.wall_time_s or 0 for r in ok) / 3600
    gpu = (software.get("gpu") or {}).get("name")
    compute = (
        f"{len(ok)} of {len(rows)} trainings finished on {gpu or software.get('device', 'an unrecorded device')} "
        f"in {_duration(hours)} of training in all, in {settings.precision.name}"
        f"{', deterministic algorithms only' if settings.deterministic else ''}"
        f"{', backbones from random initialisation (not pretrained)' if settings.random_init else ''}."
    )
    return [
        ("Intended use", INTENDED),
        ("Out of scope", OUT_OF_SCOPE),
        ("Data", _data_accounting(data)),
        ("Compute", compute),
        (
            "Limitations",
            LIMITATIONS.get(data.kind if data else None, "The data source is not one xraybench knows.")
            + " Model selection used the validation split only; the test split was evaluated once per seed.",
        ),
    ]


def _data_accounting(data: DataInfo | None) -> str:
    if data is None:
        return "No data was recorded."
    splits = "; ".join(
        f"{name} {s.images} ({s.normal} normal, {s.pneumonia} pneumonia)" for name, s in data.splits.items()
    )
    notes = "".join(f" {note[0].upper()}{note[1:]}." for note in data.notes if note != data.splitting)
    how = f" Splits: {data.splitting}." if data.splitting else ""
    shared = leakage_sentence(data.leakage, data.patient_names) if data.leakage_recorded else patient_overlap(data)
    return f"{data.name} ({data.kind}; {data.location or ''}): {splits}.{how}{notes} {shared}"


def leakage_sentence(leakage: dict | None, named: dict | None = None) -> str:
    """What the splits share, as recorded when the data was decoded (xraybench/data/patients.py); ``named``:
    how many file names named their patient, where the source has file names."""
    if leakage is None:
        return "Leakage across splits: not applicable (every synthetic image is an independent draw)."
    found = patients.warnings(leakage)
    checked = [k.replace("_", " ") for k, v in leakage.items() if v is not None]
    source = "patients from file names"
    if named and named["images"]:
        source += f", {named['named']} of {named['images']} names matching a patient rule"
        if warning := patients.naming_warning(named):
            source += f" — {warning.removeprefix('patients: ')}"
    if not found:
        return f"Leakage across splits: none found ({', '.join(checked)} checked; {source})."
    return "Leakage across splits: " + "; ".join(w.removeprefix("leakage: ") for w in found) + f" ({source})."


def patient_overlap(data: DataInfo) -> str:
    """For results recorded before the leakage check: patients shared by the validation and test splits,
    where file names carry a patient id (``data.patients``' rules); the training split's ids are not stored."""
    if data.kind == "synthetic":
        return "Patient overlap: none (every synthetic image is an independent draw)."
    images = data.images or {}
    ids = {
        split: {p for i in (images[split].ids if split in images else []) if (p := patients.patient_id(i))}
        for split in ("val", "test")
    }
    if not ids["val"] or not ids["test"]:
        return "Patient overlap: unknown (the file names do not name patients)."
    shared = ids["val"] & ids["test"]
    return (
        f"Patient overlap between validation and test, from file names: {len(shared)} of {len(ids['test'])} "
        f"test patients also appear in validation (training not recorded)."
    )


def _duration(hours: float) -> str:
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if hours < 2 else f"{hours:.1f} h"
