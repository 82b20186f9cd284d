import dataclasses
import hashlib
import json

import pytest
import torch
import torch.nn.functional as F

from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.cli import main
from xraybench.data import BatchLoader, cache
from xraybench.data.sources import SyntheticSource
from xraybench.models import backbones
from xraybench.models.backbones import TORCHVISION_BACKBONES, lite0_imagenet
from xraybench.models.registry import create_model
from xraybench.train.engine import train_case
from xraybench.train.features import feature_loader
from xraybench.train.precision import FP32

SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-report"]


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def imagenet_top5(model, image) -> list[int]:
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255).unsqueeze(0)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return model((x - 0.5) / 0.5).topk(5).indices[0].tolist()


def test_lite0_weights_are_imagenet_trained():
    """No network: the packaged weights classify scikit-image's bundled photos."""
    skimage_data = pytest.importorskip("skimage.data")
    model = lite0_imagenet().eval()
    assert imagenet_top5(model, skimage_data.chelsea())[0] in range(281, 286)  # tabby … Egyptian cat
    assert imagenet_top5(model, skimage_data.coffee())[0] in (967, 968)  # espresso, cup


@pytest.mark.parametrize("backbone", [b.name for b in TORCHVISION_BACKBONES] + ["efficientnet_lite0"])
def test_every_backbone_gets_a_new_head(backbone):
    for outputs in (1, 2):
        model = create_model(backbone, in_channels=3, image_size=64, num_outputs=outputs, pretrained=False).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 64, 64)).shape == (2, outputs)


ALL_BACKBONES = [b.name for b in TORCHVISION_BACKBONES] + ["efficientnet_lite0"]


@pytest.mark.parametrize("backbone", ALL_BACKBONES)
def test_the_head_on_cached_features_equals_the_whole_model(backbone):
    """What the frozen cases' feature cache relies on, for every backbone: SqueezeNet's head is a
    1×1 convolution and ConvNeXt's starts with LayerNorm2d, so their features stay feature maps."""
    model = create_model(backbone, in_channels=3, image_size=64, num_outputs=2, mode="frozen", pretrained=False).eval()
    split = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 64).open().splits["val"]
    mean, std = model.normalization or (0.5, 0.5)
    loader = BatchLoader(split, 16, device="cpu", channels=3, mean=mean, std=std)
    features = feature_loader(model.backbone, loader, 16, shuffle=False, seed=0, precision=FP32)
    with torch.no_grad():
        cached = torch.cat([model.head(x) for x, _ in features])
        whole = torch.cat([model(x) for x, _ in loader])
    assert cached.shape == (len(split), 2)
    torch.testing.assert_close(cached, whole, rtol=1e-4, atol=1e-5)


def test_every_backbone_and_mode_runs_with_random_init(tmp_path, capsys):
    """All torchvision cases, fine-tuned and frozen (feature cache on), at smoke size, no weight files."""
    out = tmp_path / "reports"
    assert main(["run", "hw4-[bc]-*", *SMOKE, "--precision", "fp32", "--random-init", "--out", str(out)]) == 0
    doc = json.loads((out / "smoke-cpu-synthetic-random-init" / "results.json").read_text())
    rows = {r["id"]: r for r in doc["cases"]}
    hw4_models = {c.model.name for c in load_cases()[0] if c.suite == "hw4"}
    expected = {
        f"hw4-{t}-{b.name.replace('_', '-')}" for t in "bc" for b in TORCHVISION_BACKBONES if b.name in hw4_models
    }
    assert len(expected) >= 20
    assert expected <= set(rows)
    assert {i: r["status"] for i, r in rows.items() if r["status"] != "ok"} == {}
    assert doc["settings"]["random_init"] is True
    for row in rows.values():
        assert row["config"]["model"]["options"]["pretrained"] is False
        assert row["title"].endswith("(random initialisation — not a pretrained result)")
        if row["mode"] == "frozen":
            assert row["metrics"]["feature_pass_s"] is not None
    assert rows["hw4-b-alexnet"]["config"]["data"]["image_size"] == 63  # its smallest input, above smoke's 32
    # Never a baseline.
    assert main(["baseline", "save", str(out / "smoke-cpu-synthetic-random-init"), "--dir", str(tmp_path)]) == 2
    assert "random initialisation" in capsys.readouterr().err and not list(tmp_path.glob("*.json"))


def test_frozen_trains_only_the_head_and_keeps_batchnorm_statistics():
    model = create_model("efficientnet_lite0", in_channels=3, image_size=32, num_outputs=1, mode="frozen")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    before = {k: v.clone() for k, v in model.backbone.state_dict().items() if "running" in k}
    model.train()
    assert not model.backbone.training and model.head.training
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    after = model.backbone.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


@pytest.mark.parametrize("backbone, hidden", [("alexnet", True), ("vgg16", True), ("resnet18", False)])
def test_linear_probe_trains_only_the_last_layer(backbone, hidden):
    """MedMNIST+'s linear probing: one Linear layer on frozen features. ``frozen`` trains the whole classifier,
    which for AlexNet and VGG holds two hidden layers of 4,096; for ResNet the two modes are the same."""

    def trainable(mode):
        model = create_model(backbone, in_channels=3, image_size=64, num_outputs=2, mode=mode, pretrained=False)
        return model, {n: p.shape for n, p in model.named_parameters() if p.requires_grad}

    probe, probed = trainable("linear_probe")
    _, frozen = trainable("frozen")
    assert set(probed) == {"head.weight", "head.bias"} and probed["head.weight"][0] == 2
    assert (len(frozen) > 2) is hidden
    # The fixed backbone runs in the model's mode, as MedMNIST+'s model.train(): dropout and BatchNorm as in training.
    probe.train()
    assert probe.backbone.training and probe(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    assert not probe.features_fixed and probe.backbone_frozen
    probe.eval()
    assert not probe.backbone.training


def test_feature_cache_gives_the_same_metrics():
    case = next(c for c in load_cases()[0] if c.id == "hw4-c-efficientnet-lite0")
    case = apply_profile(case, PROFILES["smoke"])
    case = dataclasses.replace(case, train=dataclasses.replace(case.train, epochs=1))
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), case.data.image_size).open()
    cached = train_case(case, data, torch.device("cpu"))
    direct = train_case(
        dataclasses.replace(case, train=dataclasses.replace(case.train, feature_cache=False)), data, torch.device("cpu")
    )
    assert cached["metrics"]["feature_pass_s"] is not None and direct["metrics"]["feature_pass_s"] is None
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert cached["history"][0][key] == pytest.approx(direct["history"][0][key], abs=1e-4), key
    for key in ("test_loss", "test_acc", "test_auc"):
        assert cached["metrics"][key] == pytest.approx(direct["metrics"][key], abs=1e-4), key


def test_missing_weights_skip_with_the_path(tmp_path, empty_torch_home, capsys):
    assert main(["run", "hw4-[bc]-resnet18", "hw4-c-efficientnet-lite0", *SMOKE, "--out", str(tmp_path)]) == 0
    rows = {r["id"]: r for r in json.loads((tmp_path / "smoke-cpu-synthetic" / "results.json").read_text())["cases"]}
    expected = empty_torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    for case_id in ("hw4-b-resnet18", "hw4-c-resnet18"):
        assert rows[case_id]["status"] == "skipped"
        assert f"place resnet18-f37072fd.pth at {expected}" in rows[case_id]["reason"]
    assert rows["hw4-c-efficientnet-lite0"]["status"] == "ok"  # built-in weights, offline
    assert main(["weights", "--cases", "benchmarks/cases/hw4.toml"]) == 0
    listing = capsys.readouterr().out
    assert str(expected) in listing and "MISSING" in listing


def test_placed_weights_are_found_checked_and_used(tmp_path, empty_torch_home, monkeypatch):
    """A state dict saved under the expected name in TORCH_HOME is loaded (its name carries its hash)."""
    resnet = next(b for b in TORCHVISION_BACKBONES if b.name == "resnet18")
    model = create_model("resnet18", in_channels=3, image_size=32, num_outputs=1000, pretrained=False)
    state = {f"{k}": v for k, v in model.backbone.state_dict().items()}
    state.update({f"fc.{k}": v for k, v in model.head.state_dict().items()})
    staging = tmp_path / "staged.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    real = resnet.weights_enum()
    fake_url = f"https://example.invalid/models/resnet18-{digest[:8]}.pth"
    monkeypatch.setattr(
        type(resnet),
        "weights_enum",
        lambda self: type("W", (), {"url": fake_url, "meta": real.meta, "transforms": real.transforms})(),
    )
    target = empty_torch_home / "hub" / "checkpoints" / f"resnet18-{digest[:8]}.pth"
    target.parent.mkdir(parents=True)
    staging.rename(target)
    loaded = create_model("resnet18", in_channels=3, image_size=32, num_outputs=2)
    assert torch.equal(loaded.backbone.conv1.weight, model.backbone.conv1.weight)
    assert main(["run", "hw4-b-resnet18", *SMOKE, "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "smoke-cpu-synthetic" / "results.json").read_text())["cases"][0]
    assert row["status"] == "ok"


def test_corrupt_weights_are_never_loaded(tmp_path, empty_torch_home):
    path = empty_torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the original weights")
    assert main(["run", "hw4-b-resnet18", *SMOKE, "--out", str(tmp_path)]) == 1
    row = json.loads((tmp_path / "smoke-cpu-synthetic" / "results.json").read_text())["cases"][0]
    assert row["status"] == "failed" and "not loaded" in row["reason"] and str(path) in row["reason"]


def test_weights_file_names_come_from_torchvision():
    names = {b.name: b.weights_file().path.name for b in TORCHVISION_BACKBONES}
    assert names["resnet18"] == "resnet18-f37072fd.pth"
    assert backbones.lite0_weights_file().present


def test_timm_weights_load_from_the_checked_file_through_timms_own_loading(tmp_path, empty_torch_home, monkeypatch):
    """MedMNIST+'s models: timm's weights (here a stand-in saved under a name carrying its SHA-256 prefix) go in
    through timm.create_model's own loading, which drops the ImageNet classifier for a new one; a damaged file
    is never loaded."""
    import timm

    from xraybench.models import backbones, weights

    source = timm.create_model("resnet18.a1_in1k", pretrained=False)  # 1000 classes, as timm's file holds
    staging = tmp_path / "staged.pth"
    torch.save(source.state_dict(), staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    spec = dataclasses.replace(
        next(b for b in backbones.TIMM_BACKBONES if b.name == "timm_resnet18"),
        url=f"https://example.invalid/resnet18_a1_0-{digest[:8]}.pth",
    )
    target = spec.weights_file().path
    target.parent.mkdir(parents=True)
    staging.rename(target)
    model = spec.build(in_channels=3, num_outputs=2, mode="finetune", pretrained=True)
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    assert model.head.out_features == 2 and model.normalization[0] == (0.485, 0.456, 0.406)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    target.write_bytes(b"damaged")
    damaged = dataclasses.replace(spec, url=f"https://example.invalid/resnet18_a1_0-{digest[:8]}.pth")
    with pytest.raises(weights.WeightsCorrupt):
        damaged.build(in_channels=3, num_outputs=2, mode="finetune", pretrained=True)
