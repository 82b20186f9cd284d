"""What a case is: the Case record (model, data and training specs), suites, profiles, and the case as
a profile (or ``--random-init``) runs it. Reading and checking case files is ``loading``'s job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from xraybench.models import registry
from xraybench.results import config_hash

DEFAULT_CASES_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "cases"


# Training settings added after cases were first hashed, with the default that behaves as before.
LATER_DEFAULTS = {
    "train": {
        "select_by": "val_acc",
        "early_stopping": {},
        "val_loss": "image_mean",
        "eval_batch_size": 256,
        "seed_batching": True,
    },
    "data": {"pad_to": 0, "resize": "bilinear"},
}


class CaseError(ValueError):
    """A case file or a case in it is invalid; the message names file, case and field."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    image_size: int = 256  # 0: the input size the model's pretrained weights were made for
    channels: int = 1
    mean: float = 0.5
    std: float = 0.5
    augment: tuple[str, ...] = ()
    pad_to: int = 0  # zero-pad smaller images to pad_to × pad_to (MedMNIST+), centred; 0: no padding
    resize: str = "bilinear"  # how images are brought to image_size: bilinear, or nearest (MedMNIST v2 at 224)

    @property
    def input_size(self) -> int:
        """The side of what the model sees: the image, or the padded canvas around it."""
        return max(self.image_size, self.pad_to)


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"
    optimizer_options: dict = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    scheduler_options: dict = field(default_factory=dict)
    loss: str = "bce"
    seed: int = 0
    feature_cache: bool = True  # frozen backbones without augmentation: compute features once
    select_by: str = "val_acc"  # the epoch kept: best val_acc (ties: lower loss), val_auc or lowest val_loss
    early_stopping: dict = field(default_factory=dict)  # {patience, metric}: stop when metric stalls
    val_loss: str = "image_mean"  # how the validation loss averages: per image, or batch_mean (MedMNIST+)
    eval_batch_size: int = 256  # the batches batch_mean averages over (the forward passes' own size may differ)
    seed_batching: bool = True  # seeds in one pass where the model stacks and --seed-batching allows it


@dataclass(frozen=True)
class Reference:
    """A published result a case reproduces: where it is printed and what it reports (fractions, not %).
    Its absence (``source`` empty) is the usual case."""

    source: str = ""  # the publication, e.g. "Yang et al., MedMNIST v2, Scientific Data 10:41 (2023)"
    table: str = ""  # where in it (a table, or a repository path) the values are
    protocol: str = ""  # where the protocol is defined (a repository and file)
    test_acc: float = 0.0
    test_auc: float = 0.0
    test_acc_sd: float = 0.0  # spread over the published runs, where published (0: not published)
    test_auc_sd: float = 0.0
    runs: int = 1  # how many trainings the published value averages
    deviations: tuple[str, ...] = ()  # how this case's declared protocol differs from the published one
    protocol_differs: tuple[str, ...] = ()  # departures in what the model is or sees: each withholds the verdict

    @property
    def metrics(self) -> dict[str, tuple[float, float]]:
        """metric → (published value, its sd over runs or 0)."""
        found = {"test_acc": (self.test_acc, self.test_acc_sd), "test_auc": (self.test_auc, self.test_auc_sd)}
        return {k: v for k, v in found.items() if v[0]}


@dataclass(frozen=True)
class Case:
    id: str
    suite: str
    task: str
    title: str
    model: ModelSpec
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    description: str = ""
    compare: tuple[str, ...] = ()  # ids of cases this one is compared with in its task
    profiles: tuple[str, ...] = ()  # profiles the case runs in; empty: all
    profile_overrides: dict = field(default_factory=dict)  # e.g. {"quick": {"train.epochs": 6}}
    tolerances: dict = field(default_factory=dict)  # for xraybench check, e.g. {"test_acc": "-5pp"}
    margin: dict = field(default_factory=dict)  # metric → ± within which its comparisons are equivalent
    target_sensitivity: float = 0.0  # the report's operating point: reach this on validation (0: Youden's J)
    sweep: str = ""  # for a case expanded from a grid: the declared case's id
    sweep_params: dict = field(default_factory=dict)  # and its point in the grid, e.g. {"train.lr": 1e-4}
    seeds: dict = field(default_factory=dict)  # seeds per profile where not the profile's own, e.g. {"quick": 1}
    requires_data: str = ""  # the --data the case needs, e.g. "pneumoniamnist@28"; other data skips it
    published: Reference = Reference()  # the published result it reproduces, if any
    source: str = ""  # the file it was declared in; not part of the configuration

    def config(self) -> dict:
        """What determines the case's results: model, data and training settings. Settings added after
        cases were first stored are left out at their defaults, which reproduce the earlier behaviour: a
        case that does not use them keeps its hash, and its baseline stays comparable."""

        def declared(section: str, spec) -> dict:
            later = LATER_DEFAULTS[section]
            return {k: v for k, v in dataclasses.asdict(spec).items() if later.get(k, ...) != v}

        return {
            "model": dataclasses.asdict(self.model),
            "data": declared("data", self.data),
            "train": declared("train", self.train),
        }

    @property
    def config_hash(self) -> str:
        return config_hash(self.config())

    def seed_count(self, profile: Profile) -> int:
        return int(self.seeds.get(profile.name, profile.seeds))

    @property
    def mode(self) -> str:
        """How the model's weights start and train: "from scratch" (random initialisation, every weight trains),
        "finetune" (pretrained, every weight trains) or "frozen" (only the new head trains). A backbone fine-tuned
        from random weights (``pretrained = false``: MedMNIST's ResNets at 224; ``--random-init``) is from scratch."""
        mode = str(self.model.options.get("mode", "from scratch"))
        return "from scratch" if mode == "finetune" and self.model.options.get("pretrained") is False else mode


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    tasks: dict[str, str]
    source: str
    views: dict[str, str] = field(default_factory=dict)  # task → a report view computed across the suite
    questions: dict = field(default_factory=dict)  # task → {"text": ..., "answer_on": [metric, ...]}
    defaults: dict = field(default_factory=dict)  # the [defaults] its cases start from (a file extending it too)
    extends: str = ""  # the suite whose defaults and tasks it builds on


@dataclass(frozen=True)
class Profile:
    """Sizes and epochs for a kind of run; applied to cases without copying them."""

    name: str
    description: str
    image_size: int | None  # cap on the input size; None keeps the case's
    epochs: int | None  # cap on epochs; None keeps the case's
    synthetic_sizes: tuple[int, int, int]  # train, val, test images of the built-in data
    max_per_split: int | None  # cap on images per split of any source; None uses all
    seeds: int = 1  # seeds per case (a case may declare fewer or more; --seeds overrides both)
    auto_seeds: bool = False  # --seeds auto unless --seeds N: seeds added while a comparison is undecided
    eval_batch_size: int = 256


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        "seconds per case, for tests",
        image_size=32,
        epochs=2,
        synthetic_sizes=(192, 64, 64),
        max_per_split=256,
        seeds=1,
    ),
    "quick": Profile(
        "quick",
        "minutes on a CPU",
        image_size=64,
        epochs=15,
        synthetic_sizes=(1200, 300, 400),
        max_per_split=None,
        seeds=3,
    ),
    "full": Profile(
        "full",
        "the homework settings, for a GPU",
        image_size=None,
        epochs=None,
        synthetic_sizes=(4000, 500, 624),
        max_per_split=None,
        seeds=5,
        auto_seeds=True,  # a GPU's seeds are cheap beside an undecided homework question
    ),
}


def default_profile(device_type: str) -> Profile:
    """The profile a run gets when none is named: the homework's settings on a GPU, minutes on a CPU."""
    return PROFILES["full" if device_type == "cuda" else "quick"]


def apply_profile(case: Case, profile: Profile) -> Case:
    """The case as it runs under ``profile``: input size (the image, or the canvas it is padded to) and
    epochs capped (never below the smallest input the model accepts: AlexNet's feature stack needs 63 px).

    Scheduler options keep their declared epochs (StepLR decays at epoch 10 in every
    profile): a shortened run sees fewer decays rather than a compressed schedule, which
    at a few epochs would decay before the model has learned anything."""
    data, train = case.data, case.train
    if profile.image_size is not None and data.input_size > profile.image_size:
        cap = max(profile.image_size, registry.min_input_size(case.model.name))
        image_size = min(data.image_size, cap)
        pad_to = min(data.pad_to, max(cap, image_size)) if data.pad_to else 0
        data = dataclasses.replace(data, image_size=image_size, pad_to=pad_to)
    if profile.epochs is not None and train.epochs > profile.epochs:
        train = dataclasses.replace(train, epochs=profile.epochs)
    for key, value in case.profile_overrides.get(profile.name, {}).items():
        section, name = key.split(".", 1)
        if section == "data":
            data = dataclasses.replace(data, **{name: value})
        else:
            train = dataclasses.replace(train, **{name: value})
    return dataclasses.replace(case, data=data, train=train)


RANDOM_INIT_NOTE = "random initialisation — not a pretrained result"


def with_random_init(case: Case) -> Case:
    """The case with its backbone's pretrained weights left out (``--random-init``).

    Every backbone and mode can then run without weight files (tests, a first look at a new
    machine). The option changes the configuration hash, so such rows never match a pretrained
    baseline, and the title says what they are."""
    if not case.model.options.get("pretrained", registry.model_options(case.model.name).get("pretrained", False)):
        return case
    model = dataclasses.replace(case.model, options={**case.model.options, "pretrained": False})
    return dataclasses.replace(case, model=model, title=f"{case.title} ({RANDOM_INIT_NOTE})")
