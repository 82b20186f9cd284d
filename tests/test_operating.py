"""Operating points and calibration: thresholds chosen on validation and frozen for test, sensitivity at
a fixed specificity, Brier and ECE, and the report section that shows them (read back from the PDF)."""

import json

import numpy as np
import pytest
from conftest import FIXTURES
from pypdf import PdfReader
from sklearn.metrics import brier_score_loss

from xraybench import report
from xraybench.cli import main
from xraybench.report.analysis import operating_points
from xraybench.results import by_case
from xraybench.stats import operating
from xraybench.stats.operating import (
    CaseOperatingPoints,
    calibration_error,
    rates,
    seed_point,
    squared_calibration_error,
    threshold_for_specificity,
    youden_threshold,
)


def brute_force_youden(labels, probs):
    candidates = sorted(set(probs.tolist()) | {1.0})
    return max(candidates, key=lambda t: (rates(labels, probs, t)[1] + rates(labels, probs, t)[2], t))


def test_youden_threshold_maximises_j():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probs = np.clip(0.3 * labels + rng.normal(0.4, 0.2, 200), 0, 1)
    threshold = youden_threshold(labels, probs)
    best = brute_force_youden(labels, probs)
    j = lambda t: rates(labels, probs, t)[1] + rates(labels, probs, t)[2]  # noqa: E731
    assert j(threshold) == pytest.approx(j(best))


@pytest.mark.parametrize("target", [0.9, 0.95, 0.5, 1.0])
def test_threshold_for_specificity_is_the_lowest_that_reaches_it(target):
    rng = np.random.default_rng(2)
    labels = np.array([0] * 40 + [1] * 60)
    probs = rng.random(100)
    t = threshold_for_specificity(labels, probs, target)
    assert rates(labels, probs, t)[2] >= target
    lower = probs[(labels == 0) & (probs < t)]
    if len(lower):  # the next threshold down lets one more normal image through: below the target
        assert rates(labels, probs, lower.max())[2] < target


def test_calibration_measures():
    labels = np.array([1] * 9 + [0] + [1] * 5 + [0] * 5)
    probs = np.array([0.9] * 10 + [0.5] * 10)
    # 90% at 0.9, 50% at 0.5: no gap, so only the debiasing terms −ȳ(1 − ȳ)/(n_b − 1), weighted by bin share
    assert squared_calibration_error(labels, probs)[0, 0] == pytest.approx(-0.5 * 0.09 / 9 - 0.5 * 0.25 / 9)
    assert squared_calibration_error(np.array([1, 0, 1, 0]), np.full(4, 0.9))[0, 0] == pytest.approx(0.4**2 - 0.25 / 3)
    assert calibration_error(-0.01) == 0.0 and calibration_error(0.04) == pytest.approx(0.2)


def test_the_debiased_calibration_error_reads_bootstrap_weights_as_repeated_images():
    rng = np.random.default_rng(5)
    labels, probs = rng.integers(0, 2, 80), rng.random((3, 80))
    weights = rng.multinomial(80, np.full(80, 1 / 80), 4)
    found = squared_calibration_error(labels, probs, weights)
    for row, w in zip(found, weights):
        index = np.repeat(np.arange(80), w)
        assert row == pytest.approx([squared_calibration_error(labels[index], p[index])[0, 0] for p in probs])


def test_a_calibrated_model_gets_an_ece_near_0_with_an_interval_that_reaches_0():
    """The issue's case: true ECE 0, 400 images. The old plug-in read 0.052 [0.045, 0.102]."""
    rng = np.random.default_rng(11)
    probs = rng.beta(0.5, 0.5, 400)
    labels = (rng.random(400) < probs).astype(int)
    seeds = [seed_point(labels, probs, labels, probs)]
    points = CaseOperatingPoints(
        "calibrated", "Youden", seeds, labels, probs[None], int(labels.sum()), int((labels == 0).sum())
    )
    low, high = points.ece_interval()
    assert points.ece() < 0.05 and low == 0.0 and 0.0 < high < 0.1
    rng = np.random.default_rng(3)
    labels, probs = rng.integers(0, 2, 50), rng.random(50)
    point = seed_point(labels, probs, labels, probs)
    assert point.brier == pytest.approx(brier_score_loss(labels, probs))
    assert np.all(np.diff(point.precision) <= 1e-12)  # interpolated precision never rises with recall
    assert np.all(np.diff(point.roc) >= -1e-12)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("operating")
    assert (
        main(
            [
                "run",
                "hw3-a*",
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--seeds",
                "2",
                "--precision",
                "fp32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    run_dir = out / "smoke-cpu-synthetic"
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_thresholds_are_chosen_on_validation_and_frozen_for_test(smoke_run):
    _, doc = smoke_run
    images = doc["data"]["images"]
    val_labels, test_labels = np.array(images["val"]["labels"]), np.array(images["test"]["labels"])
    points = operating_points(by_case(doc)["hw3-a-cnn"])
    rows = [r for r in doc["cases"] if r["id"] == "hw3-a-cnn"]
    assert len(points.seeds) == len(rows) == 2
    for row, point in zip(rows, points.seeds):
        val, test = np.array(row["predictions"]["val"]), np.array(row["predictions"]["test"])
        threshold = youden_threshold(val_labels, val)  # from validation only
        assert point.threshold == threshold
        assert point.acc_at_threshold == pytest.approx(np.mean((test >= threshold) == (test_labels == 1)))
        assert point.acc_half == pytest.approx(row["metrics"]["test_acc"], abs=1e-9)
        t90 = threshold_for_specificity(val_labels, val, 0.9)
        assert point.at_specificity[0.9][0] == pytest.approx(np.mean(test[test_labels == 1] >= t90))


def test_report_shows_operating_points_and_calibration(smoke_run):
    run_dir, doc = smoke_run
    _, pdf = report.render(run_dir)
    text = " ".join("\n".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "Operating points and calibration" in text and "threshold (chosen on val)" in text and "(Youden)" in text
    for case in ("hw3-a-cnn", "hw3-a-cnn-dropout"):
        points = operating_points(by_case(doc)[case])
        brier = np.mean([s.brier for s in points.seeds])
        assert f"{brier:.3f} [" in text
    html = (run_dir / "report.html").read_text()
    assert 'alt="ROC, precision-recall and reliability curves"' in html


def test_results_without_predictions_have_no_operating_section():
    doc = json.loads((FIXTURES / "results-hw3-smoke.json").read_text())  # schema 1
    assert all(operating_points(c) is None for c in by_case(doc).values())
    assert operating.SPECIFICITY_TARGETS == (0.90, 0.95)


@pytest.mark.parametrize("target", [0.9, 0.95, 0.5])
def test_threshold_for_sensitivity_is_the_highest_that_reaches_it(target):
    rng = np.random.default_rng(4)
    labels = np.array([0] * 40 + [1] * 60)
    probs = rng.random(100)
    t = operating.threshold_for_sensitivity(labels, probs, target)
    assert rates(labels, probs, t)[1] >= target
    higher = probs[(labels == 1) & (probs > t)]
    assert rates(labels, probs, higher.min())[1] < target  # one step up loses the target


def test_a_case_may_declare_its_target_sensitivity(tmp_path, capsys):
    cases = tmp_path / "cases.toml"
    text = (
        'suite = "hw9"\n[tasks]\nA = "a"\n[defaults]\ntarget_sensitivity = {}\n[defaults.train]\nepochs = 2\n\n'
        '[[case]]\nid = "hw9-a"\ntask = "A"\ntitle = "cnn"\nmodel = {{ name = "hw3_cnn" }}\n'
    )
    cases.write_text(text.format(1.5))
    assert (
        main(["run", "--all", "--cases", str(cases), "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path)])
        == 2
    )
    assert "target_sensitivity': must be a share between 0 and 1" in capsys.readouterr().err
    cases.write_text(text.format(0.9))
    assert (
        main(
            [
                "run",
                "--all",
                "--cases",
                str(cases),
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--seeds",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    run_dir = tmp_path / "smoke-cpu-synthetic"
    doc = json.loads((run_dir / "results.json").read_text())
    assert {r["target_sensitivity"] for r in doc["cases"]} == {0.9}
    points = operating_points(by_case(doc)["hw9-a"])
    val_labels = np.array(doc["data"]["images"]["val"]["labels"])
    for row, point in zip(doc["cases"], points.seeds):
        val = np.array(row["predictions"]["val"])
        assert point.threshold == operating.threshold_for_sensitivity(val_labels, val, 0.9)
        assert rates(val_labels, val, point.threshold)[1] >= 0.9
    text = " ".join("\n".join(p.extract_text() for p in PdfReader(run_dir / "report.pdf").pages).split())
    assert "(sensitivity ≥ 90%)" in text
