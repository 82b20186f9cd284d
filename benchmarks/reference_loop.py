"""The homework's own training loop, as the seeds wrote it: the baseline against which
xraybench's speed is measured (benchmarks/speed_vs_reference.py).

ImageFolder with per-sample PIL transforms (Grayscale, Resize, ToTensor, Normalize), a
DataLoader of batch 32, fp32, BCEWithLogitsLoss, Adam, StepLR, and a validation pass every
epoch. The test split is evaluated once at the end with the last weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def reference_fit(model: nn.Module, root: Path, *, image_size: int, epochs: int, batch_size: int = 32,
                  lr: float = 1e-3, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.Grayscale(), transforms.Resize((image_size, image_size)),
                             transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    loaders = {split: DataLoader(datasets.ImageFolder(str(root / split), tf), batch_size=batch_size,
                                 shuffle=split == "train")
               for split in ("train", "val", "test")}
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    epoch_times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for images, labels in loaders["train"]:
            optimizer.zero_grad()
            loss = criterion(model(images), labels.float().unsqueeze(1))
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for images, labels in loaders["val"]:
                criterion(model(images), labels.float().unsqueeze(1))
        scheduler.step()
        epoch_times.append(time.perf_counter() - start)
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for images, labels in loaders["test"]:
            correct += ((model(images).squeeze(1) > 0).long() == labels).sum().item()
            total += len(labels)
    return {"s_per_epoch": sum(epoch_times) / len(epoch_times), "test_acc": correct / total}
