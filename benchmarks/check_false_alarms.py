"""Benchmark: how often `xraybench check` cries wolf, and how often it catches a real regression.

    python benchmarks/check_false_alarms.py [--cases hw3-a-cnn hw3-b-mlp] [--seeds 3] [--repeats 20]

A/A: the same cases trained with disjoint seeds, one set stored as the baseline and the other
checked against it; any "worse" is a false alarm (target ≤ 5% of checks). A/B: the candidate
carries a real degradation and should be flagged (target ≥ 90%): "lr100" trains with the
learning rate × 100 (as a bug would; the configuration hash is kept so that the check compares),
"flip10" flips 10% of the training labels. Runs on a small setting of the built-in data (32 px,
800 / 200 / 400 images, 12 epochs) on the CPU, each check on its own fresh seeds. Prints the
rates per case and per run, split into quality metrics and times.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from xraybench import check, runner, stats
from xraybench.cases import Profile, apply_profile, load_cases
from xraybench.data.sources import SyntheticSource

SMALL = Profile(
    "small",
    "false-alarm benchmark",
    image_size=32,
    epochs=12,
    synthetic_sizes=(800, 200, 400),
    max_per_split=None,
    seeds=3,
)
TIMES = {"wall_time_s", "s_per_epoch", "peak_memory_mb"}


@dataclasses.dataclass(frozen=True)
class FlippedLabels:
    """The built-in data with a share of the training labels flipped (seeded)."""

    inner: SyntheticSource
    share: float = 0.10

    kind = "synthetic"
    name = "synthetic-flipped"

    @property
    def location(self) -> str:
        return f"{self.inner.location}, {self.share:.0%} of training labels flipped"

    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint()}-flip{self.share}"

    def decode(self, image_size: int, resample: str = "bilinear"):
        splits, notes, accounting = self.inner.decode(image_size, resample)
        train = splits["train"]
        flip = torch.randperm(len(train), generator=torch.Generator().manual_seed(123))[
            : round(self.share * len(train))
        ]
        train.labels = train.labels.clone()
        train.labels[flip] = 1 - train.labels[flip]
        return splits, [*notes, f"{self.share:.0%} of training labels flipped"], accounting


def train(cases, first_seed: int, seeds: int, source, out: Path, name: str, lr_factor: float = 1.0) -> dict:
    shifted = [
        dataclasses.replace(c, train=dataclasses.replace(c.train, seed=first_seed, lr=c.train.lr * lr_factor))
        for c in cases
    ]
    plan = runner.RunPlan(profile=SMALL, device=torch.device("cpu"), source=source, out=out, run_id=name, seeds=seeds)
    _, doc = runner.run(shifted, plan, log=lambda *_: None)
    if lr_factor != 1.0:  # a bug, not an edit: keep the hash of the configuration as declared
        declared = {c.id: apply_profile(c, SMALL).config_hash for c in cases}
        for row in doc["cases"]:
            row["hash"] = declared[row["id"]]
    return doc


def alarms(verdicts: list[check.CaseVerdict]) -> dict[str, set[str]]:
    """Case ids flagged worse, by quality metrics and by times."""
    flagged = {"quality": set(), "time": set()}
    for v in verdicts:
        for m in v.metrics:
            if m.status == "worse":
                flagged["time" if m.metric in TIMES else "quality"].add(v.id)
        if v.status in check.REGRESSIONS and v.status != "worse":  # failed, missing, lost
            flagged["quality"].add(v.id)
    return flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["hw3-a-cnn", "hw3-b-mlp"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per side (≥ 3: Mann–Whitney; fewer: paired tests)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--degradations", nargs="+", default=["lr100", "flip10"], choices=["lr100", "flip10"])
    args = parser.parse_args()

    cases = [c for c in load_cases()[0] if c.id in args.cases]
    clean = SyntheticSource(SMALL.synthetic_sizes)
    experiments = ["A/A"] + [f"A/B {d}" for d in args.degradations]
    counts = {e: {"quality": 0, "time": 0, "any": 0, "per_case": {c.id: 0 for c in cases}} for e in experiments}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            base_seed = 1000 * (rep + 1)
            baseline_doc = train(cases, base_seed, args.seeds, clean, Path(tmp), f"base{rep}")
            baseline = check.make_baseline(baseline_doc, "a")
            candidates = {"A/A": train(cases, base_seed + 100, args.seeds, clean, Path(tmp), f"aa{rep}")}
            if "lr100" in args.degradations:
                candidates["A/B lr100"] = train(cases, base_seed + 200, args.seeds, clean, Path(tmp), f"lr{rep}", 100.0)
            if "flip10" in args.degradations:
                candidates["A/B flip10"] = train(
                    cases, base_seed + 300, args.seeds, FlippedLabels(clean), Path(tmp), f"flip{rep}"
                )
            for experiment, doc in candidates.items():
                flagged = alarms(check.compare(doc, baseline))
                c = counts[experiment]
                c["quality"] += bool(flagged["quality"])
                c["time"] += bool(flagged["time"])
                c["any"] += bool(flagged["quality"] | flagged["time"])
                for case_id in flagged["quality"]:
                    c["per_case"][case_id] += 1
            print(f"  repeat {rep + 1}/{args.repeats} done ({time.perf_counter() - start:.0f} s)", flush=True)

    n = args.repeats
    print(
        f"\n{', '.join(c.id for c in cases)}; {args.seeds} seed(s) per side; {n} checks per experiment; "
        f"small setting: 32 px, 800/200/400 images, 12 epochs; {time.perf_counter() - start:.0f} s. "
        f"Rates with Clopper–Pearson 95% bounds: a claim holds only where its bound does."
    )
    for experiment, c in counts.items():
        target = "false-alarm rate (target ≤ 5%)" if experiment == "A/A" else "detection rate (target ≥ 90%)"
        per_case = ", ".join(f"{k} {rate(v, n)}" for k, v in c["per_case"].items())
        print(
            f"  {experiment:11s} {target}: quality metrics {rate(c['quality'], n)} (per case: {per_case}); "
            f"times {rate(c['time'], n)}; either {rate(c['any'], n)}"
        )


def rate(hits: int, trials: int) -> str:
    """ "5% [1.0, 24.9]": the share and its exact (Clopper–Pearson) 95% interval, in percent."""
    low, high = stats.clopper_pearson(hits, trials)
    return f"{hits / trials:.0%} [{100 * low:.1f}, {100 * high:.1f}]"


if __name__ == "__main__":
    main()
