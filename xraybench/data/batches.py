"""Batches sliced from uint8 tensors: no per-sample Python or PIL work in the epoch loop.

The whole split is moved to the device once (as uint8, a quarter of float32's size); each
batch is an index into it, converted to float, normalised and augmented as one tensor.
"""

from __future__ import annotations

import torch

from xraybench.data.sources import Split


class BatchLoader:
    def __init__(self, split: Split, batch_size: int, *, device: torch.device, channels: int = 1,
                 mean: float = 0.5, std: float = 0.5, shuffle: bool = False, seed: int = 0,
                 augment: tuple[str, ...] = ()):
        self.device = torch.device(device)
        non_blocking = self.device.type == "cuda"
        self.images = split.images.to(self.device, non_blocking=non_blocking)
        self.labels = split.labels.to(self.device, non_blocking=non_blocking)
        self.batch_size, self.channels, self.shuffle, self.augment = batch_size, channels, shuffle, augment
        self.scale, self.shift = 1.0 / (255.0 * std), mean / std  # x/255 normalised = x*scale - shift
        self.order_rng = torch.Generator().manual_seed(seed)
        self.augment_rng = torch.Generator(device=self.device).manual_seed(seed + 1)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self):
        n = self.num_images
        order = torch.randperm(n, generator=self.order_rng).to(self.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                x, y = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                x, y = self.images[index], self.labels[index]
            x = x.float().mul_(self.scale).sub_(self.shift)
            if self.augment:
                x = self._augment(x)
            if self.channels != 1:
                x = x.expand(-1, self.channels, -1, -1)
            yield x, y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if "hflip" in self.augment:
            flip = torch.rand(b, 1, 1, 1, device=x.device, generator=self.augment_rng) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        if "brightness" in self.augment:
            x = x + 0.2 * (torch.rand(b, 1, 1, 1, device=x.device, generator=self.augment_rng) - 0.5)
        return x
