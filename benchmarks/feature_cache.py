"""Benchmark: a frozen EfficientNet-Lite0 case per epoch with and without the feature cache.

    python benchmarks/feature_cache.py [--image-size 64] [--epochs N]   (default: the case's 20)

Both runs train the same head on the same built-in data on the CPU; the cached run's
one-time feature pass is counted in, spread over its epochs. Prints seconds per epoch,
the ratio and both test accuracies.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from xraybench.cases import PROFILES, load_cases
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.train.engine import train_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, help="default: the case's declared epochs")
    parser.add_argument("--case", default="hw4-c-efficientnet-lite0")
    args = parser.parse_args()

    case = next(c for c in load_cases()[0] if c.id == args.case)
    case = dataclasses.replace(
        case,
        data=dataclasses.replace(case.data, image_size=args.image_size),
        train=dataclasses.replace(case.train, epochs=args.epochs or case.train.epochs),
    )
    data = cache.prepare(SyntheticSource(PROFILES["quick"].synthetic_sizes), args.image_size).open()
    cpu = torch.device("cpu")
    results = {}
    for label, use_cache in (("without cache", False), ("with cache", True)):
        run = dataclasses.replace(case, train=dataclasses.replace(case.train, feature_cache=use_cache))
        results[label] = train_case(run, data, cpu)["metrics"]
    print(
        f"{case.id} at {args.image_size}px, {case.train.epochs} epochs, {len(data.splits['train'])} training images, "
        f"{torch.get_num_threads()} threads"
    )
    for label, m in results.items():
        extra = f" (feature pass {m['feature_pass_s']:.1f}s included)" if m["feature_pass_s"] else ""
        print(f"  {label:14s} {m['s_per_epoch']:7.2f} s/epoch{extra}  test acc {m['test_acc']:.3f}")
    ratio = results["without cache"]["s_per_epoch"] / results["with cache"]["s_per_epoch"]
    print(f"  speed-up: {ratio:.1f}× per epoch")


if __name__ == "__main__":
    main()
