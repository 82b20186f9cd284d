"""Batches sliced from uint8 tensors: no per-sample Python or PIL work in the epoch loop.

The whole split is moved to the device once (as uint8, a quarter of float32's size); each
batch is an index into it, converted to float, normalised and augmented as one tensor.
"""

from __future__ import annotations

import torch

from xraybench.data.sources import Split


class BatchLoader:
    def __init__(self, split: Split, batch_size: int, *, device: torch.device, channels: int = 1,
                 mean: float | tuple[float, ...] = 0.5, std: float | tuple[float, ...] = 0.5,
                 shuffle: bool = False, seed: int = 0, augment: tuple[str, ...] = ()):
        self.device = torch.device(device)
        non_blocking = self.device.type == "cuda"
        self.images = split.images.to(self.device, non_blocking=non_blocking)
        self.labels = split.labels.to(self.device, non_blocking=non_blocking)
        self.batch_size, self.channels, self.shuffle, self.augment = batch_size, channels, shuffle, augment
        # (x/255 - mean) / std = x * scale - shift, per channel after grayscale is replicated.
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, -1, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std_t), mean_t / std_t
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
            x = x.float()
            if self.augment:
                x = self._augment(x)
            yield x.expand(-1, self.channels, -1, -1) * self.scale - self.shift, y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if "hflip" in self.augment:
            flip = torch.rand(b, 1, 1, 1, device=x.device, generator=self.augment_rng) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        if "brightness" in self.augment:  # on the 0–255 scale, before normalisation
            x = x + 51.0 * (torch.rand(b, 1, 1, 1, device=x.device, generator=self.augment_rng) - 0.5)
        return x


class TensorLoader:
    """Batches of ready float tensors (e.g. cached backbone features), with the BatchLoader's interface."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0):
        self.x, self.labels, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.device = x.device
        self.order_rng = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self):
        n = self.num_images
        order = torch.randperm(n, generator=self.order_rng).to(self.device) if self.shuffle else torch.arange(n, device=self.device)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.labels[index]
