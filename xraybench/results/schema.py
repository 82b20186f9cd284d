"""The shape of results.json and of a stored baseline, declared once: read into these models, written from them, and
published as JSON Schema (``xraybench schema results``). Files of older schema versions are brought to today's shape
by ``upgrade`` alone, so that no reader carries a fall-back of its own.

Fields a version of xraybench does not know are kept (``extra="allow"``): a newer file's additions survive a read
and a write by an older minor version. Values are checked strictly (a number is a number, not a string of one).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from xraybench.results.machine import Commit, Software

SCHEMA_VERSION = 3  # results.json
BASELINE_SCHEMA = 4  # a stored baseline
BASELINE_KIND = "xraybench-baseline"
STATUSES = ("ok", "failed", "skipped")


class Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)

    def dump(self) -> dict:
        """What the file holds: the fields that were read or set, in declaration order, unknown ones after."""
        return self.model_dump(mode="python", exclude_unset=True, by_alias=True)


class Confusion(Record):
    tn: int = 0
    fp: int = 0
    fn: int = 0
    tp: int = 0


class Metrics(Record):
    """A seed's measurements: the test metrics at the decision threshold, training and validation, cost."""

    test_acc: float | None = None
    test_auc: float | None = None
    test_sensitivity: float | None = None
    test_specificity: float | None = None
    test_f1: float | None = None
    test_confusion: Confusion | None = None
    test_loss: float | None = None
    test_intervals: dict[str, list[float]] | None = None  # metric (acc, auc, ...) → its 95% interval on this seed
    train_loss: float | None = None
    train_acc: float | None = None
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_val_loss: float | None = None
    min_val_loss: float | None = None
    epochs_run: int | None = None
    wall_time_s: float | None = None
    s_per_epoch: float | None = None
    train_images_per_s: float | None = None
    feature_pass_s: float | None = None
    params: int | None = None
    trainable_params: int | None = None
    peak_memory_mb: float | None = None
    peak_memory_kind: str | None = None
    peak_reserved_mb: float | None = None  # CUDA: the caching allocator's peak (tensors + cache), what runs out
    memory_at_start_mb: float | None = None
    eval_batch_halved_to: int | None = None  # evaluation's forward batch after out-of-memory halvings (same results)
    seeds_batched: list[int] | None = None  # the seeds of the one pass this one trained in (train/seed_batch.py)
    precision: str | None = None

    @property
    def test_val_gap(self) -> float | None:
        """Test accuracy minus the best validation accuracy: how far the validation split's estimate missed."""
        if self.test_acc is None or self.best_val_acc is None:
            return None
        return self.test_acc - self.best_val_acc

    def value(self, name: str) -> float | None:
        """A metric by its catalogue name (``METRICS``), None where this seed did not measure it."""
        found = getattr(self, name, None)
        return found if isinstance(found, int | float) and not isinstance(found, bool) else None


class Epoch(Record):
    epoch: int
    train_loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    val_auc: float | None = None
    lr: float | None = None
    train_time_s: float | None = None
    epoch_time_s: float | None = None


class SplitImages(Record):
    """The images of a predicted split, in the order every row's predictions follow."""

    ids: list[str]
    labels: list[int]


class ModelInfo(Record):
    params: int | None = None
    flops: int | None = None
    input: str | None = None
    latency_ms: float | None = None
    weights: str | None = None
    imagenet_acc1: float | None = None
    file_size_mb: float | None = None
    error: str | None = None


class Row(Record):
    """One case trained (or not) with one seed."""

    id: str
    suite: str | None = None
    task: str | None = None
    title: str | None = None
    seed: int | None = None
    description: str | None = None
    compare: list[str] = []
    mode: str | None = None
    sweep: str | None = None
    sweep_params: dict[str, Any] | None = None
    tolerances: dict[str, str] | None = None
    margin: dict[str, float] | None = None  # metric → ± the equivalence margin of this case's comparisons
    target_sensitivity: float | None = None
    requires_data: str | None = None
    published: dict[str, Any] | None = None
    hash: str | None = None
    # the case as it trained (its fields are the case file's: xraybench schema case)
    config: dict[str, dict[str, Any]] = {}
    status: Literal["ok", "failed", "skipped"]
    reason: str | None = None
    needs: str | None = None
    started: str | None = None
    history: list[Epoch] = []
    epoch_times: list[float] = []  # a baseline's rows: the seconds of each epoch (results.json: in history)
    metrics: Metrics = Metrics()
    model_info: ModelInfo | None = None
    predictions: dict[str, list[float]] | None = None  # split → P(pneumonia) per image of data.images
    images: dict[str, SplitImages] | None = None
    retry: str | None = None  # why the training was retried (out of memory) and how
    warnings: list[str] = []
    nondeterministic_ops: list[str] = []
    log_error: str | None = None
    traceback: str | None = None
    finished: str | None = None
    worker: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def epoch_seconds(self) -> list[float]:
        """The seconds of each epoch: a baseline's stored list, else the history's."""
        return self.epoch_times or [h.epoch_time_s for h in self.history if h.epoch_time_s is not None]

    @property
    def model_name(self) -> str | None:
        return self.config.get("model", {}).get("name")


class Precision(Record):
    name: str = "fp32"
    reason: str | None = None


class Settings(Record):
    """How the run trained, beyond what each case declares."""

    precision: Precision = Precision()
    deterministic: bool = False
    random_init: bool = False
    overrides: list[str] = []
    seeds: Literal["fixed", "auto"] = "fixed"  # auto: seeds added in rounds until each comparison is decided
    max_seeds: int | None = None  # auto's limit per case
    budget_s: float | None = None  # auto's limit on the run's training time (no new round past it)
    seed_batching: Literal["auto", "on", "off"] = "off"  # --seed-batching (runs before it trained seeds apart)
    tf32: bool | None = None  # --tf32: fp32 products in TF32 on CUDA (None: before the flag; PyTorch's defaults)

    def compared(self) -> dict:
        """What two runs must share to be compared without a warning: precision, determinism, initialisation,
        the --set overrides."""
        return {
            "precision": self.precision.name,
            "deterministic": self.deterministic,
            "random_init": self.random_init,
            "overrides": sorted(self.overrides),
            "tf32": bool(self.tf32),  # unrecorded is compared as off
        }


class SplitCounts(Record):
    images: int = 0
    normal: int = 0
    pneumonia: int = 0


class DataInfo(Record):
    fingerprint: str | None = None
    kind: str | None = None
    name: str | None = None
    location: str | None = None
    notes: list[str] = []
    splits: dict[str, SplitCounts] = {}
    splitting: str | None = None  # how the splits were made
    leakage: dict[str, Any] | None = None  # what the leakage check found (None: not checked)
    patient_names: dict[str, Any] | None = None
    medmnist: dict[str, Any] | None = None  # which MedMNIST file the data is (what published results used)
    summary: dict[str, Any] | None = None
    images: dict[str, SplitImages] | None = None

    @property
    def leakage_recorded(self) -> bool:
        """Whether the run recorded its leakage check (runs before it did are read by the patients they share)."""
        return "leakage" in self.model_fields_set


# The views a suite may give a task instead of its cases' own section: computed across the suite's results by
# xraybench.report.views (its VIEWS implements each; tests/test_schema.py holds the two equal).
VIEWS = ("model_selection", "compare_modes", "test_gap")


class Question(Record):
    """What a task asks, in words, and the metrics its comparisons answer it on: the first decides (and stops
    ``--seeds auto``), each next one is tested only once every one before it is decided (fixed sequence)."""

    text: str
    answer_on: list[str] = ["test_acc", "test_auc"]


class SuiteInfo(Record):
    """A suite as the run recorded it, for the report, which reads results.json alone."""

    title: str = ""
    tasks: dict[str, str] = {}
    questions: dict[str, Question] = {}  # task → its question
    views: dict[str, Literal[VIEWS]] = {}  # task → the view that is its section


class Look(Record):
    """One look of ``--seeds auto`` at one comparison: the seeds it had, its first metric's test against the look's
    boundary (nominal levels: two-sided, and each one-sided test of equivalence), and the outcome — what a reader
    needs to audit why the seeds stopped where they did. ``fraction``: the fewer seeds a side over the most allowed."""

    round: int
    a: str
    b: str
    metric: str
    seeds_a: int
    seeds_b: int
    fraction: float
    level: float
    equivalence_level: float
    margin: float
    difference: float
    se: float | None = None
    df: float | None = None
    p_value: float | None = None
    outcome: str  # A better, B better, equivalent, undecided, untested


class Run(Record):
    """results.json: an envelope like pytest-benchmark's (schema version, dates, machine, software, commit) around
    the run's profile, settings, data and one row per case and seed."""

    schema_version: int = Field(ge=1, le=SCHEMA_VERSION)
    run_id: str | None = None
    datetime: str | None = None
    updated: str | None = None
    profile: str | None = None
    machine_info: dict[str, Any] = {}
    software: Software = {}
    commit_info: Commit = {}
    settings: Settings = Settings()
    suites: dict[str, SuiteInfo] = {}
    data: DataInfo | None = None
    cases: list[Row]
    looks: list[Look] = []  # --seeds auto: every look at every comparison, in order
    _source: str = PrivateAttr("")  # the file it was read from, if any

    @property
    def source(self) -> str:
        return self._source

    @property
    def is_baseline(self) -> bool:
        return False

    def images(self, split: str) -> SplitImages | None:
        return (self.data.images or {}).get(split) if self.data else None

    def to_frame(self):
        """One record per case and seed — metrics and declared settings as columns — as a pandas DataFrame."""
        from xraybench.results.table import to_frame

        return to_frame(self)


class Baseline(Run):
    """A run stored to gate later runs: every seed's checked metrics, epoch times and predictions."""

    kind: Literal["xraybench-baseline"]
    schema_version: int = Field(ge=1, le=BASELINE_SCHEMA)
    name: str | None = None
    created: str | None = None
    tolerances: dict[str, str] = {}

    @property
    def is_baseline(self) -> bool:
        return True


def json_schema(kind: str) -> dict:
    """The JSON Schema of results.json (``results``) or of a stored baseline (``baseline``)."""
    model = {"results": Run, "baseline": Baseline}[kind]
    schema = model.model_json_schema(mode="validation")
    title = "a results.json of xraybench" if kind == "results" else "a stored baseline of xraybench"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}
