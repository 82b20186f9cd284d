"""ResNets from scratch with the CIFAR stem, as MedMNIST v2 trains them on 28-pixel images.

The ImageNet stem (7×7 convolution with stride 2, then a 3×3 max-pool) shrinks a 28-pixel image to
7 pixels before the first block; the CIFAR stem (He et al. 2016, §4.2; the MedMNIST/experiments
repository's ``models.py``) is one 3×3 convolution with stride 1 and no pooling, so the blocks see
28, 14, 7 and 4 pixels. The blocks are torchvision's, the same layers in the same order as the published
``models.py`` (kuangliu's pytorch-cifar): its ``shortcut`` is torchvision's ``downsample``, its ``linear``
torchvision's ``fc``. That file has no initialisation code, so every layer starts as PyTorch makes it
(convolutions and the linear layer kaiming-uniform with a = √5: weights within ±1/√fan_in); torchvision's
ResNet re-initialises its convolutions kaiming-normal (fan-out), about 2.4× larger, which is undone here
(``reset_parameters`` on every layer). Imported when a model is built: registering them imports neither torch
nor torchvision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xraybench.models.registry import register_model

if TYPE_CHECKING:
    from torch import nn


def _cifar_stem(model: nn.Module, in_channels: int) -> nn.Module:
    from torch import nn

    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _pytorch_default_init(model: nn.Module) -> nn.Module:
    """Every layer as PyTorch makes it, as the published models.py has them (torchvision's re-init undone)."""
    from torch import nn

    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            layer.reset_parameters()
    return model


@register_model
def resnet18_cifar(*, in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """ResNet-18 from random weights with the CIFAR stem (MedMNIST v2's 28-pixel ResNet-18)."""
    from torchvision.models import resnet18

    return _pytorch_default_init(_cifar_stem(resnet18(weights=None, num_classes=num_outputs), in_channels))


@register_model
def resnet50_cifar(*, in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """ResNet-50 from random weights with the CIFAR stem (MedMNIST v2's 28-pixel ResNet-50)."""
    from torchvision.models import resnet50

    return _pytorch_default_init(_cifar_stem(resnet50(weights=None, num_classes=num_outputs), in_channels))
