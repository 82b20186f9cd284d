"""The published suite: MedMNIST v2 and MedMNIST+ references as case data, the data each case needs, and the
report's Published results section — verdicts only for the protocol itself, on MedMNIST's own file."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from conftest import NPZ
from pypdf import PdfReader
from scipy import stats as scipy_stats

from xraybench import results, stats
from xraybench.cases import PROFILES, Reference, apply_profile, load_cases, select
from xraybench.cli import main
from xraybench.data import medmnist
from xraybench.data.sources import NpzSource
from xraybench.report.published import DIFFERS, SHORTENED, published_section
from xraybench.results import by_case

SMOKE = ["--profile", "smoke", "--device", "cpu"]


@pytest.fixture(scope="module")
def published():
    return {c.id: c for c in select(load_cases()[0], ["published*"])}


def test_list_shows_each_published_case_with_its_reference(capsys, published):
    assert main(["list", "published*", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "published (test)" in out and out.count("published-") == len(published) == 44
    assert "ACC 0.854, AUC 0.944 (Yang et al., MedMNIST v2" in out  # ResNet-18 (28)
    assert "--data pneumoniamnist@128" in out


def test_the_references_are_the_published_tables(published):
    v2 = published["published-v2-resnet18-28"]
    assert (v2.published.test_acc, v2.published.test_auc, v2.published.runs) == (0.854, 0.944, 1)
    assert v2.model.name == "resnet18_cifar" and v2.train.select_by == "val_auc" and v2.train.scheduler == "multistep"
    assert (v2.train.epochs, v2.train.batch_size, v2.train.lr, v2.train.optimizer) == (100, 128, 1e-3, "adam")
    upsampled = published["published-v2-resnet50-224"]
    assert upsampled.data.resize == "nearest" and upsampled.requires_data == "pneumoniamnist@28"
    assert upsampled.model.options == {"mode": "finetune", "pretrained": False}
    probe = published["published-plus-resnet18-probe-224"]
    assert (probe.published.test_acc, probe.published.test_auc) == (0.8317, 0.9691)
    assert probe.published.test_acc_sd == 0.0013 and probe.published.runs == 3
    assert probe.model.options["mode"] == "linear_probe" and probe.compare == ("published-plus-resnet18-e2e-224",)
    e2e = published["published-plus-resnet18-e2e-28"]
    assert (e2e.published.test_acc, e2e.published.test_auc) == (0.8312, 0.9501)
    assert e2e.data.pad_to == 224 and e2e.data.image_size == 28 and e2e.requires_data == "pneumoniamnist@28"
    assert e2e.train.early_stopping == {"patience": 5, "metric": "val_loss"} and e2e.train.select_by == "val_loss"
    assert (e2e.train.optimizer, e2e.train.lr, e2e.train.weight_decay, e2e.train.batch_size) == (
        "adamw",
        1e-4,
        0.01,
        64,
    )
    assert any("seeds 0, 1, 2" in d for d in e2e.published.deviations)
    assert {c.model.name for c in published.values() if c.task != "V2"} == {
        "timm_resnet18",
        "timm_densenet121",
        "alexnet",
        "timm_vgg16",
        "timm_efficientnet_b4",
    }
    assert (e2e.train.val_loss, e2e.train.eval_batch_size) == ("batch_mean", 256)


def test_profiles_cap_the_padded_canvas(published):
    case = published["published-plus-resnet18-e2e-28"]
    assert apply_profile(case, PROFILES["full"]).data.input_size == 224
    assert apply_profile(case, PROFILES["quick"]).data.input_size == 64
    smoke = apply_profile(case, PROFILES["smoke"]).data
    assert (smoke.image_size, smoke.pad_to) == (28, 32)


def test_an_npz_is_identified_by_its_side_and_its_md5(tmp_path, monkeypatch):
    identity = medmnist.identify(NpzSource(NPZ))
    assert identity.size == 28 and identity.official == ""  # a subset: accepted, never official
    assert identity.satisfies("pneumoniamnist@28") and not identity.satisfies("pneumoniamnist@64")
    from medmnist.info import INFO  # the catalogue whose MD5s make a file official

    md5 = hashlib.md5(NPZ.read_bytes()).hexdigest()
    monkeypatch.setitem(INFO["pneumoniamnist"], "MD5", md5)  # as if it were MedMNIST's file
    official = medmnist.identify(NpzSource(NPZ))
    assert official.official == "pneumoniamnist@28" and official.satisfies("PneumoniaMNIST@28")
    big = tmp_path / "big.npz"
    np.savez(
        big,
        **{f"{s}_images": np.zeros((4, 64, 64), np.uint8) for s in ("train", "val", "test")},
        **{f"{s}_labels": np.array([[0], [1], [0], [1]]) for s in ("train", "val", "test")},
    )
    assert medmnist.identify(NpzSource(big)).size == 64
    assert medmnist.identify(NpzSource(big)).satisfies("pneumoniamnist@64")


def test_a_smoke_run_on_the_subset_reports_without_a_verdict(tmp_path):
    out = tmp_path / "reports"
    assert main(["run", "published*", *SMOKE, "--seeds", "2", "--data", str(NPZ), "--out", str(out)]) == 0
    run_dir = out / "smoke-cpu-pneumoniamnist-28-subset"
    doc = json.loads((run_dir / "results.json").read_text())
    assert [r["id"] for r in doc["cases"]] == ["published-v2-resnet18-28"] * 2
    assert doc["data"]["medmnist"]["size"] == 28 and doc["data"]["medmnist"]["official"] == ""
    assert doc["cases"][0]["published"]["test_acc"] == 0.854
    text = " ".join(page.extract_text() for page in PdfReader(run_dir / "report.pdf").pages)
    text = " ".join(text.split())
    assert "Published results" in text and "85.4 (1 run, no sd)" in text
    assert text.count(SHORTENED) == 2 and "consistent" not in text and "ours higher" not in text
    assert "not MedMNIST's file" in text and "profile smoke: 2 epochs at 28 px" in text


def test_on_other_data_the_cases_are_skipped_with_the_command_that_runs_them(tmp_path, capsys):
    out = tmp_path / "reports"
    assert main(["run", "hw3-a-*", "published-v2-resnet18-28", *SMOKE, "--out", str(out)]) == 0
    assert (
        "skipped 1 case(s) that need other data than synthetic; run them with: xraybench run 'published*' "
        "--data pneumoniamnist@28"
    ) in capsys.readouterr().out.replace("\n    ", " ")  # wrapped at 100 columns
    run_dir = out / "smoke-cpu-synthetic"
    row = next(
        r for r in json.loads((run_dir / "results.json").read_text())["cases"] if r["id"] == "published-v2-resnet18-28"
    )
    assert row["status"] == "skipped" and row["history"] == []  # never trained on the synthetic data
    assert "xraybench run 'published*' --data pneumoniamnist@28" in row["reason"]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(run_dir / "report.pdf").pages).split())
    assert "Not run: 1 case(s) need --data pneumoniamnist@28" in text


def _doc(values, *, profile="full", official="pneumoniamnist@28", published=0.854, sd=0.0, runs=1):
    rows = [
        {
            "id": "published-x",
            "suite": "published",
            "task": "V2",
            "seed": seed,
            "status": "ok",
            "requires_data": "pneumoniamnist@28",
            "config": {"train": {"epochs": 100}, "data": {"image_size": 28}},
            "published": {
                "source": "S",
                "table": "T",
                "protocol": "P",
                "test_acc": published,
                "test_acc_sd": sd,
                "test_auc": 0.0,
                "test_auc_sd": 0.0,
                "runs": runs,
                "deviations": ["declared"],
            },
            "metrics": {"test_acc": v},
        }
        for seed, v in enumerate(values)
    ]
    return {
        "profile": profile,
        "cases": rows,
        "settings": {"precision": {"name": "fp32"}},
        "software": {"device": "cuda", "gpu": {"name": "NVIDIA H200"}, "torch": "2.14.1"},
        "data": {
            "name": "pneumoniamnist",
            "splits": {"test": {"images": 624}},
            "medmnist": {"size": 28, "official": official, "md5": "28209eda62fecd6e6a2d98b1501bb15f"},
        },
    }


def _verdicts(doc):
    run = results.parse({"schema_version": 2, **doc}, "a test's run")
    section = published_section(run, list(by_case(run).values()))
    return [row[-1] for row in section["table"].rows], section


def test_the_verdict_follows_the_test_in_the_full_profile_on_the_official_file():
    higher, section = _verdicts(_doc([0.90, 0.91, 0.89, 0.905, 0.895]))
    assert higher[0].startswith("ours higher (p")
    assert section["deviations"][0]["differences"] == [
        "5 seeds (published: 1 run)",
        "hardware: NVIDIA H200, torch 2.14.1",
        "declared",
    ]
    assert _verdicts(_doc([0.80, 0.81, 0.79]))[0][0].startswith("ours lower")
    assert _verdicts(_doc([0.84, 0.87, 0.85, 0.86, 0.855]))[0][0].startswith("consistent")
    # A published sd over three runs widens the test: the same seeds 4 points above a noisy mean are consistent.
    noisy = _verdicts(_doc([0.88, 0.90, 0.89], published=0.85, sd=0.03, runs=3))[0][0]
    assert noisy.startswith("consistent"), noisy
    assert _verdicts(_doc([0.90]))[0][0].startswith("one seed: no verdict")


def test_consistent_says_what_the_test_could_detect():
    consistent = _verdicts(_doc([0.84, 0.87, 0.85, 0.86, 0.855]))[0][0]
    result = stats.against_published([0.84, 0.87, 0.85, 0.86, 0.855], 0.854)
    # The smallest difference the test calls: the interval's half-width, a t quantile times the standard error.
    se = np.std([0.84, 0.87, 0.85, 0.86, 0.855], ddof=1) * np.sqrt(1 / 5 + 1)
    assert result.critical_difference == pytest.approx(scipy_stats.t.ppf(0.975, 4) * se)
    assert consistent.startswith(f"consistent within ±{100 * result.critical_difference:.1f} pp (p")
    assert abs(result.difference) < result.critical_difference


def test_a_precision_other_than_fp32_or_another_model_withholds_the_verdict():
    bf16 = _doc([0.90, 0.91, 0.89])
    bf16["settings"]["precision"]["name"] = "bf16"
    for row in bf16["cases"]:
        row["metrics"]["precision"] = "bf16"
    verdicts, section = _verdicts(bf16)
    assert verdicts[0] == f"{DIFFERS}: bf16 autocast (published: fp32)"
    assert "bf16 autocast (published: fp32)" in section["deviations"][0]["differences"]
    mixed = _doc([0.90, 0.91, 0.89])
    for row, name in zip(mixed["cases"], ["fp32", "bf16", "fp32"]):
        row["metrics"]["precision"] = name  # a run resumed in another precision
    verdicts, section = _verdicts(mixed)
    assert verdicts[0] == f"{DIFFERS}: bf16 autocast in 1 of 3 trainings (published: fp32)"
    assert "bf16 autocast in 1 of 3 trainings (published: fp32)" in section["deviations"][0]["differences"]
    # The run's precision was bf16 but these trainings ran in fp32 (a published case under --precision auto).
    fp32_rows = _doc([0.90, 0.91, 0.89])
    fp32_rows["settings"]["precision"]["name"] = "bf16"
    for row in fp32_rows["cases"]:
        row["metrics"]["precision"] = "fp32"
    assert _verdicts(fp32_rows)[0][0].startswith("consistent within")
    other_weights = _doc([0.90, 0.91, 0.89])
    for row in other_weights["cases"]:
        row["published"]["protocol_differs"] = ["ImageNet weights from torchvision (published: timm's)"]
    verdicts, section = _verdicts(other_weights)
    assert verdicts[0] == f"{DIFFERS}: ImageNet weights from torchvision (published: timm's)"
    assert "ImageNet weights from torchvision (published: timm's)" in section["deviations"][0]["differences"]


def test_published_cases_train_in_fp32_unless_asked(published):
    from xraybench.runner.plan import case_precision
    from xraybench.train.precision import Precision

    auto = Precision("bf16", "auto: CUDA compute capability 9.0 has native bf16")
    case, homework = published["published-v2-resnet18-28"], load_cases()[0][0]
    assert case_precision(case, auto).name == "fp32"
    assert case_precision(homework, auto) == auto
    asked = Precision("bf16", "requested")
    assert case_precision(case, asked) == asked


def test_no_verdict_off_the_protocol():
    assert _verdicts(_doc([0.90, 0.91, 0.89], profile="quick"))[0] == [SHORTENED]
    other, section = _verdicts(_doc([0.90, 0.91, 0.89], official=""))
    assert other[0] == "not MedMNIST's own file — no verdict"
    assert any(
        d.startswith("data: pneumoniamnist, not MedMNIST's file") for d in section["deviations"][0]["differences"]
    )
    random = _doc([0.90, 0.91, 0.89])
    random["settings"]["random_init"] = True  # --random-init: pretrained backbones from random weights
    verdicts, section = _verdicts(random)
    assert verdicts[0] == "random initialisation — no verdict"
    assert "--random-init: pretrained backbones started from random weights" in section["deviations"][0]["differences"]
    unnamed = _doc([0.90, 0.91, 0.89])
    for row in unnamed["cases"]:
        row["requires_data"] = ""  # no file named: the official file cannot be the one it was measured on
    verdicts, section = _verdicts(unnamed)
    assert verdicts[0] == "not MedMNIST's own file — no verdict"
    assert any(
        d.startswith("data: pneumoniamnist, not MedMNIST's file") for d in section["deviations"][0]["differences"]
    )


def test_a_case_field_names_what_it_needs_and_what_it_cites(tmp_path, published):
    from xraybench.cases import CaseError, load_case_file

    base = (
        'suite = "p"\n[tasks]\nA = "a"\n[[case]]\nid = "p-a"\ntask = "A"\ntitle = "t"\nmodel = { name = "hw3_mlp" }\n'
    )
    for extra, field, message in [
        ('requires_data = "pneumoniamnist@96"\n', "requires_data", "size 96 is not one MedMNIST offers"),
        ('requires_data = "kermany"\n', "requires_data", "expected a MedMNIST name"),
        ('[case.published]\nsource = "S"\ntable = "T"\ntest_acc = 85.4\n', "published.test_acc", "83.12 % is 0.8312"),
        ('[case.published]\nsource = "S"\ntable = "T"\n', "published", "no value"),
        ("[case.published]\ntest_auc = 0.9\n", "published.source", "needs its source"),
    ]:
        path = tmp_path / "p.toml"
        path.write_text(base + extra)
        with pytest.raises(CaseError, match=f"field '{field}'.*{message}"):
            load_case_file(path)
    cited = published["published-v2-resnet18-28"]
    uncited = dataclasses.replace(cited, published=Reference(), requires_data="")
    assert uncited.config_hash == cited.config_hash  # a citation is not configuration


def _built(case):
    """The case's network as a run builds it (no weight files: the architecture is the same without them)."""
    from xraybench.cases import with_random_init
    from xraybench.models import create_model

    case = with_random_init(case)
    return create_model(
        case.model.name,
        in_channels=case.data.channels,
        image_size=case.data.input_size,
        num_outputs=2,
        **case.model.options,
    )


def test_medmnist_v2_at_28_px_takes_three_channels_and_pytorch_default_init(published):
    """MedMNIST v2 converts every image to RGB (as_rgb) and its models.py has no init code: every convolution
    starts kaiming-uniform with a = √5, within ±1/√fan_in (torchvision's kaiming-normal fan-out reaches ~2.4×)."""
    import torch

    for name in ("published-v2-resnet18-28", "published-v2-resnet50-28"):
        case = published[name]
        assert case.data.channels == 3
        model = _built(case)
        assert model.conv1.in_channels == 3 and model.conv1.stride == (1, 1)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        for conv in convs:
            bound = 1 / np.sqrt(conv.weight[0].numel())
            assert conv.weight.abs().max().item() <= bound + 1e-7
        # A uniform draw fills its bound: the largest weight of a big layer is near it, not far inside.
        assert max(c.weight.abs().max().item() * np.sqrt(c.weight[0].numel()) for c in convs) > 0.99


def _dropouts(module):
    """Every dropout and stochastic-depth rate in a network."""
    import torch

    rates = [m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)]
    return rates + [m.drop_prob for m in module.modules() if hasattr(m, "drop_prob")]


def test_medmnist_plus_end_to_end_has_timm_defaults_no_dropout_no_stochastic_depth(published):
    for size in (28, 224):
        for model in ("vgg16", "efficientnet-b4"):
            net = _built(published[f"published-plus-{model}-e2e-{size}"])
            assert all(rate == 0 for rate in _dropouts(net)), (model, _dropouts(net))
            trainable = [p for p in net.parameters() if p.requires_grad]
            assert len(trainable) == len(list(net.parameters()))


def test_medmnist_plus_probes_train_the_last_layer_with_the_backbone_in_train_mode(published):
    import torch

    probe = _built(published["published-plus-alexnet-probe-28"])
    assert {n for n, p in probe.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert sorted(_dropouts(probe.backbone)) == [0.5, 0.5]
    probe.train()
    x = torch.randn(2, 3, 224, 224)
    torch.manual_seed(0)
    first = probe(x)
    assert not torch.equal(first, probe(x))  # dropout is active while the last layer learns
    resnet = _built(published["published-plus-resnet18-probe-28"])
    before = resnet.backbone.bn1.running_mean.clone()
    resnet.train()
    resnet(torch.randn(4, 3, 64, 64))
    assert not torch.equal(before, resnet.backbone.bn1.running_mean)  # BatchNorm adapts, as in model.train()
    assert not resnet.features_fixed  # so the engine never caches its features


def test_the_validation_loss_averages_batches_of_256_as_medmnist_plus():
    from xraybench.train.selection import VAL_LOSSES

    losses = np.r_[np.full(512, 0.1), np.full(12, 1.0)]  # PneumoniaMNIST's 524 validation images: 256 + 256 + 12
    assert VAL_LOSSES["image_mean"](losses, 256) == pytest.approx((512 * 0.1 + 12) / 524)
    assert VAL_LOSSES["batch_mean"](losses, 256) == pytest.approx((0.1 + 0.1 + 1.0) / 3)
