"""`xraybench history`: series across runs, ordered by commit date; a planted step and a planted slow drift are
flagged, a stable series is not; the page renders; exit codes as `check`."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader
from sklearn.metrics import roc_auc_score

from xraybench import history
from xraybench.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stat_calibration as simulation  # noqa: E402

RUNS, SEEDS, IMAGES = 8, 3, 624
PLANTED = {  # case → true accuracy per run, oldest first
    "hw3-stable": [0.85] * RUNS,
    "hw3-step": [0.85] * (RUNS - 1) + [0.77],
    "hw3-drift": [0.85 - 0.015 * r for r in range(RUNS)],  # 1.5 points a run: each step alone is within the noise
}


def simulated_runs(tmp_path: Path, seed_sd_pp: float = 1.5) -> list[Path]:
    """Results files of RUNS runs on the same test images, committed a day apart (written in shuffled order)."""
    rng = np.random.default_rng(26)
    labels = rng.random(IMAGES) < simulation.PREVALENCE
    difficulty = rng.normal(0, simulation.IMAGE_SD, IMAGES)
    tau = simulation.tau_for(seed_sd_pp)
    images = {"test": {"ids": [f"test/{i}" for i in range(IMAGES)], "labels": labels.astype(int).tolist()}}
    dirs = []
    for r in rng.permutation(RUNS):
        rows = []
        for case, accuracies in PLANTED.items():
            mu = simulation._mu(accuracies[r], tau)
            for seed in range(SEEDS):
                z = mu + difficulty + rng.normal(0, tau) + rng.normal(0, simulation.NOISE_SD, IMAGES)
                p_true = 1 / (1 + np.exp(-z))
                probs = np.where(labels, p_true, 1 - p_true)
                acc = float(((probs >= 0.5) == labels).mean())
                rows.append({"id": case, "suite": "hw3", "task": "A", "seed": seed, "status": "ok", "hash": "h-" + case,
                             "metrics": {"test_acc": acc, "test_auc": float(roc_auc_score(labels, probs))},
                             "predictions": {"test": [round(float(p), 4) for p in probs]}})
        doc = {"schema_version": 2, "run_id": f"run-{r}", "profile": "quick", "datetime": f"2026-12-{20 - r:02d}T00:00:00",
               "commit_info": {"id": f"c0ffee{r:02d}".ljust(40, "0"), "time": f"2026-11-{r + 1:02d}T12:00:00+00:00"},
               "data": {"images": images, "splits": {"test": {"images": IMAGES}}}, "cases": rows}
        run_dir = tmp_path / f"run-{r}"
        run_dir.mkdir()
        (run_dir / "results.json").write_text(json.dumps(doc))
        dirs.append(run_dir)
    return dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return simulated_runs(tmp_path_factory.mktemp("history"))


def latest(series, case, metric="test_acc"):
    return next(s for s in series if s.case == case and s.metric == metric).latest


def test_runs_are_ordered_by_commit_date(runs):
    docs = history.load(runs)
    assert [d["run_id"] for d in docs] == [f"run-{r}" for r in range(RUNS)]  # not the order given nor the run date


def test_a_planted_step_and_a_slow_drift_are_flagged_and_a_stable_series_is_not(runs):
    series = history.build(history.load(runs))
    assert latest(series, "hw3-step").status == "worse"
    assert latest(series, "hw3-drift").status == "worse"
    assert latest(series, "hw3-stable").status == "no detectable change"
    assert latest(series, "hw3-step").window == 5 and latest(series, "hw3-step").change.seeds_b == 15
    # The drift is the lookback's catch: against the one run before, each 1.5-point step is within the noise.
    one_back = history.build(history.load(runs), lookback=1)
    assert latest(one_back, "hw3-drift").status == "no detectable change"
    assert latest(one_back, "hw3-step").status == "worse"
    first = next(s for s in series if s.case == "hw3-stable").points[0]
    assert first.status == "first comparable run" and first.change is None


def test_the_cli_renders_the_page_and_exits_as_check_does(runs, tmp_path, capsys):
    out = tmp_path / "history"
    assert main(["history", *map(str, runs), "--out", str(out)]) == 1  # the latest run is worse
    printed = capsys.readouterr().out
    assert "hw3-step" in printed and "worse" in printed and "history.pdf" in printed
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(out / "history.pdf").pages).split())
    assert "The latest run against its recent history" in text and "hw3-drift" in text
    assert (out / "history.html").read_text().count("<figure>") == 3  # one per case
    two = [str(r) for r in runs[:2]]  # 1.5 points of drift, 3 seeds a side: within the noise, exit 0
    assert main(["history", *two, "--out", str(tmp_path / "h2"), "--json"]) == 0
    found = {(s["case"], s["metric"]): s["points"] for s in json.loads(capsys.readouterr().out)}
    assert found["hw3-drift", "test_acc"][0]["status"] == "first comparable run"
    assert found["hw3-drift", "test_acc"][1]["status"] == "no detectable change"


def test_what_history_cannot_use_is_one_line(runs, tmp_path, capsys):
    assert main(["history", str(runs[0]), "--out", str(tmp_path)]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert main(["history", str(tmp_path / "nowhere"), str(runs[0])]) == 2
    assert "no such run directory" in capsys.readouterr().err
