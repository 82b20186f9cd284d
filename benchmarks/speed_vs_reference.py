"""xraybench vs the homework's loop, on the same Kermany-layout folder, model, seed and epochs.

    python benchmarks/speed_vs_reference.py [--size 64] [--epochs 3] [--models hw3_cnn hw3_mlp]

The folder is written from the built-in synthetic data (PNG files) at --size. Prints seconds
per epoch (an epoch includes its validation pass) for each, the ratio, and test accuracies.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_loop import reference_fit  # noqa: E402

from xraybench.cases import load_cases  # noqa: E402
from xraybench.data import cache  # noqa: E402
from xraybench.data.sources import FolderSource  # noqa: E402
from xraybench.data.synthetic import generate_split  # noqa: E402
from xraybench.engine import train_case  # noqa: E402
from xraybench.registry import create_model  # noqa: E402

CASES = {"hw3_cnn": "hw3-a-cnn", "hw3_mlp": "hw3-b-mlp", "hw3_gap_cnn": "hw3-c-gap"}


def write_folder(root: Path, size: int, sizes=(1200, 300, 400)) -> None:
    for split, n in zip(("train", "val", "test"), sizes):
        images, labels = generate_split(split, n, size)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / ("PNEUMONIA" if label else "NORMAL")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / f"{split}-{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["hw3_cnn", "hw3_mlp"], choices=sorted(CASES))
    args = parser.parse_args()
    declared = {c.id: c for c in load_cases()[0]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "xrays"
        write_folder(root, args.size)
        data = cache.load(FolderSource(root), args.size)
        for name in args.models:
            case = declared[CASES[name]]
            case = dataclasses.replace(case, data=dataclasses.replace(case.data, image_size=args.size),
                                       train=dataclasses.replace(case.train, epochs=args.epochs))
            torch.manual_seed(case.train.seed)
            model = create_model(name, in_channels=1, image_size=args.size, num_outputs=1, **case.model.options)
            ref = reference_fit(model, root, image_size=args.size, epochs=args.epochs)
            ours = train_case(case, data, torch.device("cpu"))["metrics"]
            rows.append([name, f"{ref['s_per_epoch']:.2f}", f"{ours['s_per_epoch']:.2f}",
                         f"{ref['s_per_epoch'] / ours['s_per_epoch']:.2f}×", f"{ref['test_acc']:.3f}",
                         f"{ours['test_acc']:.3f}"])
    print(f"{args.size}×{args.size} px, {args.epochs} epochs, batch 32, CPU threads {torch.get_num_threads()}")
    print(tabulate(rows, headers=["model", "reference s/epoch", "xraybench s/epoch", "speed-up",
                                  "reference test acc", "xraybench test acc"]))


if __name__ == "__main__":
    np.random.seed(0)
    main()
