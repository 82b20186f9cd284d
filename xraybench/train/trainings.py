"""A case's trainings, each into its results row: ``train_one`` (one seed) and ``train_together`` (several seeds
of one case in one pass, train/seed_batch.py). A case's own failure is a row, never an exception; out of CUDA
memory, a training is tried once more, smaller (``_with_oom_retry``)."""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from xraybench import environment, results
from xraybench.data.sources import Dataset
from xraybench.models.info import model_info
from xraybench.models.weights import WeightsMissing
from xraybench.results import Epoch, Metrics, ModelInfo, Row
from xraybench.train import memory
from xraybench.train.engine import train_case
from xraybench.train.logs import EpochLog
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import FP32, Precision
from xraybench.train.seed_batch import train_seeds

if TYPE_CHECKING:
    from xraybench.cases import Case


def train_one(
    case: Case,
    data: Dataset,
    device: torch.device,
    *,
    precision: Precision = FP32,
    eval_batch_size: int = 256,
    progress: bool = True,
    log: EpochLog | None = None,
) -> Row:
    """Train and test one case (one seed); a failure is a row, not an exception. ``log`` receives every
    epoch's row as it happens (the live CSV and TensorBoard files)."""
    row = results.case_row(case)
    row.model_info = _costs(case, device, precision)
    bar = _progress_bar(case, len(data.splits["train"]), case.train.batch_size, progress)

    def record_op(op: str) -> None:
        row.nondeterministic_ops = sorted({*row.nondeterministic_ops, op})

    def attempt(case: Case) -> dict:
        if log is not None:
            log.start()  # afresh: an out-of-memory retry starts its epochs over
        with environment.keep_freed_memory(), environment.nondeterministic_ops(record_op):
            return train_case(
                case,
                data,
                device,
                eval_batch_size=eval_batch_size,
                precision=precision,
                on_batch=lambda: bar.update(1),
                on_epoch=lambda epoch_row: _epoch_done(epoch_row, case, bar, log),
            )

    def retry_smaller(case: Case) -> dict:
        """The training ran out of memory: its batch halves (evaluation's halves in the engine, where it runs out)."""
        half = max(1, case.train.batch_size // 2)
        row.retry = f"CUDA out of memory at batch size {case.train.batch_size}; retried with {half}"
        bar.reset(total=case.train.epochs * -(-len(data.splits["train"]) // half))
        case = dataclasses.replace(case, train=dataclasses.replace(case.train, batch_size=half))
        row.config = case.config()
        return attempt(case)

    try:
        _record(row, _with_oom_retry(lambda: attempt(case), lambda: retry_smaller(case)))
    except (KeyboardInterrupt, SystemExit):
        raise
    except WeightsMissing as exc:  # never train a "pretrained" case from random weights
        row.status, row.reason, row.needs = "skipped", str(exc), "weights"
    except Exception as exc:  # a failing case is a result, not the end of the suite
        _failed(row, exc)
    finally:
        bar.close()
        _close(log, row)
    row.finished = results.now()
    return row


def train_together(
    cases: tuple[Case, ...],
    data: Dataset,
    device: torch.device,
    *,
    precision: Precision = FP32,
    eval_batch_size: int = 256,
    progress: bool = True,
    logs: list[EpochLog | None],
) -> list[Row]:
    """Train the seeds of one case in one pass (``seed_batch.train_seeds``) and return a row per seed, each as
    ``train_one`` would make it. Out of memory with all of them at once, they train one at a time."""
    rows = [results.case_row(case) for case in cases]
    costs = _costs(cases[0], device, precision)  # the same architecture for every seed
    for row in rows:
        row.model_info = costs
    bar = _progress_bar(cases[0], len(data.splits["train"]), cases[0].train.batch_size, progress)

    def record_op(op: str) -> None:
        for row in rows:
            row.nondeterministic_ops = sorted({*row.nondeterministic_ops, op})

    def attempt() -> list[Row]:
        for log in logs:
            if log is not None:
                log.start()
        with environment.keep_freed_memory(), environment.nondeterministic_ops(record_op):
            outcomes = train_seeds(
                list(cases),
                data,
                device,
                eval_batch_size=eval_batch_size,
                precision=precision,
                on_batch=lambda: bar.update(1),
                on_epoch=lambda k, epoch_row: _epoch_done(epoch_row, cases[k], bar, logs[k]),
            )
        for row, outcome in zip(rows, outcomes):
            if isinstance(outcome, Exception):  # this seed's Diverged: the others are unharmed
                _failed(row, outcome)
            else:
                _record(row, outcome)
            row.finished = results.now()
        return rows

    def one_at_a_time() -> list[Row]:
        bar.close()
        alone = [train_one(c, data, device, precision=precision, eval_batch_size=eval_batch_size,
                           progress=progress, log=log) for c, log in zip(cases, logs)]  # fmt: skip
        for row in alone:
            row.retry = f"CUDA out of memory with {len(cases)} seeds in one pass; trained one at a time"
        return alone

    try:
        return _with_oom_retry(attempt, one_at_a_time)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        for row in rows:
            _failed(row, exc)
            row.finished = results.now()
        return rows
    finally:
        bar.close()
        for log, row in zip(logs, rows):
            _close(log, row)


def _costs(case: Case, device: torch.device, precision: Precision) -> ModelInfo:
    """The architecture's costs (models/info.py); costs are extra information: an error there is recorded and
    the case still runs."""
    try:
        costs = model_info(
            case, device, num_outputs=OBJECTIVES[case.train.loss].num_outputs, autocast_dtype=precision.autocast_dtype
        )
    except Exception as exc:
        costs = {"error": f"{type(exc).__name__}: {exc}"}
    return ModelInfo.model_validate(costs)


def _progress_bar(case: Case, train_images: int, batch_size: int, progress: bool) -> tqdm:
    return tqdm(
        total=case.train.epochs * -(-train_images // batch_size),
        desc=case.id,
        unit="step",
        leave=False,
        dynamic_ncols=True,
        disable=None if progress else True,
        file=sys.stderr,
    )


def _epoch_done(epoch_row: dict, case: Case, bar: tqdm, log: EpochLog | None) -> None:
    if log is not None:
        log.write(epoch_row)
    bar.set_postfix_str(
        f"ep {epoch_row['epoch']}/{case.train.epochs} loss {epoch_row['train_loss']:.3f} "
        f"acc {epoch_row['train_acc']:.3f} val {epoch_row['val_acc']:.3f}"
    )


def _record(row: Row, outcome: dict) -> None:
    """A finished training's history, metrics and predictions, into its row."""
    row.history = [Epoch.model_validate(epoch) for epoch in outcome["history"]]
    row.metrics = Metrics.model_validate(outcome["metrics"])
    row.predictions = {
        split: [results.stored_probability(p) for p in probs] for split, probs in outcome["predictions"].items()
    }
    degenerate = results.degeneracy(row.metrics)
    if degenerate:  # a model no better than one class for every image: said wherever the row is read
        row.warnings = [f"degenerate: {degenerate}"]


def _failed(row: Row, exc: BaseException) -> None:
    row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}"
    row.traceback = "".join(traceback.format_exception(exc, limit=-4))


def _close(log: EpochLog | None, row: Row) -> None:
    if log is not None:
        log.close()
        if log.error:
            row.log_error = log.error


def _with_oom_retry(first, retry):
    """``first()``; if it runs out of CUDA memory (``memory.is_out_of_memory``), ``retry()`` once (with half the
    batch, or one seed at a time). Evaluation's out-of-memory errors do not come here: the engine halves its batch
    and goes on.

    The retry runs after the ``except`` block, not in it: while an exception is being handled,
    its traceback keeps the first attempt's frames alive — model, optimizer state, data and
    activations — and the retry would run out of memory again beside them.
    """
    try:
        return first()
    except Exception as exc:
        if not memory.is_out_of_memory(exc):
            raise
    memory.release()  # frames of the first attempt may sit in reference cycles, their blocks in the cache
    return retry()
