"""The speed benchmark compares like with like: the reference loop sees the same images in
the same order as xraybench, and the scripts run end to end on a small folder."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from xraybench.cases import load_cases
from xraybench.data import BatchLoader, cache
from xraybench.data.sources import FolderSource
from xraybench.train.objectives import OBJECTIVES

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from reference_loop import ReferenceLoop  # noqa: E402
from speed_vs_reference import reference_loop, write_folder  # noqa: E402


def test_reference_loop_batches_match_xraybench(tmp_path):
    root = tmp_path / "xrays"
    write_folder(root, (320, 250), (70, 10, 10))
    data = cache.prepare(FolderSource(root, min_val_per_class=1), 32, root=tmp_path / "cache").open()
    reference = ReferenceLoop(
        nn.Linear(2, 2), root, OBJECTIVES["bce"], image_size=32, channels=1, mean=0.5, std=0.5, seed=3
    )
    ours = BatchLoader(data.splits["train"], 32, device=torch.device("cpu"), shuffle=True, seed=3)
    for _ in range(2):  # every epoch, not only the first
        ref_batches, our_batches = list(reference.loaders["train"]), list(ours)
        assert [len(y) for _, y in ref_batches] == [32, 32, 6]
        for (x_ref, y_ref), (x_ours, y_ours) in zip(ref_batches, our_batches):
            assert torch.equal(y_ref, y_ours)
            # The same pixels: only the normalisation's float rounding differs (a grey level is 2/255).
            assert torch.allclose(x_ref, x_ours, rtol=0, atol=1e-6)


def test_noise_floor_twin_differs_from_the_reference_only_in_rounding(tmp_path):
    root = tmp_path / "xrays"
    write_folder(root, (160, 125), (64, 16, 16))
    case = next(c for c in load_cases()[0] if c.id == "hw3-b-mlp")
    reference, twin = (reference_loop(case, root, 32, fused_adam=fused) for fused in (False, True))
    assert twin.optimizer.defaults["fused"] and not reference.optimizer.defaults["fused"]
    for loop in (reference, twin):
        loop.train_epoch()
    # Same initial weights, batches and dropout masks: after an epoch the two models' outputs agree
    # to rounding. (Not every weight does: Adam turns the rounding noise in the zero gradient of a
    # bias that BatchNorm cancels into full-size steps, one source of the MLP's chaos.)
    images = next(iter(reference.loaders["val"]))[0]
    with torch.no_grad():
        assert torch.allclose(reference.model.eval()(images), twin.model.eval()(images), atol=1e-3)


def test_speed_vs_reference_prints_ratio_and_accuracies(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "speed_vs_reference.py"),
            "--size",
            "32",
            "--epochs",
            "2",
            "--splits",
            "64",
            "32",
            "32",
            "--source",
            "128x128",
            "--format",
            "png",
            "--cases",
            "hw3-b-mlp",
            "--seeds",
            "2",
            "--noise-floor",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    row = next(line for line in out.splitlines() if line.startswith("hw3-b-mlp"))
    ref_s, ours_s, ratio, target = re.search(
        r"hw3-b-mlp\s+fp32\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)×\s+≥ (\d+)×", row
    ).groups()
    ref_s, ours_s, ratio = float(ref_s), float(ours_s), float(ratio)
    assert ref_s > 0 and ours_s > 0  # printed to 0.01 s: the ratio lies between the rounding bounds
    assert (ref_s - 0.005) / (ours_s + 0.005) - 0.05 <= ratio <= (ref_s + 0.005) / max(ours_s - 0.005, 1e-9) + 0.05
    assert "32×32 px input; folder of 128 grayscale PNGs at 128×128" in out
    assert target == "3"  # cheap decoding: the engine alone, in fp32
    assert "2 seed(s)" in out and "rounding-only Δ pp" in out
    # Accuracies and both differences as mean ± sd over the two seeds.
    assert len(re.findall(r"[+-]?\d+\.\d+ ± \d+\.\d+", row)) == 4, row
    assert len(re.findall(r"[+-]\d+\.\d ± \d+\.\d", row)) == 2, row  # differences in points, signed


def test_published_cost_estimates_the_full_reproduction_from_flops(capsys):
    from published_cost import main

    expected, upper = main(["--early-stop-epochs", "15"])
    out = capsys.readouterr().out
    assert "total     44" in out and "V2" in out and "P224" in out
    assert 0.2 < expected < upper < 20  # hours on one GPU: early stopping shortens MedMNIST+, never V2
    assert main(["--early-stop-epochs", "100"])[0] == pytest.approx(upper)


def test_side_by_side_needs_the_original_checkouts_and_says_where_to_get_them(tmp_path, capsys):
    """The originals are never copied here (nor fetched by a test): without a checkout, one line and exit 2."""
    from published_side_by_side import main

    assert main(["--experiments", str(tmp_path), "--medmnistplus", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--experiments {tmp_path}: no MedMNIST2D/models.py there" in err


def test_gpu_throughput_runs_on_the_cpu_and_prints_both_loops(capsys):
    from gpu_throughput import main

    rows = main(
        [
            "--device",
            "cpu",
            "--size",
            "32",
            "--batches",
            "4",
            "8",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--precision",
            "fp32",
            "--model",
            "resnet18",
        ]
    )
    out = capsys.readouterr().out
    assert [r[0] for r in rows] == [4, 8] and all(float(r[1].replace(",", "")) > 0 for r in rows)
    assert "resnet18 at 32 px" in out and "xraybench / plain" in out and "A100" in out


def test_false_alarm_benchmark_flips_a_share_of_training_labels_through_the_cache(tmp_path):
    """Its degraded source decodes as every source does (splits, notes, accounting) and flips only train."""
    from check_false_alarms import FlippedLabels

    from xraybench.data.sources import SyntheticSource

    clean = SyntheticSource((200, 40, 40))
    flipped = cache.prepare(FlippedLabels(clean, share=0.1), 16, root=tmp_path / "cache").open()
    original = cache.prepare(clean, 16, root=tmp_path / "cache").open()
    assert (flipped.splits["train"].labels != original.splits["train"].labels).sum() == 20
    assert torch.equal(flipped.splits["test"].labels, original.splits["test"].labels)
    assert "10% of training labels flipped" in flipped.notes
