"""Estimate: how long the published suite's full reproduction takes on one GPU, from FLOPs, until measured.

    python benchmarks/published_cost.py [--anchor-img-s 2500] [--early-stop-epochs 15]

Per case of benchmarks/cases/published.toml in the full profile: the forward FLOPs of one image at the
model's input (torch.utils.flop_counter), a training step as three forwards, every epoch's training and
validation images, the test images once. A linear probe's backbone runs forward every epoch, in train mode as
MedMNIST+ has it (no feature cache: its dropout and BatchNorm change the features), and its head is free.
MedMNIST+ cases stop early (patience 5 on validation loss): they are counted at
``--early-stop-epochs`` epochs, and at the protocol's 100 as an upper bound. FLOPs become seconds at the rate
of the anchor: ResNet-50 at 224 px training at ``--anchor-img-s`` images per second (about 2,500 on one A100
with mixed precision; docs/performance.md). Small inputs (28 px) use a GPU less well than the anchor, so
their share is a lower bound. Prints per task and in total.
"""

from __future__ import annotations

import argparse
import functools
from collections import defaultdict

from xraybench.cases import PROFILES, apply_profile, load_cases, select
from xraybench.models import info, registry

IMAGES = {"train": 4708, "val": 524, "test": 624}  # PneumoniaMNIST (MedMNIST v2's splits, every size)


@functools.cache
def _cost(model: str, options: tuple, channels: int, size: int) -> tuple[float, bool, bool]:
    """(forward FLOPs of one image, whether its features are computed once, whether the backbone trains) of an
    architecture; options as sorted items."""
    options = dict(options)
    if "pretrained" in registry.model_options(model):
        options["pretrained"] = False  # the architecture is what costs; no weight files needed
    net = registry.create_model(model, in_channels=channels, image_size=size, num_outputs=2, **options).eval()
    fixed, frozen = bool(getattr(net, "features_fixed", False)), bool(getattr(net, "backbone_frozen", False))
    return float(info.forward_flops(net, channels, size)), fixed, not frozen


def forward_flops(model: str, options: dict, channels: int, size: int) -> float:
    return _cost(model, tuple(sorted(options.items())), channels, size)[0]


def case_flops(case, seeds: int, epochs_if_stopped: int) -> float:
    f, fixed, trains = _cost(
        case.model.name, tuple(sorted(case.model.options.items())), case.data.channels, case.data.input_size
    )
    epochs = epochs_if_stopped if case.train.early_stopping else case.train.epochs
    if fixed:  # features computed once per image, the head's cost negligible
        return seeds * f * sum(IMAGES.values())
    passes = 3 if trains else 1  # a linear probe's backbone runs forward only (in train mode, every epoch)
    return seeds * (epochs * (passes * f * IMAGES["train"] + f * IMAGES["val"]) + f * IMAGES["test"])


def main(argv: list[str] | None = None) -> tuple[float, float]:
    """Prints the estimate; returns (expected, upper bound) in hours."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchor-img-s", type=float, default=2500.0)
    parser.add_argument("--early-stop-epochs", type=int, default=15)
    args = parser.parse_args(argv)
    full = PROFILES["full"]
    cases = [apply_profile(c, full) for c in select(load_cases()[0], ["published*"])]
    rate = args.anchor_img_s * 3 * forward_flops("resnet50", {"mode": "finetune"}, 3, 224)  # FLOP/s
    expected, upper = defaultdict(float), defaultdict(float)
    for case in cases:
        seeds = case.seed_count(full)
        expected[case.task] += case_flops(case, seeds, args.early_stop_epochs)
        upper[case.task] += case_flops(case, seeds, case.train.epochs)
    print(f"effective rate: {rate / 1e12:.0f} TFLOP/s (ResNet-50 at 224 px training at {args.anchor_img_s:,.0f} img/s)")
    print(f"{'task':<6} {'cases':>5} {'PFLOP':>8} {'hours':>7} {'hours if no early stop':>24}")
    for task in expected:
        n = sum(c.task == task for c in cases)
        print(
            f"{task:<6} {n:>5} {expected[task] / 1e15:>8.1f} {expected[task] / rate / 3600:>7.2f} "
            f"{upper[task] / rate / 3600:>24.2f}"
        )
    total, most = sum(expected.values()), sum(upper.values())
    print(f"{'total':<6} {len(cases):>5} {total / 1e15:>8.1f} {total / rate / 3600:>7.2f} {most / rate / 3600:>24.2f}")
    return total / rate / 3600, most / rate / 3600


if __name__ == "__main__":
    main()
