"""Batches sliced from tensors: no per-sample Python or PIL work in the epoch loop.

The whole split is moved to the device once (as uint8, a quarter of float32's size); each
batch is an index into it, converted to float, normalised and augmented as one tensor.
"""

from __future__ import annotations

import torch

from xraybench.data.augmentations import AUGMENTATIONS
from xraybench.data.sources import Split


class _IndexedBatches:
    """Batching by index over tensors already on the device, in order or seeded-shuffled."""

    def __init__(self, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int):
        self.device = labels.device
        self.labels, self.batch_size, self.shuffle = labels, batch_size, shuffle
        self.order_rng = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.num_images // self.batch_size)

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self):
        n = self.num_images
        order = torch.randperm(n, generator=self.order_rng).to(self.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start : start + self.batch_size]
            yield self._inputs(index), self.labels[index]

    def _inputs(self, index) -> torch.Tensor:
        raise NotImplementedError


class BatchLoader(_IndexedBatches):
    """Normalised float batches from a split's uint8 images, grayscale replicated to ``channels``."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        device: torch.device,
        channels: int = 1,
        mean: float | tuple[float, ...] = 0.5,
        std: float | tuple[float, ...] = 0.5,
        shuffle: bool = False,
        seed: int = 0,
        augment: tuple[str, ...] = (),
        channels_last: bool = False,
        pad_to: int = 0,
    ):
        device = torch.device(device)
        non_blocking = device.type == "cuda"
        super().__init__(split.labels.to(device, non_blocking=non_blocking), batch_size, shuffle, seed)
        self.images = split.images.to(device, non_blocking=non_blocking)
        self.channels, self.augment = channels, augment
        side = split.images.shape[-1]
        before = max(0, pad_to - side) // 2  # centred; an odd margin puts the extra pixel after
        self.padding = (before, max(0, pad_to - side) - before) * 2 if pad_to > side else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # (x/255 - mean) / std = x * scale - shift, per channel after grayscale is replicated.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std_t), mean_t / std_t
        self.augment_rng = torch.Generator(device=device).manual_seed(seed + 1)

    def _inputs(self, index, augment_rng: torch.Generator | None = None) -> torch.Tensor:
        x = self.images[index].float()
        if self.augment:
            x = self._augment(x, augment_rng or self.augment_rng)
        x = x.expand(-1, self.channels, -1, -1) * self.scale - self.shift
        if self.padding:  # zeros after normalisation (the mean colour), as MedMNIST+'s Pad after Normalize
            x = torch.nn.functional.pad(x, self.padding)
        return x.contiguous(memory_format=self.memory_format)

    def _augment(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        for name in AUGMENTATIONS:  # in their declared order, each drawing from the loader's stream
            if name in self.augment:
                x = AUGMENT[name](x, torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=rng))
        return x


class SeedBatches:
    """Several seeds' training batches at once, packed along the channels for a stacked model
    (xraybench/train/stacked.py): seed k's batch is channels k·C … (k+1)·C − 1 of one [B, K·C, H, W] tensor, its
    labels column k of [B, K]. Each seed draws its order and augmentation from its own streams, seeded as a
    ``BatchLoader(shuffle=True, seed=seed)`` of its own would (the same batches). The images are on the device
    once; without augmentation the K batches are gathered, converted and normalised as one tensor: a handful of
    operations per step whatever K."""

    def __init__(self, loader: BatchLoader, seeds: list[int]):
        self.loader, self.seeds = loader, seeds
        self.device, self.num_images, self.batch_size = loader.device, loader.num_images, loader.batch_size
        self.order_rngs = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.augment_rngs = [torch.Generator(device=loader.device).manual_seed(seed + 1) for seed in seeds]
        per_channel = (1, loader.channels, 1, 1)  # one value per channel, then per seed's channels
        self.scale = loader.scale.expand(per_channel).repeat(1, len(seeds), 1, 1)
        self.shift = loader.shift.expand(per_channel).repeat(1, len(seeds), 1, 1)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        n, k, loader = self.num_images, len(self.seeds), self.loader
        orders = torch.stack([torch.randperm(n, generator=rng) for rng in self.order_rngs], dim=1).to(self.device)
        for start in range(0, n, self.batch_size):
            index = orders[start : start + self.batch_size]  # [b, K]
            if loader.augment:  # each seed's batch augmented from its own stream
                x = torch.cat([loader._inputs(index[:, i], rng) for i, rng in enumerate(self.augment_rngs)], dim=1)
            else:
                x = self._packed(index, k)
            yield x, loader.labels[index]

    def _packed(self, index: torch.Tensor, k: int) -> torch.Tensor:
        """``BatchLoader._inputs`` for K batches in one: the same arithmetic, element for element."""
        loader = self.loader
        x = loader.images[index].float()  # [b, K, 1, H, W]
        x = x.expand(-1, -1, loader.channels, -1, -1).reshape(index.shape[0], k * loader.channels, *x.shape[-2:])
        x = x * self.scale - self.shift
        if loader.padding:
            x = torch.nn.functional.pad(x, loader.padding)
        return x.contiguous(memory_format=loader.memory_format)


def _hflip(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return torch.where(u < 0.5, x.flip(-1), x)


def _brightness(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return x + 51.0 * (u - 0.5)  # on the 0–255 scale, before normalisation


AUGMENT = {"hflip": _hflip, "brightness": _brightness}  # what each of AUGMENTATIONS does (data/augmentations.py)


class TensorLoader(_IndexedBatches):
    """Batches of ready float tensors (cached backbone features), with the BatchLoader's interface."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0):
        super().__init__(y, batch_size, shuffle, seed)
        self.x = x

    def _inputs(self, index) -> torch.Tensor:
        return self.x[index]
