"""Building a backbone of ``backbones``: the torchvision (or timm) model with its weights checked and loaded, its
classifier's last layer replaced for ``num_outputs`` (``TransferModel``). Imported when a backbone is built, so
declaring the backbones (``backbones``) needs neither torch nor torchvision."""

from __future__ import annotations

import torchvision
from torch import nn

from xraybench.models import weights as weights_mod
from xraybench.models.backbones import MODES, TorchvisionBackbone, lite0_weights_file


class TransferModel(nn.Module):
    """A backbone whose classifier was removed, and a new head for ``num_outputs``.

    ``frozen``: the backbone is fixed and stays in eval mode (BatchNorm's running statistics, no dropout), so
    its features are the same every epoch and the engine may compute them once (``features_fixed``).
    ``linear_probe``: the backbone is fixed too, but runs in the model's mode, as MedMNIST+'s ``model.train()``
    has it: while the last layer learns, dropout is active and BatchNorm normalises with each batch's
    statistics and updates its running ones; its features change with the batch, so they are never cached."""

    def __init__(self, backbone: nn.Module, head: nn.Module, mode: str, mean, std):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.backbone, self.head, self.mode = backbone, head, mode
        # The weights' normalisation; None without weights (from scratch), where the case's applies.
        self.normalization = None if mean is None else (tuple(mean), tuple(std))
        self.backbone_frozen = mode != "finetune"
        self.features_fixed = mode == "frozen"
        if self.backbone_frozen:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.features_fixed:
            self.backbone.eval()  # BatchNorm running statistics must not drift
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def build_torchvision(
    spec: TorchvisionBackbone, *, in_channels: int, num_outputs: int, mode: str, pretrained: bool
) -> TransferModel:
    _check_rgb(in_channels, spec.name)
    w = spec.weights_enum()
    extra = (
        {"aux_logits": False, "init_weights": False, "transform_input": pretrained} if spec.name == "googlenet" else {}
    )
    model = torchvision.models.get_model(spec.name, weights=None, num_classes=len(w.meta["categories"]), **extra)
    if pretrained:
        state = weights_mod.load_state_dict(spec.weights_file())
        if spec.name == "googlenet":  # the auxiliary classifiers are not built
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
        model.load_state_dict(state)
    transforms = w.transforms()
    head = _new_head(getattr(model, spec.head), num_outputs)
    setattr(model, spec.head, nn.Identity())
    # SqueezeNet's forward flattens after its (conv) classifier: keep only its feature stack.
    backbone = model.features if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Flatten) else model
    if mode == "linear_probe" and isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Linear):
        backbone, head = nn.Sequential(backbone, *list(head)[:-1]), head[-1]  # hidden layers join the backbone
    if not pretrained:
        return TransferModel(backbone, head, mode, None, None)
    return TransferModel(backbone, head, mode, transforms.mean, transforms.std)


def build_timm(spec, *, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
    """As MedMNIST+'s train.py: ``timm.create_model(arch, pretrained=True, num_classes=num_outputs)``, timm's own
    defaults (no dropout, no stochastic depth) and timm's loading (its checkpoint filter, a new classifier), from
    our hash-checked file instead of the hub. The classifier becomes the head; the rest, the backbone."""
    import timm

    _check_rgb(in_channels, spec.name)
    overlay = {"state_dict": weights_mod.load_state_dict(spec.weights_file())} if pretrained else None
    model = timm.create_model(spec.arch, pretrained=pretrained, pretrained_cfg_overlay=overlay, num_classes=num_outputs)
    head = model.get_classifier()
    model.reset_classifier(0)  # the backbone now returns pooled features
    cfg = model.pretrained_cfg
    return TransferModel(model, head, mode, cfg["mean"] if pretrained else None, cfg["std"])


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


def build_lite0(*, in_channels: int, num_outputs: int, mode: str, pretrained: bool) -> TransferModel:
    import timm

    _check_rgb(in_channels, "efficientnet_lite0")
    model = lite0_imagenet() if pretrained else timm.create_model("tf_efficientnet_lite0", pretrained=False)
    head = nn.Linear(model.num_features, num_outputs)
    model.reset_classifier(0)  # the backbone now returns pooled features
    return TransferModel(model, head, mode, mean=(0.5, 0.5, 0.5) if pretrained else None, std=(0.5, 0.5, 0.5))
