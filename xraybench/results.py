"""results.json: the one file a run produces and the report and the check read.

An envelope like pytest-benchmark's (schema version, datetime, machine, software, commit)
holding the run's profile, device, data and one flat row per case and seed, each with a
status of ok, failed or skipped. Every write is atomic: a temporary file, fsync, rename.

Per-image predictions (schema 2): the run's ``data.images`` holds, for the validation and
test splits, each image's stable id and label once; every ok row holds ``predictions``, its
P(pneumonia) per image in that order. Schema 1 files have neither and still read.

Reading it: ``by_case`` groups the rows into a ``CaseResult`` per case id (its seeds); ``METRICS``
says what each checked metric means — its direction, unit and default tolerance — for the
check and for the tolerances a case file declares.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xraybench import files

if TYPE_CHECKING:
    from xraybench import stats

SCHEMA_VERSION = 2  # 2: per-image predictions, test-metric intervals, seed-free config hash
STATUSES = ("ok", "failed", "skipped")
FILENAME = "results.json"
PROBABILITY_DIGITS = 4  # per-image probabilities are stored rounded to 1e-4
PREDICTED_SPLITS = ("val", "test")


class ResultsError(ValueError):
    """results.json is missing, unreadable, or of a schema this version cannot read."""


def config_hash(config: dict) -> str:
    """A stable short hash of a resolved configuration without its seed (canonical JSON, sorted keys):
    every seed of a case shares it; rows are matched by id and seed."""
    return legacy_config_hash({**config, "train": {k: v for k, v in config.get("train", {}).items() if k != "seed"}})


def legacy_config_hash(config: dict) -> str:
    """The hash of schema 1, the seed included."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_envelope(
    *, run_id: str, profile: str, machine: dict, software: dict, commit: dict, settings: dict | None = None
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "datetime": now(),
        "updated": now(),
        "profile": profile,
        "machine_info": machine,
        "software": software,
        "commit_info": commit,
        "settings": settings or {},
        "suites": {},
        "data": None,
        "cases": [],
    }


def settings(doc: dict) -> dict:
    """How a run (or a baseline) trained: precision, deterministic, random_init, the --set overrides. Files written
    before these were recorded trained in fp32 on a CPU and in bf16 autocast on a GPU (software.autocast), not
    deterministically, from pretrained weights, as declared."""
    recorded = doc.get("settings") or {}
    precision = (recorded.get("precision") or {}).get("name") or (doc.get("software") or {}).get("autocast") or "fp32"
    return {
        "precision": precision,
        "deterministic": bool(recorded.get("deterministic", False)),
        "random_init": bool(recorded.get("random_init", False)),
        "overrides": sorted(recorded.get("overrides", [])),
    }


def write(path: Path, doc: dict) -> None:
    """Replace ``path`` atomically: readers see the old file or the new one, never a mix."""
    path = Path(path)
    doc["updated"] = now()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        files.publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict:
    """Read and validate a results file (or the results.json of a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no results file here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable results file ({exc})") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if not isinstance(version, int):
        raise ResultsError(f"{path}: no schema_version; not an xraybench results file")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema version {version} is newer than this xraybench reads ({SCHEMA_VERSION}); upgrade xraybench"
        )
    if not isinstance(doc.get("cases"), list):
        raise ResultsError(f"{path}: field 'cases' must be a list")
    for i, row in enumerate(doc["cases"]):
        if not isinstance(row, dict) or row.get("status") not in STATUSES or not isinstance(row.get("id"), str):
            raise ResultsError(f"{path}: cases[{i}] needs an 'id' and a 'status' of {', '.join(STATUSES)}")
    return doc


def find(doc: dict, case_id: str, seed: int) -> dict | None:
    return next((r for r in doc["cases"] if r["id"] == case_id and r.get("seed") == seed), None)


def upsert(doc: dict, row: dict) -> None:
    """Put ``row`` in place of the row with the same id and seed, or append it."""
    rows = doc["cases"]
    for i, old in enumerate(rows):
        if old["id"] == row["id"] and old.get("seed") == row.get("seed"):
            rows[i] = row
            return
    rows.append(row)


def stored_probability(p: float) -> float:
    """P(pneumonia) rounded to 1e-4, never across the 0.5 threshold (0.49996 stays below it), so that
    labels recomputed from stored predictions equal the ones the metrics were computed from."""
    rounded = round(float(p), PROBABILITY_DIGITS)
    if p < 0.5 <= rounded:
        return 0.5 - 10**-PROBABILITY_DIGITS
    return rounded


def image_table(data) -> dict:
    """Ids and labels of the predicted splits of a Dataset, as results.json stores them."""
    return {
        split: {"ids": list(data.splits[split].ids), "labels": data.splits[split].labels.tolist()}
        for split in PREDICTED_SPLITS
    }


def predictions(doc: dict, row: dict, split: str = "test") -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(image ids, labels, P(pneumonia)) of an ok row on ``split``; None for rows without them (schema 1)."""
    probs = (row.get("predictions") or {}).get(split)
    images = (row.get("images") or (doc.get("data") or {}).get("images") or {}).get(split)
    if probs is None or images is None or len(images["ids"]) != len(probs):
        return None
    return list(images["ids"]), np.asarray(images["labels"], dtype=int), np.asarray(probs, dtype=float)


DEGENERATE_SHARE = 0.99  # a seed predicting one class for at least this share of the test images
DEGENERATE_AUC = 0.55  # or ranking the test images no better than this


@dataclass(frozen=True)
class Degenerate:
    """Why a seed's model is no better than predicting one class for every image, however its accuracy reads (the
    majority class alone scores 62.5 % on the 624-image test set)."""

    called: str | None  # the class it predicts for ≥ 99 % of the test images, or None
    share: float  # the share of test images it predicts as that class (or as its majority prediction)
    auc: float | None  # its test AUC where ≤ 0.55, else None

    def __str__(self) -> str:
        said = [f"predicts {self.called} for {100 * self.share:.0f} % of the test images"] if self.called else []
        return "; ".join(said + ([f"test AUC {self.auc:.3f} ≤ {DEGENERATE_AUC}"] if self.auc is not None else []))


def degeneracy(metrics: dict) -> Degenerate | None:
    """A seed's degeneracy from its test confusion matrix and AUC; None for a model that is not degenerate."""
    confusion, auc = metrics.get("test_confusion") or {}, metrics.get("test_auc")
    n = sum(confusion.values())
    pneumonia = (confusion.get("tp", 0) + confusion.get("fp", 0)) / n if n else 0.5
    share, label = max((pneumonia, "PNEUMONIA"), (1 - pneumonia, "NORMAL"))
    called = label if n and share >= DEGENERATE_SHARE else None
    low = auc if auc is not None and auc <= DEGENERATE_AUC else None
    return Degenerate(called, share, low) if called or low is not None else None


def row_degeneracy(doc: dict, row: dict) -> Degenerate | None:
    """``degeneracy`` of an ok row of a results file or baseline; rows stored without their confusion matrix (older
    baselines) have it recounted from their stored test predictions."""
    metrics = row.get("metrics") or {}
    found = None if metrics.get("test_confusion") else predictions(doc, row)
    if found:
        labels, said = found[1], found[2] >= 0.5
        metrics = {
            **metrics,
            "test_confusion": {
                "tp": int((said & (labels == 1)).sum()),
                "fp": int((said & (labels == 0)).sum()),
                "tn": int((~said & (labels == 0)).sum()),
                "fn": int((~said & (labels == 1)).sum()),
            },
        }
    return degeneracy(metrics)


# ------------------------------------------------------------------------- cases over seeds


@dataclass
class CaseResult:
    """Every row of one case id (one per seed) and the results file or baseline they belong to."""

    id: str
    rows: list[dict]
    doc: dict = field(repr=False)
    _scores: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def first(self) -> dict:
        return self.rows[0]

    @property
    def seeds(self) -> int:
        return len(self.ok)

    def values(self, metric: str) -> list[float]:
        return [r["metrics"][metric] for r in self.ok if r["metrics"].get(metric) is not None]

    def summary(self, metric: str) -> stats.SeedSummary | None:
        from xraybench import stats  # here, not above: loading case files (config_hash) needs no scipy

        return stats.across_seeds(self.values(metric))

    def mean_interval(self, metric: str) -> list[float] | None:
        """95% interval of the mean test accuracy or AUC over seeds, counting the seeds' spread and the sampling
        of the test images (Wilson or DeLong with one seed); per-seed AUC intervals as stored, or from the
        stored predictions (baselines keep no intervals)."""
        from xraybench import stats

        values = self.values(metric)
        if not values:
            return None
        if metric == "test_acc":
            images = ((self.doc.get("data") or {}).get("splits") or {}).get("test", {}).get("images")
            scores = None if images else self.scores()
            return stats.accuracy_interval(values, images or (len(scores.labels) if scores else 0))
        if metric != "test_auc":
            raise ValueError(f"mean_interval: test_acc or test_auc, not {metric!r}")
        per_seed = [((r["metrics"].get("test_intervals") or {}).get("auc")) for r in self.ok]
        if any(bounds is None for bounds in per_seed):
            scores = self.scores()
            if scores is None:
                return None
            per_seed = [stats.delong_interval(scores.labels, p) for p in scores.probs]
        return stats.auc_interval(values, per_seed)

    def epoch_medians(self) -> list[float]:
        """One time per ok seed: the median of its epoch times, the first epoch left out (it carries one-time
        costs). Epochs of one seed share its process and machine state: they are no independent samples."""
        per_seed = [
            r.get("epoch_times") or [h["epoch_time_s"] for h in r.get("history", []) if "epoch_time_s" in h]
            for r in self.ok
        ]
        return [float(np.median(t[1:] if len(t) > 1 else t)) for t in per_seed if t]

    def scores(self, split: str = "test") -> stats.SeedScores | None:
        """Every ok seed's P(pneumonia) on ``split``, when each stored them on the same images; decoded once
        per case and split (the report and history ask for them from several places)."""
        if split not in self._scores:
            self._scores[split] = self._decode(split)
        return self._scores[split]

    def _decode(self, split: str) -> stats.SeedScores | None:
        from xraybench import stats

        found = [predictions(self.doc, r, split) for r in self.ok]
        if not found or any(f is None for f in found) or any(f[0] != found[0][0] for f in found):
            return None
        return stats.SeedScores(
            [r.get("seed") for r in self.ok], found[0][0], found[0][1], np.stack([f[2] for f in found])
        )


def by_case(doc: dict, rows: list[dict] | None = None) -> dict[str, CaseResult]:
    """The rows grouped by case id, in order of first appearance."""
    grouped: dict[str, list[dict]] = {}
    for row in doc["cases"] if rows is None else rows:
        grouped.setdefault(row["id"], []).append(row)
    return {case_id: CaseResult(case_id, members, doc) for case_id, members in grouped.items()}


# ------------------------------------------------------------------------------ the metrics


class ToleranceError(ValueError):
    """A tolerance string that does not parse or does not fit its metric."""


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    unit: str  # "pp": absolute percentage points of a 0–1 value; "%": relative change
    tolerance: float  # default allowed worsening, in ``unit``
    test: str = "seeds"  # "seeds": Mann–Whitney or a paired test; "times": per-epoch times; "none"


METRICS = {
    m.name: m
    for m in [
        Metric("test_acc", True, "pp", 2.0),
        Metric("test_auc", True, "pp", 2.0),
        Metric("test_sensitivity", True, "pp", 3.0),
        Metric("test_specificity", True, "pp", 3.0),
        Metric("best_val_acc", True, "pp", 2.0),
        Metric("test_loss", False, "%", 10.0),
        Metric("wall_time_s", False, "%", 25.0, "times"),
        Metric("s_per_epoch", False, "%", 25.0, "times"),
        Metric("peak_memory_mb", False, "%", 20.0, "none"),
    ]
}
ALIASES = {"wall_time": "wall_time_s", "peak_memory": "peak_memory_mb", "acc": "test_acc", "auc": "test_auc"}


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may worsen: parsed from strings like ``test_acc:-2pp`` or ``wall_time:+25%``."""

    metric: str
    amount: float
    unit: str

    @classmethod
    def parse(cls, spec: str) -> Tolerance:
        match = re.fullmatch(r"\s*([a-z_]+)\s*:\s*([+-]?)(\d+(?:\.\d+)?)\s*(pp|%)\s*", spec)
        if not match:
            raise ToleranceError(
                f"tolerance {spec!r}: expected METRIC:AMOUNT with pp or %, e.g. test_acc:-2pp or wall_time:+25%"
            )
        name, sign, amount, unit = match.groups()
        name = ALIASES.get(name, name)
        if name not in METRICS:
            raise ToleranceError(f"tolerance {spec!r}: unknown metric {name!r}; known: {', '.join(METRICS)}")
        metric = METRICS[name]
        if unit != metric.unit:
            raise ToleranceError(f"tolerance {spec!r}: {name} takes {metric.unit}, not {unit}")
        if sign and (sign == "-") != metric.higher_is_better:
            raise ToleranceError(
                f"tolerance {spec!r}: {name} is {'higher' if metric.higher_is_better else 'lower'} "
                f"is better, so its allowed worsening is {'-' if metric.higher_is_better else '+'}"
                f"{amount}{unit}"
            )
        return cls(name, float(amount), unit)
