"""Training you can watch: each epoch's history row written as it happens.

A CSV per case and seed (``RUN_DIR/logs/<case>/seed-<n>.csv``, the history's columns, flushed every
epoch: ``tail -f`` it, or plot it mid-run), as Lightning's CSVLogger and timm's summary.csv give; and,
with ``--tensorboard``, TensorBoard event files (``RUN_DIR/tb/<case>/seed-<n>``) with train and validation
loss and accuracy, validation AUC and the learning rate. Workers write them into the run directory, so
under Ray or Slurm it must be on a filesystem every node sees (as the data cache already must).
results.json stays the record; these files are for watching.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

LOGS, TENSORBOARD = "logs", "tb"
SCALARS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "accuracy/train": "train_acc",
    "accuracy/val": "val_acc",
    "auc/val": "val_auc",
    "lr": "lr",
}  # TensorBoard tag → history column


class TensorBoardMissing(RuntimeError):
    """--tensorboard without the tensorboard package."""


def tensorboard_writer_class():
    """torch's SummaryWriter, or TensorBoardMissing naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TensorBoardMissing(
            "--tensorboard needs the tensorboard package: pip install 'xraybench[tensorboard]'"
        ) from None
    return SummaryWriter


class EpochLog:
    """The live log of one training (a case and seed). ``start()`` (again after an out-of-memory retry)
    begins it afresh; ``write(row)`` after every epoch, the first one opening the files; ``close()`` at the end."""

    def __init__(self, run_dir: str | Path, case_id: str, seed: int, *, tensorboard: bool = False):
        name = f"seed-{seed}"
        self.csv_path = Path(run_dir) / LOGS / case_id / f"{name}.csv"
        self.tb_dir = Path(run_dir) / TENSORBOARD / case_id / name if tensorboard else None
        self._file = self._csv = self._tb = None
        self.error: str | None = None  # why the log stopped (a full disk, a run directory this node cannot write)

    def start(self) -> None:
        """Begin afresh: the next epoch's row replaces what the files hold. Nothing is created before that
        row, so a training that never reaches an epoch (skipped, failed at once) leaves no empty log."""
        self.close()

    def write(self, row: dict) -> None:
        self._guarded(lambda: self._write(row))

    def _guarded(self, action) -> None:
        """A log that cannot be written stops, and says why in ``error``; the training goes on."""
        if self.error is not None:
            return
        try:
            action()
        except OSError as exc:
            self.error = f"live log stopped: {exc.strerror or exc} ({exc.filename or self.csv_path})"
            self.close()

    def _open(self) -> None:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.csv_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (open across epochs)
        self._csv = None
        if self.tb_dir is not None:
            self.tb_dir.mkdir(parents=True, exist_ok=True)
            for old in self.tb_dir.glob("events.out.tfevents.*"):  # a re-run replaces, as the CSV does
                old.unlink()
            self._tb = tensorboard_writer_class()(log_dir=str(self.tb_dir))

    def _write(self, row: dict) -> None:
        if self._file is None:
            self._open()
        if self._csv is None:
            self._csv = csv.DictWriter(self._file, fieldnames=list(row), extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerow({k: "" if v is None else v for k, v in row.items()})
        self._file.flush()
        if self._tb is not None:
            for tag, column in SCALARS.items():
                if row.get(column) is not None:
                    self._tb.add_scalar(tag, row[column], row["epoch"])
            self._tb.flush()

    def close(self) -> None:
        file, tb, self._file, self._tb = self._file, self._tb, None, None
        with contextlib.suppress(OSError):
            if file is not None:
                file.close()
            if tb is not None:
                tb.close()
