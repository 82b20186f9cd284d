"""Rewrites that make a model train faster without changing what it computes.

Each one was measured (benchmarks/speed_vs_reference.py, docs/performance.md) and is kept
because it helps; none changes a parameter, an output or a gradient.
"""

from __future__ import annotations

import torch
from torch import nn


def uses_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def pool_before_relu(model: nn.Module) -> int:
    """Swap each ``ReLU → MaxPool2d`` pair inside an ``nn.Sequential`` to ``MaxPool2d → ReLU``.

    ReLU is monotonic, so max-pooling commutes with it: outputs and gradients are identical,
    but ReLU and its backward then touch a quarter of the elements (at 64 px the seed's CNN
    spends about a seventh of a training step in them; measured 1.1–1.25× per step).
    Returns the number of pairs swapped.
    """
    swapped = 0
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        names = list(seq._modules)
        i = 0
        while i < len(names) - 1:
            a, b = seq._modules[names[i]], seq._modules[names[i + 1]]
            if type(a) is nn.ReLU and type(b) is nn.MaxPool2d:
                seq._modules[names[i]], seq._modules[names[i + 1]] = b, a
                swapped += 1
                i += 2
            else:
                i += 1
    return swapped


def prepare(model: nn.Module) -> tuple[nn.Module, bool]:
    """The model, rewritten for speed in place; and whether its inputs should be channels-last.

    Convolutions run faster on channels-last tensors (measured on the CPU: 1.2–1.6× per
    training step for the HW3 CNNs and EfficientNet-Lite0; cuDNN prefers them too). A weight with a
    size-1 dimension, such as the HW3 first conv's (32, 1, 3, 3), has two sets of strides that both read as
    channels-last; the fused optimizer needs its gradient's to be the same set (``optim.build_optimizer``).
    """
    pool_before_relu(model)
    channels_last = uses_convolutions(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last


def pads(loader) -> bool:
    """Whether a forward-only pass over ``loader`` pads its ragged batch (``padded``): on CUDA, where cuDNN tunes
    per shape, and where the split has a full batch too (a split smaller than the batch has one shape already).
    The cost: at most one batch of zeros per pass (validation's 524 images at 256: 244, about 2 % of an epoch's
    arithmetic), against tuning two more shapes per process."""
    return loader.device.type == "cuda" and loader.num_images > loader.batch_size


def padded(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` with zero images appended up to ``size`` along the batch: a forward-only pass's ragged last batch
    then has the shape of the others, and cuDNN (``benchmark=True``) tunes one shape instead of one per split.
    Evaluation is per image, so the padding changes no real image's output; the caller drops its rows."""
    missing = size - x.shape[0]
    if missing <= 0:
        return x
    return torch.cat([x, x.new_zeros((missing, *x.shape[1:]))]).contiguous(memory_format=_format_of(x))


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else (torch.contiguous_format)
    )
