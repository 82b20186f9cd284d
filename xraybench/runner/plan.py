"""The plan of a run: what it trains and how (``RunPlan``), its id, the trainings (cases × seeds) and each case
as this run trains it (the profile applied, random initialisation if asked, the seed)."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from xraybench import results
from xraybench.cases import Case, Profile, apply_profile, with_random_init
from xraybench.train.precision import FP32, Precision


class RunError(ValueError):
    """The run cannot start or continue (for example a run directory holding another run)."""


@dataclass
class RunPlan:
    profile: Profile
    device: torch.device
    source: object  # a data source: xraybench.data.open_source's (synthetic, folder, npz)
    out: Path
    run_id: str | None = None
    seeds: int | None = None  # per case; None: the profile's count, or the case's own for this profile
    auto: bool = False  # --seeds auto: compared cases get seeds in rounds until their comparisons are decided
    max_seeds: int | None = None  # auto: the most seeds a case gets (None: twice its first round's)
    budget_s: float | None = None  # auto: no round starts that would end past this many seconds of the run
    force: bool = False
    precision: Precision = FP32
    deterministic: bool = False
    seed_batching: str = "auto"  # seeds of a case in one pass: auto (on CUDA), on, off (train/seed_batch.py)
    tf32: bool = False  # fp32 matrix products and convolutions in TF32 on CUDA (environment.configure)
    random_init: bool = False  # backbones without their pretrained weights: exercises code, not a result
    strict_splits: bool = False  # leakage across splits (shared patients, identical images) is an error
    offline: bool = False  # never download missing weight files
    case_timeout_s: float | None = None  # a training past it is stopped and recorded as failed
    tensorboard: bool = False  # TensorBoard event files under RUN_DIR/tb beside the live CSV logs
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE, already applied to the cases; named in the run id and recorded
    environment: dict | None = None  # machine_info and software where the cases run (the executor's probe)

    @property
    def resolved_run_id(self) -> str:
        """Explicit, or the environment in the name (timm-style): profile, device, data."""
        if self.run_id:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.run_id):
                raise RunError(
                    f"--run-id {self.run_id!r}: use letters, digits, '_', '-' and '.' (not first); "
                    f"a run id names a folder inside --out"
                )
            return self.run_id
        name = f"{self.profile.name}-{self.device.type}-{self.source.name}" + ("-random-init" * self.random_init)
        if self.overrides:  # a one-off experiment gets its own directory: it must not replace the run's rows
            name += "-set-" + "-".join(o.partition(".")[2].replace("=", "") for o in sorted(self.overrides))
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        return (
            name if len(name) <= 120 else f"{name[:107]}-{results.config_hash({'overrides': sorted(self.overrides)})}"
        )

    @property
    def settings(self) -> dict:
        """How the cases train, as results.json records it."""
        return {
            "precision": self.precision.as_record(),
            "deterministic": self.deterministic,
            "seed_batching": self.seed_batching,
            "tf32": self.tf32,
            "random_init": self.random_init,
            **({"overrides": list(self.overrides)} if self.overrides else {}),
            **({"seeds": "auto", "max_seeds": self.max_seeds, "budget_s": self.budget_s} if self.auto else {}),
        }


def seed_counts(cases: list[Case], plan: RunPlan) -> dict[str, int]:
    """Each case's seeds: --seeds N, else the case's own for this profile, else the profile's."""
    return {case.id: plan.seeds or case.seed_count(plan.profile) for case in cases}


def trainings(
    cases: list[Case], plan: RunPlan, counts: dict[str, int] | None = None
) -> tuple[dict[str, int], list[Case]]:
    """The seed count of each case (``counts``, else ``seed_counts``), and every training in order: each case as
    this run trains it, once per seed."""
    counts = counts or seed_counts(cases, plan)
    planned = [
        as_planned(case, plan, seed)
        for case in cases
        for seed in range(case.train.seed, case.train.seed + counts[case.id])
    ]
    return counts, planned


def as_planned(case: Case, plan: RunPlan, seed: int | None = None) -> Case:
    """The case as this run trains it: the profile applied, random initialisation if asked, the seed."""
    case = apply_profile(case, plan.profile)
    case = with_random_init(case) if plan.random_init else case
    return case if seed is None else dataclasses.replace(case, train=dataclasses.replace(case.train, seed=seed))


def announce(plan: RunPlan, cases: list[Case], planned: list[Case], counts: dict[str, int], log) -> None:
    """The run's first lines: what it trains, where, on what, and how."""
    log(
        f"run {plan.resolved_run_id}: {len(cases)} case(s), {len(planned)} trainings ({_seed_counts(counts)}), "
        f"profile {plan.profile.name}, device {plan.device.type}, data {plan.source.name}, "
        f"precision {plan.precision.name} ({plan.precision.reason})"
        + (", TF32" * plan.tf32)
        + (", deterministic" * plan.deterministic)
    )
    if plan.random_init:
        log(
            "random initialisation (--random-init): pretrained backbones start from random weights; these rows "
            "test the code, they are not pretrained results"
        )


def tag(case: Case, counts: dict[str, int]) -> str:
    """A training as the log names it: the case, and its seed when the case has more than one."""
    return case.id + (f" seed {case.train.seed}" if counts[case.id] > 1 else "")


def _seed_counts(counts: dict[str, int]) -> str:
    by_count = Counter(counts.values())
    return ", ".join(f"{n} case(s) × {k} seed{'s' if k > 1 else ''}" for k, n in sorted(by_count.items(), reverse=True))


def case_precision(case: Case, chosen: Precision) -> Precision:
    """A published protocol trains in fp32, as its runs did, unless ``--precision`` asked for another explicitly;
    every other case trains in the run's precision."""
    if case.published.source and not chosen.explicit and chosen.name != "fp32":
        return Precision("fp32", "a published protocol trains in fp32, as its runs did")
    return chosen
