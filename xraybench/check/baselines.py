"""Baselines: a run stored to gate later runs — made from a results file, read back and verified against its
own per-image predictions, and found where a user keeps them (the working directory, not the installed package)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xraybench import files, results, stats
from xraybench.results import BASELINE_KIND, BASELINE_SCHEMA, METRICS, Baseline, Row, Run

# Recomputed from a row's own predictions when a baseline is read: (metric, split, which images).
RECOMPUTED = [
    ("test_acc", "test", "all"),
    ("test_sensitivity", "test", "pneumonia"),
    ("test_specificity", "test", "normal"),
    ("best_val_acc", "val", "all"),
    ("test_auc", "test", "auc"),
]


# Where baselines live: ``benchmarks/baselines`` of the working directory (what ``baseline save`` writes), else
# the ones shipped beside the package's source (read only: a save never writes into an installed package).
DEFAULT_DIR = Path("benchmarks") / "baselines"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "baselines"


class CheckError(ValueError):
    """The comparison cannot be made (unreadable baseline, bad tolerance, nothing in common)."""


# ----------------------------------------------------------------------------- baselines


def make_baseline(run: Run | dict, name: str, tolerances: dict[str, str] | None = None) -> Baseline:
    """A baseline from a run: per case and seed its status, hash, checked metrics, per-epoch times and
    per-image predictions (with the run's image ids and labels, once)."""
    run = results.coerce(run)
    data = run.data.model_copy(update={"summary": None}) if run.data else None
    if data is not None:
        data.model_fields_set.discard("summary")
    return Baseline(
        kind=BASELINE_KIND,
        schema_version=BASELINE_SCHEMA,
        name=name,
        created=results.now(),
        run_id=run.run_id,
        profile=run.profile,
        machine_info=run.machine_info,
        software=run.software,
        commit_info=run.commit_info,
        settings=run.settings,
        data=data,
        tolerances=tolerances or {},
        cases=[_baseline_row(r) for r in run.cases],
    )


def _baseline_row(row: Row) -> Row:
    kept = {k: row.metrics.value(k) for k in METRICS}
    return Row(
        id=row.id,
        seed=row.seed,
        hash=row.hash,
        status=row.status,
        metrics=results.Metrics(**kept, test_confusion=row.metrics.test_confusion),
        epoch_times=row.epoch_seconds,
        **{k: getattr(row, k) for k in ("predictions", "retry", "warnings", "images") if getattr(row, k)},
    )


def default_name(run: Run) -> str:
    return f"{run.profile}-{run.software.get('device', 'cpu')}"


def default_path(run: Run) -> Path:
    """The baseline ``check`` compares a run with when none is named: the working directory's, else the shipped one."""
    name = f"{default_name(run)}.json"
    own = DEFAULT_DIR / name
    return own if own.is_file() or not (SHIPPED_DIR / name).is_file() else SHIPPED_DIR / name


def save(run: Run, folder: Path, name: str, tolerances: dict[str, str], force: bool = False) -> Path:
    """Write ``run`` as baseline ``name`` into ``folder``; an existing baseline is replaced only with ``force``
    (it is what every later check trusts)."""
    path = Path(folder) / f"{name}.json"
    if path.exists() and not force:
        raise CheckError(
            f"{path}: a baseline is already stored here; --force replaces it, --name or --dir stores this one beside it"
        )
    try:  # whole or not at all: every later check trusts this file
        files.write_text(path, json.dumps(make_baseline(run, name, tolerances).dump(), indent=1) + "\n")
    except OSError as exc:
        raise CheckError(f"{path}: cannot write the baseline ({exc.strerror or exc}); choose another --dir") from None
    return path


def read_baseline(path: Path) -> Baseline:
    """A stored baseline, read and verified against its own per-image predictions."""
    try:
        baseline = results.read(path, kind="baseline")
    except results.ResultsError as exc:
        raise CheckError(str(exc)) from None
    verify(baseline, path)
    return baseline


def verify(baseline: Baseline, path: Path) -> None:
    """Every ok row's stored metrics against what its own per-image predictions give (rows without
    predictions, schema 1, cannot be verified); a mismatch beyond rounding is a CheckError."""
    for row in baseline.cases:
        if not row.ok:
            continue
        for name, split, images in RECOMPUTED:
            stored, found = row.metrics.value(name), results.predictions(baseline, row, split)
            span = None if stored is None or found is None else _recomputed(images, found[1], found[2])
            if span is not None and not span[0] - 1e-6 <= stored <= span[1] + 1e-6:
                shown = f"{span[0]:.4f}" if span[0] == span[1] else f"{span[0]:.4f}–{span[1]:.4f}"
                raise CheckError(
                    f"{path}: case {row.id} seed {row.seed}: {name} {stored:.4f} is not what "
                    f"its own per-image predictions give ({shown}): baseline edited or corrupted; "
                    f"store it again with xraybench baseline save"
                )


def _recomputed(images: str, labels: np.ndarray, probs: np.ndarray) -> tuple[float, float] | None:
    """(low, high) of a metric consistent with the stored predictions. Stored probabilities are rounded to
    1e-4 without crossing 0.5, so proportions at 0.5 are exact; rounding keeps the order of the scores but
    may tie them, so the AUC lies within half the share of tied pneumonia–normal pairs of its value."""
    if images == "auc":
        if not 0 < labels.sum() < len(labels):
            return None
        auc = stats.delong.auc_with_variance(labels, probs).auc
        values, inverse = np.unique(probs, return_inverse=True)
        pos, neg = (np.bincount(inverse[labels == k], minlength=len(values)) for k in (1, 0))
        tied = float((pos * neg).sum()) / (pos.sum() * neg.sum())
        return auc - tied / 2, auc + tied / 2
    keep = {"pneumonia": labels == 1, "normal": labels == 0}.get(images, np.ones(len(labels), bool))
    if not keep.any():
        return None
    value = stats.accuracy(labels[keep], probs[keep])
    return value, value
