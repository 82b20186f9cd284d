"""Patients from Kermany file names, validation carved by patient, leakage across splits, and the
mode results.json is written with."""

import os
import shutil
import stat

import numpy as np
import pytest
import torch
from conftest import KERMANY

from xraybench import results
from xraybench.cli import main
from xraybench.data import cache, open_source, patients

SMOKE = ["--profile", "smoke", "--device", "cpu", "--precision", "fp32", "--no-report"]


@pytest.mark.parametrize(
    "name, patient",
    [
        ("train/PNEUMONIA/person1946_bacteria_4874.jpeg", "person1946"),
        ("test/PNEUMONIA/person1_virus_6.jpeg", "person1"),
        ("test/PNEUMONIA/person1_virus_6 (1).jpeg", "person1"),  # a downloaded copy still names its patient
        ("train/NORMAL/IM-0001-0001.jpeg", "IM-0001"),
        ("val/NORMAL/NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("train/NORMAL/scan_0042.png", None),  # unknown: the image is its own patient
    ],
)
def test_patient_ids_from_file_names(name, patient):
    assert patients.patient_id(name) == patient


def test_validation_is_carved_by_whole_patients_per_class():
    ids = [f"train/PNEUMONIA/person{p}_bacteria_{p * 10 + i}.jpeg" for p in range(30) for i in range(p % 3 + 1)]
    ids += [f"train/NORMAL/IM-{p:04d}-0001.jpeg" for p in range(40)]
    labels = torch.tensor([1] * (len(ids) - 40) + [0] * 40)
    val = patients.carve_by_patient(ids, labels, 0.2)
    assert val == patients.carve_by_patient(ids, labels, 0.2)  # seeded
    val_patients = {patients.patient_id(ids[i]) for i in val}
    train_patients = {patients.patient_id(ids[i]) for i in set(range(len(ids))) - set(val)}
    assert not val_patients & train_patients  # every patient wholly on one side
    for label in (0, 1):
        share = sum(int(labels[i]) == label for i in val) / int((labels == label).sum())
        assert 0.2 <= share < 0.3  # about the fraction of each class, whole patients at a time


def leaky_copy(tmp_path):
    """The fixture folder (no val/) with one patient's second image moved to test and one normal image
    copied into test under another name."""
    root = tmp_path / "kermany"
    shutil.copytree(KERMANY, root)
    (root / "train/PNEUMONIA/person1946_bacteria_4875.jpeg").rename(
        root / "test/PNEUMONIA/person1946_bacteria_4875.jpeg"
    )
    shutil.copy(root / "train/NORMAL/NORMAL2-IM-1427-0001.jpeg", root / "test/NORMAL/copy-of-1427.jpeg")
    return root


def test_a_patient_in_train_and_test_is_named_and_strict_splits_stops(tmp_path, capsys):
    root = leaky_copy(tmp_path)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--data", str(root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.replace("\n    ", " ")  # lines wrapped at 100 columns, whole
    assert "validation carved from train by patient: 10% of each class" in out
    assert "warning: data: leakage: 1 patient(s) in both train and test: person1946" in out
    assert (
        "byte-identical file(s) in both train and test: train/NORMAL/NORMAL2-IM-1427-0001.jpeg = "
        "test/NORMAL/copy-of-1427.jpeg" in out
    )
    data = results.read(tmp_path / "out" / "smoke-cpu-kermany").data
    assert data.leakage["patients"]["train/test"] == {"count": 1, "examples": ["person1946"]}
    assert data.leakage["identical_pixels"]["train/test"]["count"] == 1
    assert "validation carved from train by patient" in data.splitting

    code = main(["run", "hw3-b-mlp", *SMOKE, "--data", str(root), "--out", str(tmp_path / "strict"), "--strict-splits"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "person1946" in err and "--strict-splits" in err
    assert not (tmp_path / "strict" / "smoke-cpu-kermany").exists()  # nothing trained: no run directory left


def test_the_report_states_the_splitting_and_the_leakage(tmp_path):
    root = leaky_copy(tmp_path)
    assert (
        main(["run", "hw3-b-mlp", "--profile", "smoke", "--device", "cpu", "--data", str(root), "--out", str(tmp_path)])
        == 0
    )
    html = (tmp_path / "smoke-cpu-kermany" / "report.html").read_text()
    assert "validation carved from train by patient" in html
    assert "Leakage across splits: 1 patient(s) in both train and test: person1946" in html


def test_names_that_name_no_patient_are_counted_warned_about_and_the_note_says_by_image(tmp_path, capsys):
    """Renamed files (another site's scheme) match no rule: each image is its own patient. The carve is then
    by image, and the note, the console and the report say so instead of "by patient"."""
    root = tmp_path / "kermany"
    shutil.copytree(KERMANY, root)
    renamed = sorted(root.rglob("*.jpeg"))
    for n, path in enumerate(renamed):
        path.rename(path.with_name(f"scan_{n:04d}.jpeg"))
    assert (
        main(
            [
                "run",
                "hw3-b-mlp",
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--data",
                str(root),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.replace("\n    ", " ")  # lines wrapped at 100 columns, whole
    assert "validation carved from train by image (no file name names a patient)" in out
    assert (
        f"warning: data: patients: {len(renamed)} of {len(renamed)} file names (100%) name no patient "
        "(e.g. train/NORMAL/scan_" in out
    )
    data = results.read(tmp_path / "out" / "smoke-cpu-kermany").data
    assert data.patient_names["named"] == 0 and "by image" in data.splitting
    html = (tmp_path / "out" / "smoke-cpu-kermany" / "report.html").read_text()
    assert f"0 of {len(renamed)} names matching a patient rule" in html


def test_a_carve_over_partly_named_files_says_which_part_is_by_patient():
    ids = [f"train/PNEUMONIA/person{p}_bacteria_{p}.jpeg" for p in range(60)] + [
        f"train/NORMAL/x{n}.png" for n in range(40)
    ]
    found = patients.naming(ids)
    assert found == {"images": 100, "named": 60, "examples": [f"train/NORMAL/x{n}.png" for n in range(5)]}
    assert (
        patients.carve_unit(found)
        == "by patient for the 60% of images whose file name names one, by image for the rest"
    )
    assert "40 of 100 file names (40%) name no patient" in patients.naming_warning(found)
    assert patients.naming_warning(patients.naming(ids[:60] + ids[60:62])) is None  # 97% named: no warning
    assert patients.carve_unit(patients.naming(ids[:60])) == "by patient"


def test_a_small_val_folder_is_merged_and_carved_again(tmp_path):
    root = tmp_path / "kermany"
    shutil.copytree(KERMANY, root)
    for cls, name in (("NORMAL", "NORMAL2-IM-1427-0001.jpeg"), ("PNEUMONIA", "person1947_bacteria_4876.jpeg")):
        (root / "val" / cls).mkdir(parents=True)
        (root / "train" / cls / name).rename(root / "val" / cls / name)
    data = cache.prepare(open_source(root, (0, 0, 0), val_fraction=0.3), 32).open()
    assert "val/ has 1 + 1 images (fewer than 50 per class), merged into train" in data.accounting["splitting"]
    assert sum(len(s) for s in data.splits.values()) == 16  # no image lost: the old val is in train or val
    assert not data.leakage_warnings


def test_pixel_identical_images_across_npz_splits(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (6, 28, 28), dtype=np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": np.array([[0], [1]] * 3) for s in ("train", "val", "test")}
    arrays["test_images"][4] = arrays["train_images"][2]
    np.savez(tmp_path / "dup.npz", **arrays)
    data = cache.prepare(open_source(tmp_path / "dup.npz", (0, 0, 0)), 28).open()
    assert data.leakage_warnings == ["leakage: 1 pixel-identical image(s) in both train and test: train/2 = test/4"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--val-fraction", "0.7"], "--val-fraction 0.7: must be above 0 and at most 0.5"),
        (["--val-fraction", "0.2"], "--val-fraction applies to a Kermany-layout folder"),
    ],
)
def test_val_fraction_is_checked(tmp_path, capsys, argv, message):
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_results_json_gets_the_users_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        results.write(tmp_path / "results.json", {"schema_version": 2, "cases": []})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == mode
