"""`xraybench history`: series across runs, ordered by commit date; a planted step and a planted slow drift are
flagged, a stable series is not; the page renders; exit codes as `check`. Runs of one commit get distinct labels,
each profile is its own series, counts agree with their nouns, and a case the latest run lacks is kept."""

import json
import shutil
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from pypdf import PdfReader
from sklearn.metrics import roc_auc_score

from xraybench import history, results
from xraybench.cli import main
from xraybench.report import history_page, plots

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stat_calibration as simulation

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
                acc = float((results.says_pneumonia(probs) == labels).mean())
                rows.append(
                    {
                        "id": case,
                        "suite": "hw3",
                        "task": "A",
                        "seed": seed,
                        "status": "ok",
                        "hash": "h-" + case,
                        "metrics": {"test_acc": acc, "test_auc": float(roc_auc_score(labels, probs))},
                        "predictions": {"test": [round(float(p), 4) for p in probs]},
                    }
                )
        doc = {
            "schema_version": 2,
            "run_id": f"run-{r}",
            "profile": "quick",
            "datetime": f"2026-12-{20 - r:02d}T00:00:00",
            "commit_info": {"id": f"c0ffee{r:02d}".ljust(40, "0"), "time": f"2026-11-{r + 1:02d}T12:00:00+00:00"},
            "data": {"images": images, "splits": {"test": {"images": IMAGES}}},
            "cases": rows,
        }
        run_dir = tmp_path / f"run-{r}"
        run_dir.mkdir()
        (run_dir / "results.json").write_text(json.dumps(doc))
        dirs.append(run_dir)
    return dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return simulated_runs(tmp_path_factory.mktemp("history"))


def copies(dirs: list[Path], tmp_path: Path, change=lambda doc, r: None) -> list[Path]:
    """Copies of simulated runs, oldest first, each results.json rewritten by ``change(doc, r)`` (r: run-r)."""
    copied = []
    for run_dir in sorted(dirs, key=lambda d: int(d.name.split("-")[1])):
        path = shutil.copytree(run_dir, tmp_path / run_dir.name) / "results.json"
        doc = json.loads(path.read_text())
        change(doc, int(run_dir.name.split("-")[1]))
        path.write_text(json.dumps(doc))
        copied.append(path.parent)
    return copied


def figures_of(monkeypatch) -> list:
    """The page's figures as matplotlib figures (their SVGs draw text as paths, unreadable to a test)."""
    figures = []
    monkeypatch.setattr(plots, "to_data_uri", lambda fig: figures.append(fig) or "")
    return figures


def latest(series, case, metric="test_acc"):
    return next(s for s in series if s.case == case and s.metric == metric).latest


def test_runs_are_ordered_by_commit_date(runs):
    docs = history.load(runs)
    assert [d.run_id for d in docs] == [f"run-{r}" for r in range(RUNS)]  # not the order given nor the run date


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


def test_runs_of_one_commit_get_distinct_labels_in_the_figures_and_the_run_table(runs, tmp_path, monkeypatch):
    def one_commit(doc, r):
        doc["commit_info"] = {"id": "abcdef12".ljust(40, "0"), "time": "2026-11-01T12:00:00+00:00"}

    docs = history.load(copies(runs, tmp_path, one_commit))
    labels = history.labels(docs)
    assert len(set(labels)) == RUNS and all(label.startswith("abcdef12 2026-11-01 run-") for label in labels)
    series = history.build(docs)
    assert all([p.label for p in s.points] == labels for s in series)
    figures = figures_of(monkeypatch)
    page = history_page.context(docs, series, history.LOOKBACK)
    assert [t.get_text() for t in figures[0].axes[0].get_xticklabels()] == labels
    assert [row[1] for row in page["runs"].rows] == labels
    plt.close("all")
    twice = [
        results.parse({"schema_version": 2, "run_id": "x", "commit_info": docs[0].commit_info, "cases": []}, "x")
    ] * 2
    assert history.labels(twice) == ["abcdef12 2026-11-01 x #1", "abcdef12 2026-11-01 x #2"]


def test_smoke_and_quick_runs_of_a_case_are_separate_series_and_lines(runs, tmp_path, monkeypatch):
    def smoke_when_even(doc, r):
        if r % 2 == 0:  # another profile: other image sizes and epochs, so another configuration hash
            doc["profile"] = "smoke"
            for row in doc["cases"]:
                row["hash"] = "smoke-" + row["hash"]

    docs = history.load(copies(runs, tmp_path, smoke_when_even))
    series = history.build(docs)
    acc = {s.profile: s for s in series if s.case == "hw3-stable" and s.metric == "test_acc"}
    assert [p.run for p in acc["smoke"].points] == ["run-0", "run-2", "run-4", "run-6"]
    assert [p.run for p in acc["quick"].points] == ["run-1", "run-3", "run-5", "run-7"]
    assert acc["smoke"].latest.window == 3 and acc["quick"].latest.window == 3  # each pools its own profile's runs
    assert acc["quick"].in_latest_run and not acc["smoke"].in_latest_run
    figures = figures_of(monkeypatch)
    history_page.context(docs, series, history.LOOKBACK)
    assert len(figures) == 3  # one per case, both profiles in it
    assert [t.get_text() for t in figures[0].legends[0].get_texts()][:2] == ["profile smoke", "profile quick"]
    plt.close("all")


def test_counts_agree_with_their_nouns(runs, tmp_path, capsys):
    def one_case(doc, r):
        doc["cases"] = [row for row in doc["cases"] if row["id"] == "hw3-stable"]

    two = copies(sorted(runs, key=lambda d: d.name)[:2], tmp_path, one_case)
    out = tmp_path / "page"
    assert main(["history", *map(str, two), "--lookback", "1", "--out", str(out)]) == 0
    printed, page = capsys.readouterr().out, (out / "history.html").read_text()
    assert "<h1>xraybench history: 2 runs, 1 case</h1>" in page and "up to 1 earlier run " in page
    assert not any(wrong in printed + page for wrong in ("1 cases", "1 runs", "1 earlier runs"))
    assert printed.startswith("2 runs, 1 case;") and "(1 run, 3 seeds)" in printed


def test_a_case_the_latest_run_lacks_is_drawn_and_listed_but_is_no_regression(runs, tmp_path, capsys):
    def only_stable(doc, r):  # a later run of hw3-stable alone: hw3-step's latest point, worse, is run-7's
        doc.update(run_id="run-8", commit_info={"id": "c0ffee08".ljust(40, "0"), "time": "2026-11-09T12:00:00+00:00"})
        doc["cases"] = [row for row in doc["cases"] if row["id"] == "hw3-stable"]

    dirs = copies(runs, tmp_path)
    later = copies([dirs[-1]], tmp_path / "later", only_stable)
    out = tmp_path / "page"
    assert main(["history", *map(str, dirs + later), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not in the latest run (last seen in c0ffee07 2026-11-08)" in printed
    assert (out / "history.html").read_text().count("<figure>") == 3  # every case of any run
    series = history.build(history.load(dirs + later))
    step = next(s for s in series if s.case == "hw3-step" and s.metric == "test_acc")
    assert len(step.points) == RUNS and step.latest.status == "worse" and not step.in_latest_run
    assert history.exit_code(series) == 0
