"""The homework's own training loop, as the seeds wrote it: the baseline against which
xraybench's speed is measured (benchmarks/speed_vs_reference.py).

ImageFolder with per-sample PIL transforms (Grayscale, Resize, ToTensor, Normalize), a
DataLoader of batch 32, fp32, the case's loss, Adam (and the case's learning-rate schedule),
and a validation pass every epoch.
A frozen backbone still runs forward every epoch, as in seed 003. The test split is
evaluated once at the end. The seeds tested their last weights; here, as in xraybench, the
best-on-validation weights are tested, so that an accuracy difference between the two
measures the pipelines, not the selection rule.

``fused_adam=True`` changes nothing but the optimizer's rounding (one fused kernel instead of
PyTorch's per-tensor Adam, the same formula): the benchmark's ``--noise-floor`` run, which
shows how far the loop's own test accuracy moves when only float rounding changes.

``ReferenceLoop.train_epoch()`` runs one epoch at a time, so that the benchmark can
alternate epochs with xraybench's and a slow minute on a shared machine hits both. The
loop keeps its own random stream (dropout), started from the global state at construction:
alternating epochs do not mix the two loops' random numbers.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torchvision import datasets, transforms

from xraybench.train.objectives import Objective


class Shuffled(Sampler):
    """RandomSampler's order with one seeded permutation per epoch (RandomSampler draws two)."""

    def __init__(self, n: int, seed: int):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


class ReferenceLoop:
    def __init__(
        self,
        model: nn.Module,
        root: Path,
        objective: Objective,
        *,
        image_size: int,
        channels: int,
        mean,
        std,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
        fused_adam: bool = False,
    ):
        self.model, self.objective, self.loss_fn = model, objective, objective.make_loss()

        def channel_stats(v):
            return list(v) if isinstance(v, (tuple, list)) else [v] * channels

        tf = transforms.Compose(
            [
                transforms.Grayscale(num_output_channels=channels),
                transforms.Resize((image_size, image_size)),
                transforms.ToTensor(),
                transforms.Normalize(channel_stats(mean), channel_stats(std)),
            ]
        )
        folders = {split: datasets.ImageFolder(str(root / split), tf) for split in ("train", "val", "test")}
        # The order comes from a sampler with its own seeded stream (one randperm per epoch, as
        # xraybench draws it); the DataLoader's own per-epoch seed draw goes to a spare generator.
        order = Shuffled(len(folders["train"]), seed)
        self.loaders = {
            split: DataLoader(
                folder, batch_size=batch_size, sampler=order if split == "train" else None, generator=torch.Generator()
            )
            for split, folder in folders.items()
        }
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay, fused=fused_adam or None)
        self.scheduler = scheduler(self.optimizer) if scheduler else None
        self.rng_state = torch.get_rng_state()
        self.best: tuple[tuple[float, float], dict] | None = None  # ((val acc, -val loss), weights)

    def train_epoch(self) -> float:
        """One training pass and one validation pass; returns their seconds."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            start = time.perf_counter()
            score = self._epoch()
            seconds = time.perf_counter() - start
            self.rng_state = torch.get_rng_state()
        if self.best is None or score > self.best[0]:
            self.best = (score, copy.deepcopy(self.model.state_dict()))
        return seconds

    def _epoch(self) -> tuple[float, float]:
        self.model.train()
        for images, labels in self.loaders["train"]:
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(images), self.objective.target(labels))
            loss.backward()
            self.optimizer.step()
        val_acc, val_loss = self._evaluate("val")
        if self.scheduler is not None:
            self.scheduler.step()
        return val_acc, -val_loss

    @torch.no_grad()
    def _evaluate(self, split: str) -> tuple[float, float]:
        """(accuracy, mean loss) of the current weights on one split."""
        self.model.eval()
        total_loss = correct = 0.0
        for images, labels in self.loaders[split]:
            logits = self.model(images)
            total_loss += self.loss_fn(logits, self.objective.target(labels)).item() * len(labels)
            correct += ((self.objective.pneumonia_prob(logits) > 0.5).long() == labels).sum().item()  # MedMNIST's rule
        n = len(self.loaders[split].dataset)
        return correct / n, total_loss / n

    def test_accuracy(self) -> float:
        """Accuracy of the best-on-validation weights on the test split."""
        self.model.load_state_dict(self.best[1])
        return self._evaluate("test")[0]
