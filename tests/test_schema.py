"""The typed schema of case files, results.json and baselines: every committed file reads and writes back unchanged,
the shipped JSON Schemas are the ones the models give and validate every committed file, readers use attributes,
and a run exports to CSV and to a DataFrame with one record per case and seed."""

import csv
import io
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from xraybench import results
from xraybench.cases.schema import case_file_schema
from xraybench.cli import main
from xraybench.results import table

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CASE_FILES = sorted((ROOT / "benchmarks" / "cases").glob("*.toml"))
RUNS = sorted(FIXTURES.glob("results-*.json"))
BASELINES = [FIXTURES / "baseline-schema1-smoke.json", *sorted((ROOT / "benchmarks" / "baselines").glob("*.json"))]
SHIPPED = {
    "case": case_file_schema,
    "results": lambda: results.json_schema("results"),
    "baseline": lambda: results.json_schema("baseline"),
}


@pytest.mark.parametrize("path", RUNS + BASELINES, ids=lambda p: p.name)
def test_every_committed_file_reads_and_writes_back_unchanged(path, tmp_path):
    """The models keep every field (known or not) and add none: the file written from them holds what was read,
    brought to today's schema by upgrade() alone."""
    run = results.read(path)
    assert isinstance(run, results.Baseline) == ("baseline" in path.name or path.parent.name == "baselines")
    original = json.loads(path.read_text())
    assert run.dump() == results.upgrade(original)
    copy = tmp_path / "results.json"
    results.write(copy, run)
    again = results.read(copy).dump()
    assert {k: v for k, v in again.items() if k != "updated"} == {
        k: v for k, v in results.upgrade(original).items() if k != "updated"
    }


def test_a_wrong_field_is_one_line_naming_file_and_field(tmp_path):
    doc = json.loads((FIXTURES / "results-hw3-smoke.json").read_text())
    doc["cases"][2]["metrics"]["test_acc"] = "high"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(results.ResultsError) as raised:
        results.read(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message
    assert "cases[2].metrics.test_acc" in message and "'high'" in message


def test_a_baseline_is_refused_where_a_run_is_expected_and_back():
    with pytest.raises(results.ResultsError, match="a stored baseline, not a run"):
        results.read(BASELINES[0], kind="run")
    with pytest.raises(results.ResultsError, match="not an xraybench baseline"):
        results.read(RUNS[0], kind="baseline")


@pytest.mark.parametrize("kind", SHIPPED)
def test_the_shipped_schemas_are_the_models_own(kind):
    """docs/schemas/ and the package's copy are what the models give today; after a change to a model:
    xraybench schema KIND > docs/schemas/KIND.schema.json (and the same into xraybench/schemas/)."""
    generated = SHIPPED[kind]()
    jsonschema.Draft202012Validator.check_schema(generated)
    for folder in (ROOT / "docs" / "schemas", ROOT / "xraybench" / "schemas"):
        assert json.loads((folder / f"{kind}.schema.json").read_text()) == generated, folder


def test_schema_prints_what_validates_every_committed_case_file(capsys):
    assert main(["schema", "case"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    for path in CASE_FILES:
        errors = [
            f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(tomllib.loads(path.read_text()))
        ]
        assert not errors, (path, errors)
    mutated = tomllib.loads(CASE_FILES[0].read_text())
    mutated["case"][0]["train"] = {"lrr": 0.1, "optimizer": "adamm"}
    found = {e.message for e in validator.iter_errors(mutated)}
    assert any("'lrr' was unexpected" in m for m in found) and any("'adamm' is not one of" in m for m in found)


def test_the_results_schema_validates_every_committed_run_and_baseline(capsys):
    assert main(["schema", "results"]) == 0
    runs = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    baselines = jsonschema.Draft202012Validator(results.json_schema("baseline"))
    for path in RUNS:
        assert not list(runs.iter_errors(results.upgrade(json.loads(path.read_text())))), path
    for path in BASELINES:
        assert not list(baselines.iter_errors(results.upgrade(json.loads(path.read_text())))), path


def test_schema_refuses_an_unknown_kind(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["schema", "cases"])
    assert raised.value.code == 2 and "invalid choice: 'cases'" in capsys.readouterr().err


def test_export_writes_one_record_per_case_and_seed(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text((FIXTURES / "results-hw3-sweep-smoke.json").read_text())
    out = tmp_path / "out" / "runs.csv"
    assert main(["export", str(run_dir), "--csv", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    read = list(csv.DictReader(io.StringIO(out.read_text())))
    run = results.read(run_dir)
    assert len(read) == len(run.cases) and [(r["id"], int(r["seed"])) for r in read] == [
        (r.id, r.seed) for r in run.cases
    ]
    for record, row in zip(read, run.cases):
        assert float(record["test_acc"]) == row.metrics.test_acc
        assert float(record["train.lr"]) == row.config["train"]["lr"]
        assert record["model.name"] == row.model_name
    assert {"test_auc", "wall_time_s", "data.image_size", "train.batch_size", "status"} <= set(read[0])


def test_to_frame_holds_the_same_records():
    import pandas  # an extra (xraybench[pandas]); the test dependencies install it

    run = results.read(RUNS[0])
    frame = run.to_frame()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(run.cases)
    measured = [r.metrics.test_acc for r in run.cases]
    assert None in measured  # a failed row: an empty cell, not a number
    assert [None if pandas.isna(v) else v for v in frame["test_acc"]] == measured
    assert list(frame.columns) == list(table.records(run)[0])


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nowhere" in err and not (tmp_path / "x.csv").exists()


def test_no_reader_uses_a_row_as_a_dict():
    """Rows are read by attribute: the migration shim is gone, and no module chains .get( on a row."""
    assert not hasattr(results.Row, "__getitem__") and not hasattr(results.Row, "get")
    chained = re.compile(r"""\.get\("(metrics|history|config|predictions|status|seed|id)".*\)\.get\(""")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "xraybench").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if chained.search(line)
    ]
    assert not found, found


def test_each_vocabulary_is_implemented_as_named():
    """The names a case file may use are the names of what implements them: the report's views, the loader's
    augmentations."""
    from xraybench.data.augmentations import AUGMENTATIONS
    from xraybench.data.batches import AUGMENT
    from xraybench.report.views import VIEWS

    assert list(VIEWS) == list(results.VIEWS)
    assert list(AUGMENT) == list(AUGMENTATIONS)
