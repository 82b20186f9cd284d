"""How cases train: precision chosen by hardware (faked capability queries), the fp32 output layer,
fp16 loss scaling, --deterministic, and how the choices are recorded and checked."""

import dataclasses
import json
import warnings

import pytest
import torch

from xraybench import results
from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.check import environment_warnings
from xraybench.cli import main
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.models.registry import create_model
from xraybench.train import precision, worker
from xraybench.train.engine import train_case
from xraybench.train.precision import Precision, choose, final_layer_in_fp32
from xraybench.train.precision import cpu_flags as read_cpu_flags  # the real one: conftest fakes precision.cpu_flags

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize(
    "capability, expected",
    [((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"), ((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 1), "fp16")],
)
def test_auto_on_cuda_follows_compute_capability(monkeypatch, capability, expected):
    """T4 (7.5) and V100 (7.0) emulate bf16 (torch.cuda.is_bf16_supported() says yes): they get fp16."""
    monkeypatch.setattr(precision, "cuda_capability", lambda device: capability)
    chosen = choose("auto", CUDA)
    assert chosen.name == expected and f"{capability[0]}.{capability[1]}" in chosen.reason
    assert (chosen.name == "fp16") == chosen.grad_scaler(CPU).is_enabled()


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "amx_tile", "amx_bf16"}, "bf16"),
        ({"avx2", "avx512f", "avx512bw"}, "fp32"),
        (set(), "fp32"),
    ],
)
def test_auto_on_the_cpu_needs_native_bf16(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    assert choose("auto", CPU).name == expected


def test_requested_precision_is_kept_and_emulation_is_warned(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    for name in ("fp32", "bf16", "fp16"):
        assert choose(name, CPU) == Precision(name, "requested")
    assert "5× slower" in precision.slow_warning(choose("bf16", CPU), CPU)
    assert "avx512_fp16 or amx_fp16" in precision.slow_warning(choose("fp16", CPU), CPU)
    assert precision.slow_warning(choose("auto", CPU), CPU) is None
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    assert precision.slow_warning(choose("bf16", CPU), CPU) is None
    monkeypatch.setattr(precision, "cuda_capability", lambda device: (7, 5))
    assert "compute capability 7.5 is emulated" in precision.slow_warning(choose("bf16", CUDA), CUDA)
    assert precision.slow_warning(choose("fp16", CUDA), CUDA) is None
    with pytest.raises(precision.PrecisionError, match=r"fp8.*auto, fp32, bf16, fp16"):
        choose("fp8", CPU)


def test_cpu_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    monkeypatch.setattr(precision, "Path", lambda _: fake)
    assert read_cpu_flags() == {"fpu", "avx2", "avx512_bf16"}


@pytest.mark.parametrize("name", ["hw3_cnn", "hw3_mlp", "hw3_gap_cnn", "squeezenet1_0", "resnet18"])
def test_the_output_layer_runs_in_fp32_under_autocast(name):
    channels = 3 if name in ("squeezenet1_0", "resnet18") else 1
    model = create_model(
        name, in_channels=channels, image_size=32, num_outputs=1, **({"pretrained": False} if channels == 3 else {})
    ).eval()
    keys = list(model.state_dict())
    x = torch.randn(4, channels, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x).dtype == torch.bfloat16
    layer = final_layer_in_fp32(model)
    assert isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)) and list(model.state_dict()) == keys
    seen = []
    layer.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0], out.clone())))  # before in-place ReLUs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    ((inputs, layer_out),) = seen
    assert out.dtype == layer_out.dtype == torch.float32
    # The layer's arithmetic is fp32's: its output is exactly the fp32 layer applied to its (bf16) input.
    reference = (
        torch.nn.functional.linear
        if isinstance(layer, torch.nn.Linear)
        else (lambda i, w, b: torch.nn.functional.conv2d(i, w, b))
    )
    assert torch.equal(layer_out, reference(inputs.float(), layer.weight, layer.bias))


def test_the_fp32_output_layer_survives_deepcopy_and_pickling():
    import copy
    import io

    model = create_model("hw3_cnn", in_channels=1, image_size=32, num_outputs=1).eval()
    final_layer_in_fp32(model)
    twin = copy.deepcopy(model)
    torch.nn.init.zeros_(twin[-1].weight)
    torch.nn.init.zeros_(twin[-1].bias)
    x = torch.randn(2, 1, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(twin(x), torch.zeros(2, 1))  # the copy computes with its own weights
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        again = torch.load(buffer, weights_only=False)
        assert torch.equal(again(x), model(x)) and again(x).dtype == torch.float32


def smoke_case(case_id: str, **train):
    case = apply_profile(next(c for c in load_cases()[0] if c.id == case_id), PROFILES["smoke"])
    return dataclasses.replace(case, train=dataclasses.replace(case.train, **train))


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_mixed_precision_trains_and_records_itself(name):
    case = smoke_case("hw3-a-cnn", epochs=2)
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), case.data.image_size).open()
    out = train_case(case, data, CPU, precision=Precision(name, "requested"))
    assert out["metrics"]["precision"] == name
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in out["history"])
    assert out["history"][-1]["train_loss"] != out["history"][0]["train_loss"]  # the weights moved


def test_fp16_scaler_skips_overflowing_steps_instead_of_corrupting_weights():
    """fp16 loss scaling: a step whose gradients overflow is skipped and the scale lowered."""
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = Precision("fp16", "requested").grad_scaler(CPU)
    before = model.weight.detach().clone()
    loss = model(torch.full((2, 4), 1e38)).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(model.weight, before) and scaler.get_scale() < 65536.0


def test_precision_is_in_results_baseline_and_check_warns(tmp_path, capsys):
    out = tmp_path / "reports"
    assert (
        main(
            [
                "run",
                "hw3-a-cnn",
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--no-report",
                "--out",
                str(out),
                "--precision",
                "bf16",
                "--deterministic",
            ]
        )
        == 0
    )
    run = results.read(out / "smoke-cpu-synthetic")
    assert run.settings.dump() == {
        "precision": {"name": "bf16", "reason": "requested"},
        "deterministic": True,
        "random_init": False,
    }
    assert run.cases[0].metrics.precision == "bf16"
    assert "precision: bf16 (requested)" in capsys.readouterr().out
    # Resuming the same run directory in another precision would mix two ways of training.
    assert (
        main(
            [
                "run",
                "hw3-a-cnn",
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--no-report",
                "--out",
                str(out),
                "--precision",
                "fp32",
                "--deterministic",
            ]
        )
        == 2
    )
    assert "precision bf16 (this run: fp32)" in capsys.readouterr().err
    assert main(["baseline", "save", str(out / "smoke-cpu-synthetic"), "--dir", str(tmp_path / "b")]) == 0
    baseline = json.loads((tmp_path / "b" / "smoke-cpu.json").read_text())
    assert baseline["settings"]["precision"]["name"] == "bf16"
    fp32_run = {
        **run.dump(),
        "settings": {"precision": {"name": "fp32", "reason": "requested"}, "deterministic": False},
    }
    assert [w for w in environment_warnings(fp32_run, baseline) if "precision" in w or "deterministic" in w] == [
        "warning: precision differs: baseline bf16, this run fp32 (numbers and times are expected to move)",
        "warning: deterministic differs: baseline True, this run False (numbers and times are expected to move)",
    ]
    # Files from before settings were recorded: fp32 on a CPU, the GPU's autocast where it was noted.
    older = {"schema_version": 1, "cases": []}
    assert results.parse({**older, "software": {"autocast": "bf16"}}, "old").settings.precision.name == "bf16"
    assert results.parse(older, "old").settings.precision.name == "fp32"


def test_deterministic_mode_is_set_for_training_and_ops_without_one_are_recorded(tmp_path, monkeypatch):
    seen = []

    def training(case, *args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark))
        warnings.warn(
            "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but you "
            "set 'torch.use_deterministic_algorithms(True, warn_only=True)'.",
            stacklevel=2,
        )
        return train_case(case, *args, **kwargs)

    monkeypatch.setattr(worker, "train_case", training)
    assert (
        main(
            [
                "run",
                "hw3-c-gap",
                "--profile",
                "smoke",
                "--device",
                "cpu",
                "--no-report",
                "--out",
                str(tmp_path),
                "--deterministic",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    assert seen == [(True, False)]
    row = results.read(tmp_path / "smoke-cpu-synthetic").cases[0]
    assert row.ok and row.nondeterministic_ops == ["adaptive_avg_pool2d_backward_cuda"]


def test_deterministic_runs_repeat_bit_for_bit(tmp_path):
    rows = []
    for k in range(2):
        assert (
            main(
                [
                    "run",
                    "hw3-c-gap",
                    "--profile",
                    "smoke",
                    "--device",
                    "cpu",
                    "--no-report",
                    "--out",
                    str(tmp_path / str(k)),
                    "--deterministic",
                    "--precision",
                    "fp32",
                ]
            )
            == 0
        )
        rows.append(results.read(tmp_path / str(k) / "smoke-cpu-synthetic").cases[0])
    assert rows[0].predictions == rows[1].predictions
    assert [h.train_loss for h in rows[0].history] == [h.train_loss for h in rows[1].history]
