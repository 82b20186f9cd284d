import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from xraybench import report
from xraybench.check import CheckError, Tolerance, compare, make_baseline
from xraybench.cli import main

RUN = FIXTURES / "results-hw3-smoke.json"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "results.json").write_text(RUN.read_text())
    return path


@pytest.fixture
def baseline_file(tmp_path, run_dir):
    assert main(["baseline", "save", str(run_dir), "--dir", str(tmp_path / "baselines")]) == 0
    return tmp_path / "baselines" / "smoke-cpu.json"


def edit_baseline(path, edit):
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def check(run_dir, baseline_file, *extra, capsys=None):
    code = main(["check", str(run_dir), "--baseline", str(baseline_file), "--json", *extra])
    return code, json.loads(capsys.readouterr().out) if capsys else None


def statuses(result):
    return {c["id"]: c["status"] for c in result["cases"]}


def test_identical_run_passes(run_dir, baseline_file, capsys):
    code, result = check(run_dir, baseline_file, capsys=capsys)
    assert code == 0 and set(statuses(result).values()) == {"within tolerance"}


def test_stored_accuracy_raised_beyond_tolerance_is_a_regression(run_dir, baseline_file, capsys):
    edit_baseline(baseline_file, lambda d: d["cases"][0]["metrics"].update(test_acc=d["cases"][0]["metrics"]["test_acc"] + 0.05))
    code, result = check(run_dir, baseline_file, capsys=capsys)
    assert code == 1
    case = result["cases"][0]
    assert case["status"] == "worse" and "test_acc -5.0 pp" in case["note"]
    # A wider tolerance on the command line lets it pass.
    code, _ = check(run_dir, baseline_file, "--tolerance", "test_acc:-6pp", capsys=capsys)
    assert code == 0


def test_lower_is_better_for_time(run_dir, baseline_file, capsys):
    edit_baseline(baseline_file, lambda d: d["cases"][1]["metrics"].update(wall_time_s=d["cases"][1]["metrics"]["wall_time_s"] * 3))
    code, result = check(run_dir, baseline_file, capsys=capsys)
    assert code == 0 and statuses(result)["hw3-a-cnn-dropout"] == "better"


def test_missing_and_newly_failed_cases(run_dir, baseline_file, capsys):
    doc = json.loads((run_dir / "results.json").read_text())
    dropped = doc["cases"].pop(0)
    doc["cases"][0].update(status="failed", reason="Diverged: diverged at epoch 1", metrics={})
    (run_dir / "results.json").write_text(json.dumps(doc))
    code, result = check(run_dir, baseline_file, capsys=capsys)
    assert code == 1
    assert statuses(result)[dropped["id"]] == "missing" and statuses(result)[doc["cases"][0]["id"]] == "failed"


def test_edited_case_is_not_comparable_and_new_case_is_new(run_dir, baseline_file, capsys):
    doc = json.loads((run_dir / "results.json").read_text())
    doc["cases"][2]["hash"] = "0123456789ab"
    extra = copy.deepcopy(doc["cases"][3])
    extra["id"] = "hw3-z-new"
    doc["cases"].append(extra)
    (run_dir / "results.json").write_text(json.dumps(doc))
    code, result = check(run_dir, baseline_file, capsys=capsys)
    assert code == 0
    assert statuses(result)[doc["cases"][2]["id"]] == "not comparable" and statuses(result)["hw3-z-new"] == "new"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"kind": "something else", "cases": []}), ""])
def test_corrupt_baseline_exits_2(run_dir, tmp_path, content, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["check", str(run_dir), "--baseline", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_no_overlap_exits_2(run_dir, baseline_file, capsys):
    edit_baseline(baseline_file, lambda d: [c.update(id="other-" + c["id"]) for c in d["cases"]])
    assert main(["check", str(run_dir), "--baseline", str(baseline_file)]) == 2
    assert "no case in common" in capsys.readouterr().err


def test_tolerance_strings():
    assert Tolerance.parse("test_acc:-2pp") == Tolerance("test_acc", 2.0, "pp")
    assert Tolerance.parse("wall_time:+25%") == Tolerance("wall_time_s", 25.0, "%")
    for bad, words in [("test_acc:+2pp", "higher is better"), ("test_acc:2%", "takes pp"), ("speed:1%", "unknown"),
                       ("test_acc", "expected METRIC:AMOUNT")]:
        with pytest.raises(CheckError, match=words):
            Tolerance.parse(bad)


def test_machine_mismatch_is_a_warning_not_a_failure(run_dir, baseline_file, capsys):
    edit_baseline(baseline_file, lambda d: d["software"].update(torch="0.0.1"))
    assert main(["check", str(run_dir), "--baseline", str(baseline_file)]) == 0
    assert "warning: software.torch differs" in capsys.readouterr().err


def test_report_shows_the_verdicts(run_dir, baseline_file):
    edit_baseline(baseline_file, lambda d: d["cases"][0]["metrics"].update(test_acc=0.99))
    html, _ = report.render(run_dir, baseline=baseline_file)
    text = html.read_text()
    assert "Regression check" in text and "regression" in text and "worse" in text


def test_committed_smoke_baseline_passes(tmp_path):
    """What CI gates on: the smoke suite, run by the command line, against benchmarks/baselines/smoke-cpu.json."""
    out = tmp_path / "reports"
    run = subprocess.run([sys.executable, "-m", "xraybench.cli", "run", "--all", "--profile", "smoke", "--device",
                          "cpu", "--no-report", "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    checked = subprocess.run([sys.executable, "-m", "xraybench.cli", "check", str(out / "smoke-cpu-synthetic")],
                             capture_output=True, text=True, cwd=REPO)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "within tolerance" in checked.stdout


def test_make_baseline_keeps_only_checked_metrics():
    doc = json.loads(RUN.read_text())
    baseline = make_baseline(doc, "x")
    assert set(baseline["cases"][0]["metrics"]) == {"test_acc", "test_auc", "test_sensitivity", "test_specificity",
                                                    "best_val_acc", "test_loss", "wall_time_s", "s_per_epoch",
                                                    "peak_memory_mb"}
    assert compare(doc, baseline)[0].status == "within tolerance"
