"""Baselines: a run stored to gate later runs — made from a results file, read back and verified against its
own per-image predictions, and found where a user keeps them (the working directory, not the installed package)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from xraybench import files, results, stats
from xraybench.results import METRICS

BASELINE_KIND = "xraybench-baseline"
BASELINE_SCHEMA = 3  # 2: every seed's metrics, per-epoch times and per-image predictions; 3: a row's OOM retry
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


def make_baseline(doc: dict, name: str, tolerances: dict[str, str] | None = None) -> dict:
    """A baseline from a run: per case and seed its status, hash, checked metrics, per-epoch times and
    per-image predictions (with the run's image ids and labels, once)."""
    return {
        "kind": BASELINE_KIND,
        "schema_version": BASELINE_SCHEMA,
        "name": name,
        "created": results.now(),
        "run_id": doc.get("run_id"),
        "profile": doc.get("profile"),
        "machine_info": doc.get("machine_info"),
        "software": doc.get("software"),
        "commit_info": doc.get("commit_info"),
        "settings": doc.get("settings") or {},
        "data": {k: v for k, v in (doc.get("data") or {}).items() if k != "summary"},
        "tolerances": tolerances or {},
        "cases": [
            {
                "id": r["id"],
                "seed": r.get("seed"),
                "hash": r.get("hash"),
                "status": r["status"],
                "metrics": {k: (r.get("metrics") or {}).get(k) for k in (*METRICS, "test_confusion")},
                "epoch_times": [h["epoch_time_s"] for h in r.get("history", []) if "epoch_time_s" in h],
                **({"predictions": r["predictions"]} if r.get("predictions") else {}),
                **({"retry": r["retry"]} if r.get("retry") else {}),
                **({"warnings": r["warnings"]} if r.get("warnings") else {}),
                **({"images": r["images"]} if r.get("images") else {}),
            }
            for r in doc["cases"]
        ],
    }


def default_name(doc: dict) -> str:
    return f"{doc.get('profile')}-{(doc.get('software') or {}).get('device', 'cpu')}"


def default_path(doc: dict) -> Path:
    """The baseline ``check`` compares a run with when none is named: the working directory's, else the shipped one."""
    name = f"{default_name(doc)}.json"
    own = DEFAULT_DIR / name
    return own if own.is_file() or not (SHIPPED_DIR / name).is_file() else SHIPPED_DIR / name


def save(doc: dict, folder: Path, name: str, tolerances: dict[str, str], force: bool = False) -> Path:
    """Write ``doc`` as baseline ``name`` into ``folder``; an existing baseline is replaced only with ``force``
    (it is what every later check trusts)."""
    path = Path(folder) / f"{name}.json"
    if path.exists() and not force:
        raise CheckError(
            f"{path}: a baseline is already stored here; --force replaces it, --name or --dir stores this one beside it"
        )
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(make_baseline(doc, name, tolerances), indent=1) + "\n")
        files.publish(tmp, path)  # whole or not at all: every later check trusts this file
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise CheckError(f"{path}: cannot write the baseline ({exc.strerror or exc}); choose another --dir") from None
    return path


def read_baseline(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckError(f"{path}: no baseline file here (xraybench baseline save RUN_DIR makes one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckError(f"{path}: not a readable baseline ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != BASELINE_KIND or not isinstance(doc.get("cases"), list):
        raise CheckError(f"{path}: not an xraybench baseline (no kind {BASELINE_KIND!r} with a list of cases)")
    if doc.get("schema_version", 0) > BASELINE_SCHEMA:
        raise CheckError(f"{path}: baseline schema {doc['schema_version']} is newer than this xraybench reads")
    for i, case in enumerate(doc["cases"]):
        if (
            not isinstance(case, dict)
            or not isinstance(case.get("id"), str)
            or not isinstance(case.get("metrics"), dict)
        ):
            raise CheckError(f"{path}: cases[{i}] needs an 'id' and 'metrics'")
    verify(doc, path)
    return doc


def verify(doc: dict, path: Path) -> None:
    """Every ok row's stored metrics against what its own per-image predictions give (rows without
    predictions, schema 1, cannot be verified); a mismatch beyond rounding is a CheckError."""
    for row in doc["cases"]:
        if row.get("status") != "ok":
            continue
        for name, split, images in RECOMPUTED:
            stored, found = row["metrics"].get(name), results.predictions(doc, row, split)
            span = None if stored is None or found is None else _recomputed(images, found[1], found[2])
            if span is not None and not span[0] - 1e-6 <= stored <= span[1] + 1e-6:
                shown = f"{span[0]:.4f}" if span[0] == span[1] else f"{span[0]:.4f}–{span[1]:.4f}"
                raise CheckError(
                    f"{path}: case {row['id']} seed {row.get('seed')}: {name} {stored:.4f} is not what "
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
    value = float(((probs[keep] >= 0.5) == labels[keep]).mean())
    return value, value
