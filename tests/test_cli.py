import json

import pytest
from conftest import KERMANY, NAN_AND_OK_CASES, NPZ

from xraybench import results
from xraybench.cli import main
from xraybench.runner import jobs
from xraybench.train import engine, trainings

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-report"]


def results_of(out, run_id):
    return json.loads((out / run_id / "results.json").read_text())


def test_list_shows_every_case(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for case_id in ("hw3-a-cnn", "hw3-a-cnn-dropout", "hw3-b-mlp", "hw3-c-gap", "hw3-c-gap-wide"):
        assert case_id in text


def test_run_writes_results_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "reports"
    assert main(["run", "hw3-a*", "--profile", "smoke", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "profile: smoke" in printed and str(out / "smoke-cpu-synthetic" / "results.json") in printed
    assert str(out / "smoke-cpu-synthetic" / "report.pdf") in printed
    assert (out / "smoke-cpu-synthetic" / "report.pdf").read_bytes().startswith(b"%PDF")
    doc = results_of(out, "smoke-cpu-synthetic")
    assert doc["schema_version"] == 3 and doc["profile"] == "smoke"
    assert {"machine_info", "software", "commit_info", "datetime"} <= set(doc)
    assert doc["software"]["torch"] and doc["software"]["device"] == "cpu"
    assert doc["data"]["splits"]["train"] == {
        "images": 192,
        "normal": doc["data"]["splits"]["train"]["normal"],
        "pneumonia": doc["data"]["splits"]["train"]["pneumonia"],
    }
    assert [r["id"] for r in doc["cases"]] == ["hw3-a-cnn", "hw3-a-cnn-dropout"]
    row = doc["cases"][0]
    assert row["status"] == "ok" and len(row["history"]) == 2 and len(row["hash"]) == 12
    assert row["config"]["data"]["image_size"] == 32

    # Same run id again: nothing is trained, finished rows are kept.
    monkeypatch.setattr(trainings, "train_case", lambda *a, **k: pytest.fail("finished case trained again"))
    assert main(["run", "hw3-a*", *SMOKE, "--out", str(out)]) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert results_of(out, "smoke-cpu-synthetic")["cases"] == doc["cases"]

    # --force trains again.
    monkeypatch.setattr(trainings, "train_case", engine.train_case)
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(out), "--force"]) == 0
    forced = results_of(out, "smoke-cpu-synthetic")["cases"]
    assert forced[0]["started"] != doc["cases"][0]["started"] and len(forced) == 2


def test_failed_case_is_recorded_and_the_suite_goes_on(tmp_path, write_cases, capsys):
    cases = write_cases(NAN_AND_OK_CASES)
    code = main(["run", "--all", "--cases", str(cases), *SMOKE, "--out", str(tmp_path)])
    assert code == 1
    rows = {r["id"]: r for r in results_of(tmp_path, "smoke-cpu-synthetic")["cases"]}
    assert rows["hw3-nan"]["status"] == "failed" and "diverged at epoch 1" in rows["hw3-nan"]["reason"]
    assert rows["hw3-ok"]["status"] == "ok"
    assert "FAILED: Diverged: diverged at epoch 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "data, run_id", [(NPZ, "smoke-cpu-pneumoniamnist-28-subset"), (KERMANY, "smoke-cpu-kermany-mini")]
)
def test_run_on_real_images(tmp_path, data, run_id):
    assert main(["run", "hw3*", *SMOKE, "--data", str(data), "--out", str(tmp_path)]) == 0
    doc = results_of(tmp_path, run_id)
    assert len(doc["cases"]) == 5 and all(r["status"] == "ok" for r in doc["cases"])
    assert doc["data"]["kind"] in ("npz", "folder")
    test_split = doc["data"]["splits"]["test"]
    assert test_split["images"] == sum(doc["cases"][0]["metrics"]["test_confusion"].values())


def test_seeds_run_each_case_per_seed_with_predictions_and_intervals(tmp_path):
    """The acceptance command: per-image test probabilities, test-accuracy intervals, mean ± sd in the PDF."""
    assert main(["run", "hw3-a*", "--profile", "smoke", "--device", "cpu", "--seeds", "3", "--out", str(tmp_path)]) == 0
    doc = results_of(tmp_path, "smoke-cpu-synthetic")
    rows = doc["cases"]
    assert [(r["id"], r["seed"]) for r in rows] == [
        (c, s) for c in ("hw3-a-cnn", "hw3-a-cnn-dropout") for s in range(3)
    ]
    assert rows[0]["hash"] == rows[1]["hash"] and rows[0]["config"]["train"]["seed"] == 0  # seeds share the hash
    images = doc["data"]["images"]
    assert (
        len(images["test"]["ids"]) == 64 == len(rows[0]["predictions"]["test"]) and images["test"]["ids"][0] == "test/0"
    )
    assert len(rows[0]["predictions"]["val"]) == len(images["val"]["labels"]) == 64
    assert all(p == round(p, 4) and 0 <= p <= 1 for p in rows[0]["predictions"]["test"])
    low, high = rows[0]["metrics"]["test_intervals"]["acc"]
    assert low < rows[0]["metrics"]["test_acc"] < high
    assert set(rows[0]["metrics"]["test_intervals"]) == {"acc", "sensitivity", "specificity", "auc", "f1"}
    from pypdf import PdfReader

    text = " ".join(
        " ".join(
            page.extract_text() for page in PdfReader(tmp_path / "smoke-cpu-synthetic" / "report.pdf").pages
        ).split()
    )
    for words in (
        "Results: test set",
        "95% interval",
        "majority class (always PNEUMONIA)",
        "Resolution:",
        "Paired comparisons on the test images",
        "hw3-a-cnn-dropout vs hw3-a-cnn",
        " ± ",
        "per-seed test metrics with 95% intervals",
    ):
        assert words in text, words


def test_profile_seeds_and_a_cases_own_count(tmp_path, capsys):
    from xraybench.cases import PROFILES, load_cases

    cases = {c.id: c for c in load_cases()[0]}
    assert [PROFILES[p].seeds for p in ("smoke", "quick", "full")] == [1, 3, 5]
    assert cases["hw3-a-cnn"].seed_count(PROFILES["quick"]) == 3
    assert cases["hw4-b-efficientnet-lite0"].seed_count(PROFILES["quick"]) == 1  # fine-tuning on a CPU: one
    assert cases["hw4-c-efficientnet-lite0"].seed_count(PROFILES["quick"]) == 3
    assert cases["hw4-b-efficientnet-lite0"].seed_count(PROFILES["full"]) == 5


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "nothing*"], "no case matches 'nothing*' (xraybench list shows the"),
        (["run"], "--all, or one or more id patterns"),
        (["run", "--all", "--data", "/no/such/place"], "/no/such/place: no such file or folder"),
        (["run", "--all", "--device", "cuda"], "no CUDA device"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, words, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.startswith("xraybench: error:") and "\n" not in err


def test_run_directory_of_another_profile_is_not_mixed(tmp_path, capsys):
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), "--run-id", "mine"]) == 0
    assert (
        main(["run", "hw3-b-mlp", "--profile", "quick", "--device", "cpu", "--out", str(tmp_path), "--run-id", "mine"])
        == 2
    )
    assert "holds a run with profile smoke" in capsys.readouterr().err


def test_progress_line_when_auc_is_undefined():
    metrics = {"test_acc": 1.0, "test_auc": None, "best_val_acc": 0.5, "wall_time_s": 1.0}
    row = results.Row(id="hw3-x", status="ok", metrics=results.Metrics(**metrics))
    assert "AUC n/a" in jobs._one_line(row)


def test_rows_of_an_edited_case_are_dropped_not_pooled(tmp_path, write_cases, capsys):
    text = """
suite = "hw3"
[tasks]
A = "a task"
[[case]]
id = "hw3-x"
task = "A"
title = "x"
model = { name = "hw3_gap_cnn" }
train = { lr = %s }
"""
    cases = write_cases(text % "1e-3")
    assert main(["run", "--all", "--cases", str(cases), *SMOKE, "--seeds", "2", "--out", str(tmp_path)]) == 0
    cases = write_cases(text % "3e-4")  # edited: a new configuration, one seed this time
    assert main(["run", "--all", "--cases", str(cases), *SMOKE, "--seeds", "1", "--out", str(tmp_path)]) == 0
    assert "dropped 2 row(s) of edited case(s) (hw3-x)" in capsys.readouterr().out
    rows = results_of(tmp_path, "smoke-cpu-synthetic")["cases"]
    assert [(r["seed"], r["config"]["train"]["lr"]) for r in rows] == [(0, 3e-4)]
