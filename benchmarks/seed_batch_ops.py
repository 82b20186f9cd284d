"""PyTorch operations per model-step: the engine's training loop against the seed-batched one (issue 35).

A small model's step on a GPU costs its operations' host time (~10 µs each), not their arithmetic, so the count
is the figure that decides. Both loops run as the engine runs them — data batches, forward under autocast, loss,
backward, fused Adam, the epoch's running sums — over one epoch of the synthetic data, every ATen operation
counted by a dispatch mode (views and autocast's casts included), per step. Batched, one step trains K models,
so its count is divided by K.

    python benchmarks/seed_batch_ops.py [--seeds 5] [--models hw3_cnn hw3_mlp hw3_gap_cnn] [--size 32]
    python benchmarks/seed_batch_ops.py --time [--seeds 3] [--size 64] [--epochs 2]

``--time`` measures what the count does not: the wall time of the HW3 cases' trainings (the ``quick`` profile's
data, fp32) with their seeds one at a time (``train_case``) and in one pass (``train_seeds``), in one run on this
machine: the figure behind ``--seed-batching auto`` being off on the CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from xraybench.cases import PROFILES, Case, DataSpec, ModelSpec, TrainSpec, apply_profile, load_cases
from xraybench.data import BatchLoader, cache
from xraybench.data.batches import SeedBatches
from xraybench.data.sources import SyntheticSource
from xraybench.train import engine, seed_batch, speedups
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import Precision
from xraybench.train.stacked import StackedModel

CPU = torch.device("cpu")
HW3_OPTIONS = {"hw3_cnn": {"dropout": 0.6}}  # task A's CNN, with its dropout (a mask per step)


class OperationCount(TorchDispatchMode):
    """Counts every ATen operation dispatched while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _case(model: str, size: int, seed: int = 0) -> Case:
    return Case(
        id=f"ops-{model}",
        suite="ops",
        task="A",
        title=model,
        model=ModelSpec(model, HW3_OPTIONS.get(model, {})),
        data=DataSpec(image_size=size),
        train=TrainSpec(epochs=1, batch_size=32, seed=seed),
    )


def ops_per_model_step(model: str, precision: str, seeds: int, size: int = 32) -> tuple[float, float]:
    """(operations per step of the engine's loop, operations per model-step of the K-seed loop)."""
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), size).open()
    chosen = Precision(precision, "requested")
    objective = OBJECTIVES["bce"]
    cases = [_case(model, size, seed) for seed in range(seeds)]

    alone, channels_last = engine._build_model(cases[0], objective, CPU, chosen)
    settings = engine._batch_settings(cases[0], alone, CPU, channels_last)
    loader = BatchLoader(data.splits["train"], 32, shuffle=True, seed=0, **settings)
    optimizer, _ = engine._optimization(cases[0].train, alone)
    one = dict(precision=chosen, scaler=chosen.grad_scaler(CPU))
    engine.train_one_epoch(alone, loader, objective, objective.make_loss(), optimizer, **one)  # warm-up
    with OperationCount() as counted:
        engine.train_one_epoch(alone, loader, objective, objective.make_loss(), optimizer, **one)
    sequential = counted.count / len(loader)

    models = []
    for case in cases:
        torch.manual_seed(case.train.seed)
        models.append(engine._build_model(case, objective, CPU, chosen)[0])
    stacked, _ = speedups.prepare(StackedModel(models, (1, size, size)))
    batches = SeedBatches(BatchLoader(data.splits["train"], 32, shuffle=True, **settings), list(range(seeds)))
    optimizer, _ = engine._optimization(cases[0].train, stacked)
    step = (objective, optimizer, chosen, chosen.grad_scaler(CPU), None)
    seed_batch._train_one_epoch(stacked, batches, *step)  # warm-up
    with OperationCount() as counted:
        seed_batch._train_one_epoch(stacked, batches, *step)
    return sequential, counted.count / len(batches) / seeds


def seconds_alone_and_batched(case_id: str, seeds: int, size: int, epochs: int) -> tuple[float, float]:
    """Wall seconds of the case's ``seeds`` trainings one at a time and in one pass (fp32, the CPU), after one
    untimed training for the first-use costs."""
    data = cache.prepare(SyntheticSource(PROFILES["quick"].synthetic_sizes), size).open()
    case = apply_profile(next(c for c in load_cases()[0] if c.id == case_id), PROFILES["quick"])
    case = dataclasses.replace(case, data=dataclasses.replace(case.data, image_size=size))
    cases = [
        dataclasses.replace(case, train=dataclasses.replace(case.train, epochs=epochs, seed=s)) for s in range(seeds)
    ]
    fp32 = Precision("fp32", "requested")
    engine.train_case(cases[0], data, CPU, precision=fp32)  # warm-up
    start = time.perf_counter()
    for one in cases:
        engine.train_case(one, data, CPU, precision=fp32)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    seed_batch.train_seeds(cases, data, CPU, precision=fp32)
    return alone, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="K (default 5 for the count, 3 for --time)")
    parser.add_argument("--models", nargs="+", default=["hw3_cnn", "hw3_mlp", "hw3_gap_cnn"])
    parser.add_argument(
        "--size", type=int, default=None, help="image side (default 32; 64 with --time): over 64 px the HW3 CNN's "
        "flatten layer is a batched matrix product, and its count rises"
    )  # fmt: skip
    parser.add_argument("--time", action="store_true", help="wall time alone and in one pass, not the count")
    parser.add_argument("--epochs", type=int, default=2, help="with --time")
    args = parser.parse_args()
    if args.time:
        seeds, size = args.seeds or 3, args.size or 64
        print(f"HW3 trainings, {seeds} seeds × {args.epochs} epochs at {size} px, quick data, fp32, this CPU")
        print(f"{'case':18s} {'alone s':>8s} {'one pass s':>10s} {'speed-up':>9s}")
        for case_id in ("hw3-a-cnn-dropout", "hw3-b-mlp", "hw3-c-gap"):
            alone, batched = seconds_alone_and_batched(case_id, seeds, size, args.epochs)
            print(f"{case_id:18s} {alone:8.1f} {batched:10.1f} {alone / batched:8.2f}x")
        return
    args.seeds, args.size = args.seeds or 5, args.size or 32
    print(f"PyTorch operations per model-step, K = {args.seeds} seeds batched, one epoch at {args.size} px, batch 32")
    print(f"{'model':12s} {'precision':9s} {'alone':>7s} {'batched':>8s} {'ratio':>6s} {'1/K':>6s}")
    for model in args.models:
        for precision in ("fp32", "bf16"):
            alone, batched = ops_per_model_step(model, precision, args.seeds, args.size)
            print(
                f"{model:12s} {precision:9s} {alone:7.1f} {batched:8.1f} {batched / alone:6.3f} {1 / args.seeds:6.3f}"
            )


if __name__ == "__main__":
    main()
