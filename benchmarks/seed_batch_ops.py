"""PyTorch operations per model-step: the engine's training loop against the seed-batched one (issue 35).

A small model's step on a GPU costs its operations' host time (~10 µs each), not their arithmetic, so the count
is the figure that decides. Both loops run as the engine runs them — data batches, forward under autocast, loss,
backward, fused Adam, the epoch's running sums — over one epoch of the synthetic data, every ATen operation
counted by a dispatch mode (views and autocast's casts included), per step. Batched, one step trains K models,
so its count is divided by K.

    python benchmarks/seed_batch_ops.py [--seeds 5] [--models hw3_cnn hw3_mlp hw3_gap_cnn]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from xraybench.cases import PROFILES, Case, DataSpec, ModelSpec, TrainSpec
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["hw3_cnn", "hw3_mlp", "hw3_gap_cnn"])
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (the count does not depend on it)")
    args = parser.parse_args()
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
