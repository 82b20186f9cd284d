"""Training you can watch: the per-epoch CSV is on disk while the case trains, one per case and seed, and
--tensorboard writes event files that TensorBoard's own reader loads with the expected tags."""

import csv
import dataclasses

import pytest
import torch
from test_engine import smoke_case, smoke_data

from xraybench.cli import main
from xraybench.train import logs, trainings
from xraybench.train.logs import EpochLog

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-report"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_csv_holds_each_epoch_while_the_case_still_trains(tmp_path, monkeypatch):
    """A callback after epoch 2 of 4 reads the file: two rows with the history's columns are already there."""
    seen = {}
    original = EpochLog.write

    def write_then_read(self, row):
        original(self, row)
        if row["epoch"] == 2:
            seen["rows"] = read_csv(self.csv_path)

    monkeypatch.setattr(EpochLog, "write", write_then_read)
    case = smoke_case("hw3-b-mlp")
    case = dataclasses.replace(case, train=dataclasses.replace(case.train, epochs=4, seed=3))
    log = EpochLog(tmp_path, case.id, case.train.seed)
    row = trainings.train_one(case, smoke_data(), torch.device("cpu"), log=log, progress=False)
    assert row.ok
    assert [r["epoch"] for r in seen["rows"]] == ["1", "2"]  # mid-run
    final = read_csv(tmp_path / "logs" / "hw3-b-mlp" / "seed-3.csv")
    assert len(final) == 4 and list(final[0]) == list(row.history[0].dump())
    assert float(final[3]["val_loss"]) == pytest.approx(row.history[3].val_loss)


def test_a_run_logs_every_case_and_seed_and_tensorboard_reads_its_events(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weight files: the ResNet-18 case is skipped

    out = tmp_path / "reports"
    assert main(["run", "hw3-a-*", "hw4-b-resnet18", *SMOKE, "--seeds", "2", "--tensorboard", "--out", str(out)]) == 0
    run_dir = out / "smoke-cpu-synthetic"
    csvs = sorted(p.relative_to(run_dir / "logs").as_posix() for p in (run_dir / "logs").rglob("*.csv"))
    assert not (run_dir / "logs" / "hw4-b-resnet18").exists()  # skipped (no weights): no empty log
    assert csvs == [
        "hw3-a-cnn-dropout/seed-0.csv",
        "hw3-a-cnn-dropout/seed-1.csv",
        "hw3-a-cnn/seed-0.csv",
        "hw3-a-cnn/seed-1.csv",
    ]
    assert all(len(read_csv(run_dir / "logs" / p)) == 2 for p in csvs)  # smoke: 2 epochs
    events = EventAccumulator(str(run_dir / "tb" / "hw3-a-cnn" / "seed-1"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(logs.SCALARS)
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2]


def test_tensorboard_missing_is_one_line_before_anything_trains(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert main(["run", "hw3-a-cnn", *SMOKE, "--tensorboard", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'xraybench[tensorboard]'" in err
    assert not (tmp_path / "smoke-cpu-synthetic").exists()


def test_a_log_that_cannot_be_written_stops_and_the_training_goes_on(tmp_path):
    blocked = tmp_path / "run"
    blocked.write_text("a file where the run directory should be")  # mkdir under it fails
    case = smoke_case("hw3-b-mlp")
    row = trainings.train_one(
        case, smoke_data(), torch.device("cpu"), log=EpochLog(blocked, case.id, 0), progress=False
    )
    assert row.ok and row.log_error.startswith("live log stopped:")
