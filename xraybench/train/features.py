"""The frozen backbone's feature cache: its output for every image, computed once, for the head to train on.

A frozen backbone (and no augmentation) gives the same features every epoch; the head's epochs then cost a
fraction of the whole model's (docs/performance.md). The pass is forward-only: it runs at the case's
``memory.ForwardBatch``, halved where it runs out of CUDA memory.
"""

from __future__ import annotations

import torch
from torch import nn

from xraybench.data import BatchLoader
from xraybench.data.batches import TensorLoader
from xraybench.train import memory, speedups
from xraybench.train.precision import Precision


def cached_features(backbone: nn.Module, loaders, tr, forward_batch: memory.ForwardBatch, precision: Precision):
    """The train (shuffled), validation and test loaders over the frozen backbone's features, computed once from
    the image loaders (train in order), which the caller then lets go."""
    in_order, val_loader, test_loader = loaders
    kept = dict(seed=tr.seed, precision=precision, forward_batch=forward_batch)
    train = feature_loader(backbone, in_order, tr.batch_size, shuffle=True, **kept)
    val, test = (
        feature_loader(backbone, loader, forward_batch.size, shuffle=False, **kept)
        for loader in (val_loader, test_loader)
    )
    return train, val, test


def feature_loader(
    backbone: nn.Module,
    loader: BatchLoader,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    precision: Precision,
    forward_batch: memory.ForwardBatch | None = None,
) -> TensorLoader:
    """The backbone's output for every image, in the shape the head takes: a vector for most heads,
    a feature map for SqueezeNet's convolutional head and ConvNeXt's LayerNorm2d."""
    assert not getattr(loader, "shuffle", False), "features are paired with labels in order"
    forward_batch = forward_batch or memory.ForwardBatch(loader.batch_size)
    features = forward_batch.run(loader, lambda: _features(backbone, loader, precision))
    return TensorLoader(features, loader.labels, batch_size, shuffle=shuffle, seed=seed)


@torch.no_grad()  # not inference_mode: the head trains on these tensors with autograd
def _features(backbone: nn.Module, loader: BatchLoader, precision: Precision) -> torch.Tensor:
    backbone.eval()
    features = []
    pad = speedups.pads(loader)
    for x, _ in loader:
        with precision.autocast(loader.device):
            features.append(backbone(speedups.padded(x, loader.batch_size) if pad else x)[: x.shape[0]].float())
    return torch.cat(features)
