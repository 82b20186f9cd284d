"""How cases train: precision chosen by hardware (faked capability queries), the fp32 output layer,
fp16 loss scaling, --deterministic, and how the choices are recorded and checked."""

import dataclasses
import json
import os
import sys
import warnings

import pytest
import torch

from xraybench import environment, results
from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.check import environment_warnings
from xraybench.cli import main
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.models.registry import create_model
from xraybench.train import precision, trainings, worker
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
        "seed_batching": "auto",  # on a GPU; this CPU trained the seeds apart
        "tf32": False,
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

    monkeypatch.setattr(trainings, "train_case", training)
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


# --device auto on a machine whose NVIDIA GPU this torch cannot use (issue 35): one line, not a silent CPU run.
SMOKE_CPU = ["--profile", "smoke", "--no-report", "--precision", "fp32"]
TOO_OLD = (
    "CUDA initialization: The NVIDIA driver on your system is too old (found version 12020). Please update your "
    "GPU driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx "
    "Alternatively, go to: https://pytorch.org to install a PyTorch version that has been compiled with your version "
    "of the CUDA driver. (Triggered internally at /pytorch/c10/cuda/CUDAFunctions.cpp:119.)"
)


@pytest.fixture
def old_driver(monkeypatch):
    """A CUDA 13.0 build of torch on a machine with an NVIDIA GPU whose driver (535) is too old for it."""
    monkeypatch.setattr(environment, "_said", set())
    monkeypatch.setattr(environment, "_torch_said", [])
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(environment, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(environment, "nvidia_driver_version", lambda: "535.104.05")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_auto_says_once_why_a_gpu_machine_trains_on_the_cpu(old_driver, capsys):
    assert environment.resolve_device("auto") == CPU
    assert environment.resolve_device("auto") == CPU  # the local executor resolves again for every case
    assert worker.probe("auto", "auto")["device"] == "cpu"  # what the CLI asks
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("device: this torch is built for CUDA 13.0 but no GPU is reachable")
    for words in ("NVIDIA driver 535.104.05", "training on the CPU", "needs NVIDIA driver ≥ 580 ", "--device cpu"):
        assert words in err
    assert "≥ 580.65.06 for all of CUDA 13.0" in err and "torch wheel for your driver's CUDA" in err


def test_auto_quotes_torch_warning_instead_of_repeating_it(old_driver, monkeypatch, capsys):
    def too_old():
        warnings.warn(TOO_OLD, UserWarning, stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", too_old)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert environment.resolve_device("auto") == CPU
    assert shown == []
    err = capsys.readouterr().err
    assert "(torch.cuda.is_available() is False: NVIDIA driver 535.104.05; The NVIDIA driver on your system is" in err
    assert "too old (found version 12020))" in err and "Please update" not in err and "Triggered" not in err


def test_device_cuda_refuses_in_one_line_with_the_same_words(old_driver, capsys):
    with pytest.raises(environment.DeviceError, match=r"no CUDA device.*CUDA 13\.0.*needs NVIDIA driver ≥ 580"):
        environment.resolve_device("cuda")
    assert main(["run", "hw3-c-gap", "--device", "cuda", *SMOKE_CPU]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xraybench: error: --device cuda: no CUDA device is available to torch: this torch is built")
    assert "\n" not in err and "driver 535.104.05" in err and "or use --device cpu" in err


def test_a_new_enough_driver_points_elsewhere(old_driver, monkeypatch):
    monkeypatch.setattr(environment, "nvidia_driver_version", lambda: "580.95.05")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    note = environment.cpu_fallback_note()
    assert "Driver 580.95.05 is new enough for CUDA 13.0 (≥ 580)" in note and "CUDA_VISIBLE_DEVICES=3" in note
    assert "needs NVIDIA driver" not in note


@pytest.mark.parametrize(
    "machine",
    [
        {"cuda": None},  # a CPU-only (or ROCm) build of torch
        {"present": False},  # no NVIDIA driver, no nvidia-smi: a machine without a GPU
        {"visible": ""},  # every GPU hidden on purpose
        {"visible": "NoDevFiles"},  # Slurm: a job given no GPU
    ],
)
def test_auto_stays_quiet_where_no_gpu_is_expected(old_driver, monkeypatch, capsys, machine):
    def too_old():
        warnings.warn(TOO_OLD, UserWarning, stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", too_old)
    monkeypatch.setattr(torch.version, "cuda", machine.get("cuda", "13.0"))
    monkeypatch.setattr(environment, "nvidia_gpu_present", lambda: machine.get("present", True))
    if "visible" in machine:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", machine["visible"])
    with pytest.warns(UserWarning, match="CUDA initialization"):  # torch's own warning, as without xraybench
        assert environment.resolve_device("auto") == CPU
        with pytest.raises(environment.DeviceError, match=r"^--device cuda: no CUDA device is available to torch; use"):
            environment.resolve_device("cuda")
    assert capsys.readouterr().err == ""


def test_the_driver_table_and_the_driver_version(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    assert environment._driver_need("12.8") == ("525.60.13", "570.26")
    assert environment._driver_need("13.0") == ("580", "580.65.06")
    assert environment._driver_need("13.3") == ("580", None)  # a minor the table has not met: the major's minimum
    assert environment._driver_need("14.0") == (None, None)
    monkeypatch.setattr(sys, "platform", "win32")
    assert environment._driver_need("12.8") == ("528.33", "570.65")
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )
    monkeypatch.setattr(environment, "NVIDIA_PROC", proc)
    assert environment.nvidia_gpu_present() and environment.nvidia_driver_version() == "535.104.05"


def test_a_run_on_such_a_machine_says_it_once(old_driver, tmp_path, monkeypatch, capsys):
    """The CLI's probe, every case's own resolve and a worker's note (Ray, Slurm) all say the same line: once."""
    probe = worker.probe
    monkeypatch.setattr(worker, "probe", lambda *a: {**probe(*a), "device_note": environment.cpu_fallback_note()})
    assert main(["run", "hw3-c-gap", "--device", "auto", *SMOKE_CPU, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("device: this torch is built for CUDA 13.0") == 1
    assert (tmp_path / "smoke-cpu-synthetic" / "results.json").exists()


# --deterministic in a reused process: cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when it starts.
@pytest.fixture
def no_workspace(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "restored after the test")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(environment, "_said", set())
    yield
    environment.configure(CPU, deterministic=False)


@pytest.mark.parametrize("given, expected", [(None, ":4096:8"), (":16:8", ":16:8")])
def test_run_sets_the_cublas_workspace_before_probing_the_device(no_workspace, monkeypatch, given, expected):
    if given:
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", given)
    seen = []

    def probe(device, precision):
        seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        return {"error": "stop here"}

    monkeypatch.setattr(worker, "probe", probe)
    assert main(["run", "hw3-c-gap", "--device", "cpu", "--deterministic", *SMOKE_CPU]) == 2
    assert seen == [expected]


def test_deterministic_warns_once_where_cuda_started_before_the_workspace_was_set(no_workspace, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    environment.configure(CPU, deterministic=True)
    environment.configure(CPU, deterministic=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: --deterministic: CUDA was initialised in this process")
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8 before the first CUDA call" in err
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_deterministic_is_quiet_where_the_workspace_was_set_in_time(no_workspace, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    environment.configure(CPU, deterministic=True)  # CUDA not started yet: set, nothing to say
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    environment.configure(CPU, deterministic=True)  # set before CUDA started (by run, or the user)
    assert capsys.readouterr().err == ""


def test_tf32_is_opt_in_recorded_and_said(tmp_path, capsys):
    """fp32 products in TF32 only with --tf32: the flags set both ways (PyTorch's defaults differ between matrix
    products and convolutions), the run records it, check compares it, and the report's header says which."""
    from conftest import FIXTURES

    from xraybench.report.method import facts

    environment.configure(CPU, deterministic=False, tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    environment.configure(CPU, deterministic=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32

    out = tmp_path / "runs"
    argv = ["run", "hw3-a-cnn", "--profile", "smoke", "--device", "cpu", "--no-report", "--out", str(out)]
    assert main([*argv, "--precision", "fp32", "--tf32"]) == 0
    assert "precision fp32 (requested), TF32" in capsys.readouterr().out
    run = results.read(out / "smoke-cpu-synthetic")
    assert run.settings.tf32 and run.settings.compared()["tf32"] is True

    on_gpu = results.read(FIXTURES / "results-hw3-smoke.json")
    on_gpu.software["device"] = "cuda"
    on_gpu.settings.precision = results.schema.Precision(name="fp32", reason="requested")
    assert on_gpu.settings.tf32 is None  # a run from before the flag: PyTorch's defaults, not "no TF32"
    assert dict(facts(on_gpu))["Precision"].startswith("fp32 (TF32 unrecorded: PyTorch's defaults")
    on_gpu.settings.tf32 = False
    assert dict(facts(on_gpu))["Precision"].startswith("fp32 (no TF32)")
    on_gpu.settings.tf32 = True
    assert dict(facts(on_gpu))["Precision"].startswith("fp32 with TF32 products (--tf32)")
