import pytest
import torch

from xraybench.models.registry import create_model, list_models, model_options

VARIANTS = [
    ("hw3_cnn", {}),
    ("hw3_cnn", {"dropout": 0.6}),
    ("hw3_mlp", {}),
    ("hw3_gap_cnn", {}),
    ("hw3_gap_cnn", {"conv3_channels": 128, "head_hidden": 128}),
]


def test_registry_lists_hw3_models():
    assert list_models("hw3*") == ["hw3_cnn", "hw3_gap_cnn", "hw3_mlp"]
    assert model_options("hw3_cnn") == {"dropout": 0.0}


@pytest.mark.parametrize("name, options", VARIANTS)
@pytest.mark.parametrize("size", [28, 32, 64, 100, 256])
@pytest.mark.parametrize("channels, outputs", [(1, 1), (3, 2)])
def test_output_shape_for_any_input_size(name, options, size, channels, outputs):
    model = create_model(name, in_channels=channels, image_size=size, num_outputs=outputs, **options)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, outputs)


def test_seed_architecture_at_256():
    cnn = create_model("hw3_cnn", in_channels=1, image_size=256, num_outputs=1)
    fc1 = next(m for m in cnn if isinstance(m, torch.nn.Linear))
    assert fc1.in_features == 32 * 32 * 32  # as hard-coded in the seed
    mlp = create_model("hw3_mlp", in_channels=1, image_size=256, num_outputs=1)
    widths = [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)]
    dropouts = [m.p for m in mlp if isinstance(m, torch.nn.Dropout)]
    assert widths == [512, 256, 256, 1] and dropouts == [0.9, 0.9, 0.8]


def test_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        create_model("nope", in_channels=1, image_size=32, num_outputs=1)


@pytest.mark.parametrize("name, reference", [("resnet18_cifar", "resnet18"), ("resnet50_cifar", "resnet50")])
def test_cifar_stem_resnets_keep_28_pixels_into_the_first_block(name, reference):
    """MedMNIST v2's 28-pixel ResNets: a 3×3 stride-1 stem and no max-pool, so layer1 sees 28×28 (the
    ImageNet stem would leave 7×7); torchvision's blocks, so only the stem's weights differ in number."""
    import torchvision

    model = create_model(name, in_channels=1, image_size=28, num_outputs=2)
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.update(side=o.shape[-1]))  # returns None: output kept
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 2) and seen["side"] == 28
    imagenet = getattr(torchvision.models, reference)(weights=None, num_classes=2)
    assert (
        sum(p.numel() for p in model.parameters())
        == sum(p.numel() for p in imagenet.parameters()) - 64 * 3 * 7 * 7 + 64 * 1 * 3 * 3
    )
