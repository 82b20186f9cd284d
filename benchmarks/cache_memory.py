"""Benchmark: memory of the data cache for 6,000 images at 256×256 (issue 6: under 500 MB).

    python benchmarks/cache_memory.py [--images 6000] [--size 256]

Decodes the built-in synthetic data into a fresh cache, then in a fresh state maps it and
draws one shuffled training epoch of batches plus the evaluation batches, as the engine
does. Prints the size on disk and the growth of the process's resident memory.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from xraybench.data import BatchLoader, cache
from xraybench.data.sources import SyntheticSource


def resident_mb() -> float:
    """The process's resident set now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    n = args.images
    sizes = (n * 7 // 10, n * 15 // 100, n - n * 7 // 10 - n * 15 // 100)
    with tempfile.TemporaryDirectory() as tmp:
        source = SyntheticSource(sizes)
        cache.prepare(source, args.size, root=Path(tmp)).open()  # decode and write once
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*.npy")) / 2**20
        before = resident_mb()
        data = cache.prepare(source, args.size, root=Path(tmp)).open()
        peak = before
        for name, split in data.splits.items():
            loader = BatchLoader(
                split, 32 if name == "train" else 256, device=torch.device("cpu"), shuffle=name == "train"
            )
            for _x, _ in loader:
                peak = max(peak, resident_mb())
    print(
        f"{n} images at {args.size}×{args.size}: cache {disk:.0f} MiB on disk (uint8); "
        f"resident memory grew by {peak - before:.0f} MiB over one pass of every split (target < 500 MB)"
    )


if __name__ == "__main__":
    main()
