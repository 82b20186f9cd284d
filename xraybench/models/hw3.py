"""The HW3 models of seed 004: the baseline CNN, the MLP and the global-average-pooling CNNs.

Each builder works for any square input size: the flatten head's width is computed from
``image_size`` (the seed hard-codes 32·32·32 for 256×256 inputs). Each imports torch when called:
registering them (importing this module) does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xraybench.models.registry import register_model

if TYPE_CHECKING:
    from torch import nn


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    from torch import nn

    return [nn.Conv2d(cin, cout, kernel_size=3, padding="same"), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


def _check_size(image_size: int, divisor: int = 8) -> None:
    if image_size < divisor:
        raise ValueError(f"image_size must be at least {divisor} for three 2×2 poolings, got {image_size}")


@register_model
def hw3_cnn(*, in_channels: int, image_size: int, num_outputs: int, dropout: float = 0.0) -> nn.Module:
    """Three conv3×3(32)+ReLU+maxpool2 blocks, flatten, fc 32 → output.

    ``dropout`` > 0 adds Dropout after conv3 and after fc1, as in HW3 task A.
    """
    from torch import nn

    _check_size(image_size)
    side = image_size // 8
    conv3 = _conv_block(32, 32)
    if dropout:
        conv3.insert(2, nn.Dropout(dropout))  # conv3 → ReLU → Dropout → pool, as in the seed
    return nn.Sequential(
        *_conv_block(in_channels, 32),
        *_conv_block(32, 32),
        *conv3,
        nn.Flatten(),
        nn.Linear(32 * side * side, 32),
        nn.ReLU(inplace=True),
        *([nn.Dropout(dropout)] if dropout else []),
        nn.Linear(32, num_outputs),
    )


@register_model
def hw3_mlp(
    *,
    in_channels: int,
    image_size: int,
    num_outputs: int,
    hidden: tuple[int, ...] = (512, 256, 256),
    dropout: tuple[float, ...] = (0.9, 0.9, 0.8),
) -> nn.Module:
    """Flatten → (Linear + BatchNorm1d + ReLU + Dropout) per hidden layer → output (HW3 task B)."""
    from torch import nn

    if len(hidden) != len(dropout):
        raise ValueError(f"hidden has {len(hidden)} layers but dropout has {len(dropout)} rates")
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_channels * image_size * image_size
    for h, p in zip(hidden, dropout):
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Dropout(p)]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


@register_model
def hw3_gap_cnn(
    *, in_channels: int, image_size: int, num_outputs: int, conv3_channels: int = 32, head_hidden: int = 0
) -> nn.Module:
    """The CNN with global average pooling instead of the flatten head (HW3 task C).

    ``conv3_channels=128, head_hidden=128`` is the seed's widened variant.
    """
    from torch import nn

    _check_size(image_size)
    head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if head_hidden:
        head += [nn.Linear(conv3_channels, head_hidden), nn.ReLU(inplace=True), nn.Linear(head_hidden, num_outputs)]
    else:
        head.append(nn.Linear(conv3_channels, num_outputs))
    return nn.Sequential(*_conv_block(in_channels, 32), *_conv_block(32, 32), *_conv_block(32, conv3_channels), *head)
