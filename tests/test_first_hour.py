"""A new user's first hour, played end to end on the tests' real PneumoniaMNIST file, and one test per thing that
misled or surprised in it: check across data, baseline save into the package, typos among ids, own case files
and models, degenerate trainings, output wider than a terminal, two hashes, empty run directories, --set."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NPZ

from xraybench.check import SHIPPED_DIR
from xraybench.cli import main
from xraybench.results import Metrics, degeneracy

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-report"]
OWN_MODEL = """
from torch import nn
from xraybench.models import register_model


@register_model
def tiny_cnn(*, in_channels: int, image_size: int, num_outputs: int, width: int = 8) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, num_outputs))
"""
OWN_CASES = """
suite = "mine"
extends = "hw3"

[[case]]
id = "mine-a-tiny"
task = "A"
title = "Tiny CNN"
model = { name = "tiny_cnn" }
compare = ["hw3-a-cnn"]
"""


@pytest.fixture(autouse=True)
def _own_models_forgotten(monkeypatch):
    """Each test registers its own tiny_cnn, as a new process would (another test may have registered the docs'
    one): the registry is restored after it."""
    from xraybench.models import registry

    registry.list_models()
    monkeypatch.setattr(registry, "_BUILDERS", {k: v for k, v in registry._BUILDERS.items() if k != "tiny_cnn"})
    yield
    for name in ("mymodels", "my_models"):
        sys.modules.pop(name, None)


def widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A user's own directory: their model module and case file, the working directory of every command."""
    (tmp_path / "mymodels.py").write_text(OWN_MODEL)
    (tmp_path / "mine.toml").write_text(OWN_CASES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return tmp_path


def test_the_first_hour(workdir, capsys):
    shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_DIR.glob("*.json")}

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert widest(listed) <= 100 and "108 of 108 cases shown" in listed

    own = ["--cases", "mine.toml", "--import", "mymodels"]
    assert main(["list", *own]) == 0
    listed = capsys.readouterr().out
    assert "mine-a-tiny" in listed and "model tiny_cnn: module mymodels" in listed and "hw3-a-cnn " not in listed

    assert main(["run", *own, "mine-a-tiny", "hw3-a-cnn", *SMOKE, "--seeds", "2", "--data", str(NPZ)]) == 0
    printed = capsys.readouterr().out
    assert widest(printed) <= 100
    doc = json.loads((workdir / "reports" / "smoke-cpu-pneumoniamnist-28-subset" / "results.json").read_text())
    mine = next(r for r in doc["cases"] if r["id"] == "mine-a-tiny")
    assert mine["config"]["train"]["scheduler"] == "step" and mine["config"]["train"]["scheduler_options"] == {
        "step_size": 10,
        "gamma": 0.1,
    }  # HW3's StepLR, from extends = "hw3"
    assert mine["config"]["model"]["name"] == "tiny_cnn" and mine["task"] == "A"

    run = "reports/smoke-cpu-pneumoniamnist-28-subset"
    assert main(["baseline", "save", run]) == 0
    saved = capsys.readouterr().out
    assert "benchmarks/baselines/smoke-cpu.json (2 cases × 2 seeds (4 trainings))" in saved
    assert (workdir / "benchmarks" / "baselines" / "smoke-cpu.json").is_file()
    assert shipped == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SHIPPED_DIR.glob("*.json")}

    assert main(["check", run]) == 0  # the working directory's baseline, same data
    checked = capsys.readouterr().out
    assert "benchmarks/baselines/smoke-cpu.json" in checked and widest(checked) <= 100

    assert main(["run", "hw3-a-cnn", *SMOKE, "--seeds", "2"]) == 0  # the built-in synthetic data
    capsys.readouterr()
    assert main(["check", "reports/smoke-cpu-synthetic"]) == 2
    error = capsys.readouterr().err
    assert "cannot compare: this run is on synthetic" in error and "the baseline on pneumoniamnist-28-subset" in error

    assert main(["run", "hw3-a-cnn", "hw3-a-cnn-dropuot", *SMOKE]) == 2
    error = capsys.readouterr().err
    assert "no case matches 'hw3-a-cnn-dropuot'; did you mean hw3-a-cnn-dropout" in error and len(error) < 250


# ------------------------------------------------------------------ 1. check compares what the numbers depend on


def _results(run_id="run", profile="smoke", data=None):
    doc = json.loads((Path(__file__).parent / "fixtures" / "results-hw3-smoke.json").read_text())
    doc.update(run_id=run_id, profile=profile)
    if data:
        doc["data"].update(data)
    return doc


def _check_against_saved(tmp_path, base: dict, run: dict) -> int:
    """``base`` stored as a baseline with ``baseline save``, then ``check`` of ``run`` against it: the exit code."""
    for name, doc in (("base", base), ("run", run)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(doc))
    assert main(["baseline", "save", str(tmp_path / "base"), "--dir", str(tmp_path)]) == 0
    return main(["check", str(tmp_path / "run"), "--baseline", str(tmp_path / "smoke-cpu.json")])


@pytest.mark.parametrize(
    "change, said",
    [
        (dict(profile="quick"), "this run is on profile quick, the baseline on profile smoke"),
        (
            dict(data={"name": "other", "kind": "npz", "fingerprint": "npz-other-1", "medmnist": {"md5": "ab" * 16}}),
            "this run is on other (MD5 abababab), the baseline on synthetic",
        ),
    ],
)
def test_check_refuses_another_profile_or_other_data(tmp_path, capsys, change, said):
    assert _check_against_saved(tmp_path, _results(), _results(**change)) == 2
    error = capsys.readouterr().err
    assert said in error and error.count("\n") == 1


def test_check_refuses_other_test_images(tmp_path, capsys):
    base, other = _results(), _results()
    base["data"]["images"] = {"test": {"ids": ["test/0", "test/1"], "labels": [0, 1]}}
    other["data"]["images"] = {"test": {"ids": ["test/0", "test/2"], "labels": [0, 1]}}
    assert _check_against_saved(tmp_path, base, other) == 2
    assert "test images" in capsys.readouterr().err


# ---------------------------------------------------------------- 2. baseline save: the working directory, --force


def test_baseline_save_refuses_to_overwrite_and_counts_cases_and_seeds(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(_results()))
    assert main(["baseline", "save", "run"]) == 0
    assert "(5 cases × 1 seed (5 trainings))" in capsys.readouterr().out
    first = (tmp_path / "benchmarks" / "baselines" / "smoke-cpu.json").read_bytes()
    assert main(["baseline", "save", "run"]) == 2
    assert "already stored here; --force replaces it" in capsys.readouterr().err
    assert (tmp_path / "benchmarks" / "baselines" / "smoke-cpu.json").read_bytes() == first
    assert main(["baseline", "save", "run", "--force"]) == 0


# ------------------------------------------------------------------------------------------- 4. own case files


@pytest.mark.parametrize(
    "text, said",
    [
        (
            '[[case]]\nid = "x-a"\ntask = "A"\ntitle = "t"\nmodel = { name = "hw3_cnn" }\n',
            'missing top-level suite = "NAME"',
        ),
        (
            'suite = "x"\n[[case]]\nid = "x-a"\ntask = "A"\ntitle = "t"\nmodel = { name = "hw3_cnn" }\n',
            "field 'task': 'A' is not declared: the file has no [tasks] table",
        ),
        (
            'suite = "x"\nextends = "hw3"\n[[case]]\nid = "x-a"\ntask = "D"\ntitle = "t"\n'
            'model = { name = "hw3_cnn" }\n',
            "field 'task': unknown task 'D'",
        ),
        ('suite = "x"\nextends = "hw33"\n', "field 'extends': unknown suite 'hw33' (did you mean 'hw3'?)"),
    ],
)
def test_case_file_mistakes_are_named(tmp_path, capsys, text, said):
    (tmp_path / "x.toml").write_text(text)
    assert main(["list", "--cases", str(tmp_path / "x.toml")]) == 2
    assert said in capsys.readouterr().err


def test_a_case_file_without_extends_is_told_its_comparison_is_confounded(tmp_path, capsys, monkeypatch):
    cases = OWN_CASES.replace('extends = "hw3"', '[tasks]\nA = "mine"').replace("tiny_cnn", "hw3_gap_cnn")
    (tmp_path / "mine.toml").write_text(cases)
    monkeypatch.setattr("xraybench.cli.run._run_on", lambda *a: 0)  # what is said before anything trains
    assert main(["run", "--cases", str(tmp_path / "mine.toml"), "mine-a-tiny", "hw3-a-cnn", *SMOKE]) == 0
    note = capsys.readouterr().out
    assert "mine-a-tiny is compared with hw3-a-cnn of hw3.toml" in note and "train.scheduler none vs step" in note
    assert widest(note) <= 100


def test_the_worked_example_of_the_docs_runs(tmp_path, capsys, monkeypatch):
    """docs/cases.md's own-case example: its case file and model module, as a user copies them."""
    text = (Path(__file__).parents[1] / "docs" / "cases.md").read_text()
    blocks = text.split("```")
    case_file = next(b for b in blocks if b.startswith("toml") and "extends" in b).removeprefix("toml\n")
    module = next(b for b in blocks if b.startswith("python") and "register_model" in b).removeprefix("python\n")
    (tmp_path / "my_cases.toml").write_text(case_file)
    (tmp_path / "my_models.py").write_text(module)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--cases", "my_cases.toml", "--import", "my_models", "--all", *SMOKE, "--seeds", "1"]) == 0
    assert "ok" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- 5. own models


def test_an_installed_package_registers_models_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "xb_extra_models-1.0.dist-info").mkdir(parents=True)
    (site / "xb_extra_models-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: xb-extra-models\nVersion: 1.0\n"
    )
    (site / "xb_extra_models-1.0.dist-info" / "entry_points.txt").write_text(
        "[xraybench.models]\ntiny = xb_extra_models\n"
    )
    (site / "xb_extra_models.py").write_text(OWN_MODEL)
    (tmp_path / "x.toml").write_text(
        OWN_CASES.replace("mine-a-tiny", "mine-a-x").replace('compare = ["hw3-a-cnn"]', "")
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "xraybench.cli", "list", "--cases", str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "model tiny_cnn: entry point of xb-extra-models" in out.stdout


def test_import_names_what_it_could_not_find(capsys):
    assert main(["list", "--import", "no_such_models_module"]) == 2
    assert "--import no_such_models_module: no module named 'no_such_models_module'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ 6. degenerate seeds


def test_degenerate_rule():
    one_class = Metrics.model_validate({"test_confusion": {"tn": 0, "fp": 234, "fn": 0, "tp": 390}, "test_auc": 0.8})
    assert str(degeneracy(one_class)) == "predicts PNEUMONIA for 100 % of the test images"
    assert degeneracy(one_class).called == "PNEUMONIA" and degeneracy(one_class).auc is None
    normal = degeneracy(
        Metrics.model_validate({"test_confusion": {"tn": 233, "fp": 1, "fn": 388, "tp": 2}, "test_auc": 0.7})
    )
    assert normal.called == "NORMAL" and str(normal).startswith("predicts NORMAL for 100 %")  # 99.5 %
    chance = degeneracy(
        Metrics.model_validate({"test_confusion": {"tn": 100, "fp": 134, "fn": 90, "tp": 300}, "test_auc": 0.52})
    )
    assert chance.called is None and str(chance) == "test AUC 0.520 ≤ 0.55"
    assert (
        degeneracy(
            Metrics.model_validate({"test_confusion": {"tn": 200, "fp": 34, "fn": 30, "tp": 360}, "test_auc": 0.95})
        )
        is None
    )
    assert (
        degeneracy(
            Metrics.model_validate({"test_confusion": {"tn": 7, "fp": 227, "fn": 0, "tp": 390}, "test_auc": 0.9})
        )
        is None
    )  # 98.9 %


def test_a_newly_degenerate_seed_is_worse_in_check(tmp_path, capsys):
    base = _results()
    for row in base["cases"]:  # a healthy baseline: each row's own predictions say so
        row["metrics"]["test_confusion"] = {"tn": 30, "fp": 2, "fn": 2, "tp": 30}
        row["metrics"]["test_auc"] = 0.9
        row.pop("predictions", None)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "results.json").write_text(json.dumps(base))
    doc = json.loads(json.dumps(base))
    doc["cases"][0]["metrics"]["test_confusion"] = {
        "tn": 0,
        "fp": 32,
        "fn": 0,
        "tp": 32,
    }  # test_acc unchanged: only this says it
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(doc))
    baseline = {
        "kind": "xraybench-baseline",
        "schema_version": 3,
        "name": "b",
        "profile": "smoke",
        "data": base["data"],
        "cases": [
            {"id": r["id"], "seed": r["seed"], "hash": r["hash"], "status": "ok", "metrics": r["metrics"]}
            for r in base["cases"]
        ],
    }
    (tmp_path / "b.json").write_text(json.dumps(baseline))
    assert main(["check", str(tmp_path / "run"), "--baseline", str(tmp_path / "b.json"), "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)["cases"][0]
    assert verdict["status"] == "worse" and "newly degenerate: seed 0 predicts PNEUMONIA" in verdict["note"]


# ------------------------------------------------------------------------------ 7, 8, 10. the run's own output


def test_run_all_fits_a_terminal_and_summarises_skips_once(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short --out: a long path is the one line that cannot wrap
    assert main(["run", "--all", *SMOKE, "--offline"]) in (0, 1)
    printed = capsys.readouterr().out
    assert widest(printed) <= 100
    printed = printed.replace("\n    ", " ")  # the wrapped lines, whole
    assert printed.count("weight files not on disk; 'xraybench weights' lists them") == 1  # once for 20 cases
    assert (
        "skipped 1 case (published-v2-resnet18-28): they need --data pneumoniamnist@28; xraybench run "
        "'published*' --data pneumoniamnist@28" in printed
    )
    assert "trainings are degenerate" in printed  # two smoke epochs: every model still calls one class


def test_list_shows_the_hash_a_run_records(tmp_path, capsys):
    assert main(["list", "hw3-a-cnn", "--profile", "smoke"]) == 0
    listed = capsys.readouterr().out
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "smoke-cpu-synthetic" / "results.json").read_text())["cases"][0]
    assert "hash (smoke)" in listed and row["hash"] in listed


def test_runnable_lists_what_runs_here(capsys):
    assert main(["list", "--runnable"]) == 0
    listed = capsys.readouterr().out
    assert "hw3-a-cnn " in listed and "published-v2" not in listed and "can run here and now" in listed


def test_a_failed_start_leaves_no_run_directory(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an archive")
    assert main(["run", "hw3-a-cnn", *SMOKE, "--data", str(bad), "--out", str(tmp_path / "reports")]) == 2
    assert "not a readable .npz archive" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "smoke-cpu-bad").exists()


def test_set_overrides_a_setting_in_its_own_run_and_hash(tmp_path, capsys):
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), "--set", "train.epochs=1"]) == 0
    doc = json.loads((tmp_path / "smoke-cpu-synthetic-set-epochs1" / "results.json").read_text())
    row = doc["cases"][0]
    assert row["config"]["train"]["epochs"] == 1 and len(row["history"]) == 1
    assert doc["settings"]["overrides"] == ["train.epochs=1"]
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), "--set", "train.epohcs=1"]) == 2
    assert (
        "--set: field 'train.epohcs': not a data.* or train.* field (did you mean 'train.epochs'?)"
        in capsys.readouterr().err
    )


def test_set_runs_of_other_overrides_never_share_a_directory(tmp_path, capsys):
    from xraybench.cases import PROFILES
    from xraybench.data.sources import SyntheticSource
    from xraybench.runner import RunPlan

    def run_id(*overrides):
        return RunPlan(
            PROFILES["smoke"],
            __import__("torch").device("cpu"),
            SyntheticSource((8, 8, 8)),
            tmp_path,
            overrides=overrides,
        ).resolved_run_id

    ids = {run_id("train.lr=0.5"), run_id("train.weight_decay=0.5"), run_id("data.mean=0.1"), run_id("data.std=0.1")}
    assert len(ids) == 4 and run_id("train.lr=0.001") == "smoke-cpu-synthetic-set-lr0.001"
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), "--run-id", "r", "--set", "train.epochs=1"]) == 0
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), "--run-id", "r", "--set", "train.epochs=2"]) == 2
    assert "this run directory holds a run with overrides ['train.epochs=1']" in capsys.readouterr().err


def test_set_refuses_a_sweep_axis_and_resolves_the_model_s_own_size(capsys):
    from xraybench.cases import PROFILES, apply_profile, load_cases, override, select

    cases, suites = load_cases()
    with pytest.raises(Exception, match=re.escape("--set train.lr: an axis of the sweep 'hw4-s-resnet50'")):
        override(select(cases, ["hw4-s*"]), suites, ["train.lr=0.01"])
    (resnet,) = override(select(cases, ["hw4-b-resnet18"]), suites, ["data.image_size=0"])
    assert apply_profile(resnet, PROFILES["full"]).data.image_size == 224
    assert main(["run", "hw3-a-cnn", *SMOKE, "--set", "data.image_size=0"]) == 2
    assert "0 means the model's own input size, but hw3_cnn declares none" in capsys.readouterr().err


def test_extends_follows_the_chain_whatever_the_file_order(tmp_path, capsys):
    (tmp_path / "a.toml").write_text(
        'suite = "aa"\nextends = "zz"\n[[case]]\nid = "aa-x"\ntask = "A"\ntitle = "t"\nmodel = { name = "hw3_cnn" }\n'
    )
    (tmp_path / "z.toml").write_text('suite = "zz"\nextends = "hw3"\n[defaults.train]\nepochs = 3\n')
    assert main(["list", "--cases", str(tmp_path), "--wide"]) == 0
    assert "aa-x" in capsys.readouterr().out
    (tmp_path / "z.toml").write_text('suite = "zz"\nextends = "aa"\n')
    assert main(["list", "--cases", str(tmp_path)]) == 2
    assert "extend each other in a circle" in capsys.readouterr().err


def test_an_unknown_compare_id_gets_a_hint_not_every_id(tmp_path, capsys):
    (tmp_path / "x.toml").write_text(
        OWN_CASES.replace('compare = ["hw3-a-cnn"]', 'compare = ["hw3-zzz-qqq"]').replace("tiny_cnn", "hw3_cnn")
    )
    assert main(["list", "--cases", str(tmp_path / "x.toml")]) == 2
    error = capsys.readouterr().err
    assert "unknown case id 'hw3-zzz-qqq'" in error and "hw4-b-resnet18" not in error and len(error) < 300


def test_an_older_npz_baseline_without_its_md5_still_compares(tmp_path, capsys):
    data = {"name": "pneumoniamnist-28-subset", "kind": "npz", "fingerprint": "npz-pneumoniamnist-28-subset-1"}
    base, run = _results(data=data), _results(data={**data, "fingerprint": "npz-x-2", "medmnist": {"md5": "ab" * 16}})
    assert _check_against_saved(tmp_path, base, run) == 0
