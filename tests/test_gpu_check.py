"""benchmarks/gpu_check.sh, the GPU check, and benchmarks/gpu_steps.py, its own measurements, tested where there is
no GPU: the script parses; --dry-run lists its ten steps with commands that the tools they call accept
(xraybench's own parser, gpu_steps', gpu_throughput's, pytest's collection) and time limits within the budget;
without a CUDA device a plain run is a CPU dry run that skips what needs CUDA, saying so, and passes; --device
cuda there stops in one line. gpu_steps' layout check passes the engine's models and can fail."""

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from xraybench.cases import load_cases, select
from xraybench.cli import build_parser
from xraybench.data import medmnist
from xraybench.data.sources import NpzSource
from xraybench.models.registry import list_models
from xraybench.train import optim

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEP = re.compile(r"^(\d+)\s+(\S+)\s+(?:timeout (\d+)s|SKIP)\s+(.+)$")
KEYS = ["versions", "tests", "layout", "kernel", "smoke-bf16", "smoke-fp16", "smoke-det", "throughput", "hw3"]
KEYS += ["published"]
ON_THE_CPU = {"versions", "layout", "smoke-det"}  # the steps the CPU dry run runs
NEEDS_CUDA = "needs a CUDA device"


def load(name: str):
    """A script of benchmarks/ as a module."""
    spec = importlib.util.spec_from_file_location(f"gpu_check_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_steps = load("gpu_steps")


def check(*args: str, env: dict[str, str] | None = None, out: Path | None = None) -> subprocess.CompletedProcess:
    """Run the script with none of its settings (GPU_CHECK_*) but ``env``'s, its output under ``out`` if given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**base, **({"GPU_CHECK_OUT": str(out)} if out else {}), **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def dry_run(*args: str, env: dict[str, str] | None = None, out: Path | None = None) -> dict[str, tuple]:
    """--dry-run's steps: key → (time limit in seconds, argv), or (None, reason) for a step it skips."""
    done = check("--dry-run", *args, env=env, out=out)
    assert done.returncode == 0, done.stderr
    steps = [STEP.match(line) for line in done.stdout.splitlines() if STEP.match(line)]
    assert [int(m[1]) for m in steps] == list(range(1, 11)), done.stdout
    return {m[2]: (int(m[3]), shlex.split(m[4])) if m[3] else (None, m[4]) for m in steps}


def parse_xraybench(argv: list[str]) -> argparse.Namespace:
    assert argv[0] == "xraybench"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"xraybench's parser refuses {shlex.join(argv)}")


def parse_gpu_steps(argv: list[str]) -> argparse.Namespace:
    assert argv[:2] == ["python", "benchmarks/gpu_steps.py"]
    try:
        return gpu_steps.build_parser().parse_args(argv[2:])
    except SystemExit:
        pytest.fail(f"gpu_steps' parser refuses {shlex.join(argv)}")


def fake_driver(tmp_path: Path) -> dict[str, str]:
    """An nvidia-smi that answers, and no GPU for torch (CUDA_VISIBLE_DEVICES empty): a driver torch cannot use."""
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "name, memory.total [MiB], driver_version"\necho "Pretend GPU, 1 MiB, 0"\n')
    smi.chmod(0o755)
    path = os.pathsep.join([str(fake), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"PATH": path, "CUDA_VISIBLE_DEVICES": ""}


def test_the_script_parses():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_dry_run_lists_the_ten_steps_within_eight_minutes(tmp_path):
    steps = dry_run(out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert list(steps) == KEYS
    limits = [limit for limit, _ in steps.values()]
    assert None not in limits and sum(limits) <= 450  # of the 470 s budget: the kill grace and the table fit
    assert "total budget 470s" in check("--dry-run").stdout
    assert steps["tests"][1][:3] == ["python", "-m", "pytest"]
    assert steps["throughput"][1][:2] == ["python", "benchmarks/gpu_throughput.py"]


def test_time_limits_and_data_come_from_the_environment_and_the_command_line():
    env = {"GPU_CHECK_TIMEOUT_HW3": "42", "GPU_CHECK_TIMEOUT_SMOKE": "7", "GPU_CHECK_DATA": "from-env.npz"}
    steps = dry_run(env=env)
    assert steps["hw3"][0] == 42 and [steps[k][0] for k in KEYS if k.startswith("smoke")] == [7, 7, 7]
    assert parse_xraybench(steps["published"][1]).data == "from-env.npz"
    assert parse_xraybench(dry_run("--data", "given.npz", env=env)["published"][1]).data == "given.npz"
    done = check("--dry-run", env={"GPU_CHECK_TIMEOUT_TESTS": "soon"})
    assert done.returncode == 2 and "GPU_CHECK_TIMEOUT_TESTS=soon" in done.stderr
    assert check("--dry-run", "--device", "tpu").returncode == 2


def test_the_run_steps_are_commands_xraybench_accepts():
    steps = dry_run()
    hw3 = parse_xraybench(steps["hw3"][1])
    published = parse_xraybench(steps["published"][1])
    for args in (hw3, published):
        assert args.command.__name__ == "cmd_run"
        assert (args.profile, args.seeds, args.device, args.offline, args.no_report) == ("full", 1, "cuda", True, True)
        assert args.out.parent.parent == Path("reports/gpu-check")  # reports/gpu-check/<time>/runs: git-ignored
    assert published.precision == "fp32" and hw3.precision == "auto"

    cases = load_cases()[0]
    hw3_ids = [c.id for c in cases if c.suite == "hw3"]
    assert hw3_ids and [c.id for c in select(cases, hw3.patterns)] == hw3_ids  # the whole HW3 suite, no more
    (case,) = select(cases, published.patterns)
    assert case.id == "published-v2-resnet18-28" and case.requires_data == "pneumoniamnist@28"
    assert not case.profiles or "full" in case.profiles

    data = ROOT / published.data  # the default: the tests' PneumoniaMNIST 28 px file, which the case accepts
    assert data.is_file() and medmnist.identify(NpzSource(data)).satisfies(case.requires_data)


def test_the_smoke_steps_run_the_cli_in_bf16_fp16_and_deterministic_fp32():
    steps = dry_run()
    smoke = {key: parse_xraybench(steps[key][1]) for key in ("smoke-bf16", "smoke-fp16", "smoke-det")}
    assert {k: (a.precision, a.deterministic) for k, a in smoke.items()} == {
        "smoke-bf16": ("bf16", False),
        "smoke-fp16": ("fp16", False),
        "smoke-det": ("fp32", True),
    }
    assert {k: a.seeds for k, a in smoke.items()} == {"smoke-bf16": 3, "smoke-fp16": 1, "smoke-det": 1}
    for key, args in smoke.items():
        assert (args.profile, args.device, args.offline, args.no_report) == ("smoke", "cuda", True, True)
        assert args.patterns == ["hw3*"] and args.run_id == key  # each its own run under reports/gpu-check/<time>/


def test_the_gpu_steps_are_commands_gpu_steps_accepts():
    steps = dry_run()
    versions, layout, kernel = (parse_gpu_steps(steps[key][1]) for key in ("versions", "layout", "kernel"))
    assert (versions.func, layout.func, kernel.func) == (
        gpu_steps.cmd_versions,
        gpu_steps.cmd_layout,
        gpu_steps.cmd_kernel,
    )
    assert {args.device for args in (versions, layout, kernel)} == {"cuda"}
    # HW3, ResNet-18, EfficientNet-B0 and ConvNeXt-S, each a registered model, in every precision
    assert layout.models == ["hw3_cnn", "resnet18", "efficientnet_b0", "convnext_small"]
    assert set(layout.models) <= set(list_models()) and layout.precisions == ["fp32", "bf16", "fp16"]
    assert (kernel.sizes, kernel.batch, kernel.seeds, kernel.precision) == ([64, 256], 32, 5, "auto")


def test_the_throughput_step_is_a_command_gpu_throughput_accepts(monkeypatch):
    argv = dry_run()["throughput"][1]
    module = load("gpu_throughput")
    parsed = []

    class Parsed(Exception):
        pass

    def parse_and_stop(self, args=None, namespace=None):
        parsed.append(real_parse(self, args, namespace))
        raise Parsed

    real_parse = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    with pytest.raises(Parsed):
        module.main(argv[2:])
    (args,) = parsed
    assert (args.model, args.size, args.device) == ("resnet50", 224, "cuda")  # what the 2,500 img/s anchor measures
    assert 256 in args.batches  # the anchor's batch


def test_the_tests_step_selects_the_tests_of_the_device_code():
    argv = dry_run()["tests"][1]
    done = subprocess.run(
        [sys.executable, *argv[1:], "--collect-only"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(selected) >= 5 and all("cuda" in line.lower() for line in selected), done.stdout
    assert any(line.startswith("tests/test_run_settings.py::") for line in selected)
    assert not any("test_gpu_check" in line for line in selected)  # the check does not run itself


def test_the_cpu_dry_run_lists_what_runs_on_the_cpu():
    steps = dry_run("--device", "cpu")
    assert {k for k, (limit, _) in steps.items() if limit is not None} == ON_THE_CPU
    assert all(reason == NEEDS_CUDA for limit, reason in steps.values() if limit is None)
    assert all(limit >= 60 for limit, _ in (steps[k] for k in ON_THE_CPU))  # a CPU is slower, and is not timed
    versions, layout = parse_gpu_steps(steps["versions"][1]), parse_gpu_steps(steps["layout"][1])
    assert versions.device == layout.device == "cpu" and (layout.models, layout.precisions) == (["hw3_cnn"], ["fp32"])
    smoke = parse_xraybench(steps["smoke-det"][1])
    assert (smoke.device, smoke.precision, smoke.deterministic, smoke.profile) == ("cpu", "fp32", True, "smoke")


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """A plain run where the driver answers and torch has no GPU (on a GPU machine too: CUDA_VISIBLE_DEVICES="")."""
    tmp = tmp_path_factory.mktemp("gpu-check")
    return check(env=fake_driver(tmp), out=tmp / "out"), tmp / "out"


def test_without_a_gpu_a_plain_run_is_a_cpu_dry_run_that_passes(cpu_run):
    done, out = cpu_run
    assert done.returncode == 0, done.stdout + done.stderr
    reason = [line for line in done.stdout.splitlines() if line.startswith("no CUDA device: ")]
    assert len(reason) == 1 and "torch.cuda.is_available() is False" in reason[0]
    rows = {int(m[1]): m for m in re.finditer(r"^(\d+)\s+\| (.+?) \| (.+?) \|\s+([\d.]+) \| (\w+)$", done.stdout, re.M)}
    assert sorted(rows) == list(range(1, 11)), done.stdout
    status = {KEYS[n - 1]: (row[3].strip(), row[5]) for n, row in rows.items()}
    assert {k for k, (_, s) in status.items() if s == "PASS"} == ON_THE_CPU
    assert all(status[k] == (NEEDS_CUDA, "SKIP") for k in KEYS if k not in ON_THE_CPU)
    assert status["layout"][0].startswith("layout ok in 1/1 (hw3_cnn in fp32)")
    assert re.match(r"5/5 ok, fp32, deterministic; peak memory [\d,]+ MB", status["smoke-det"][0])
    (run,) = out.iterdir()
    assert (run / "summary.txt").read_text().count("SKIP") == 7 and (run / "runs" / "smoke-det").is_dir()


def test_asked_for_a_gpu_without_one_a_run_stops_in_one_line(tmp_path):
    """No nvidia-smi here; on a GPU machine, no device that torch may use. Either way: one line, exit 2."""
    done = check("--device", "cuda", env={"CUDA_VISIBLE_DEVICES": ""}, out=tmp_path / "out")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("gpu_check: error: no CUDA device: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
    done = check("--device", "cuda", env=fake_driver(tmp_path), out=tmp_path / "out")
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("gpu_check: error: no CUDA device: torch.cuda.is_available() is False")


def test_the_run_reader_says_allocated_against_reserved_memory(tmp_path):
    """What a GPU run's rows say of memory (the CPU run has no reserved memory to show): the highest peaks."""
    reader = re.search(r"SUMMARY_PY <<'PY'\n(.*?)\nPY\n", SCRIPT.read_text(), re.S)[1]
    row = {"id": "hw3-a-cnn", "status": "ok", "warnings": []}
    rows = [{**row, "metrics": {"peak_memory_mb": a, "peak_reserved_mb": r}} for a, r in ((100, 200), (150, 256))]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"settings": {"precision": {"name": "bf16"}}, "cases": rows}))
    (tmp_path / "log").write_text("run: 1 case(s), 2 trainings\n")
    done = subprocess.run(
        [sys.executable, "-c", reader, "run", str(tmp_path / "log"), str(results)], capture_output=True, text=True
    )
    assert done.stdout == "2/2 ok, bf16; peak memory 150 MB allocated of 256 MB reserved\tok\n", done.stderr


def test_layout_of_the_hw3_cnn_on_the_cpu_is_ok(capsys):
    assert (
        gpu_steps.main(["layout", "--device", "cpu", "--models", "hw3_cnn", "--precisions", "fp32", "--steps", "1"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"hw3_cnn\s+fp32\s+layout ok; host syncs not checked", lines[0]), lines
    assert lines[-1] == "summary: layout ok in 1/1 (hw3_cnn in fp32)"


class _Contiguous(torch.autograd.Function):
    """The identity, whose backward hands the gradient on in the contiguous format, as a conv kernel working in
    that format (CUDA's slow_conv2d) does; for a channels-last (4, 1, 3, 3) weight autograd keeps those strides."""

    @staticmethod
    def forward(ctx, weight):
        return weight.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.empty(grad.shape, dtype=grad.dtype).copy_(grad)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3).to(memory_format=torch.channels_last)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(F.conv2d(x, _Contiguous.apply(self.conv.weight), self.conv.bias).mean((2, 3)))


@pytest.mark.parametrize("engines", [False, True], ids=["plain-adam", "engine-adam"])
def test_the_layout_check_fails_where_a_gradient_keeps_other_strides(monkeypatch, capsys, engines):
    """The check can fail: a gradient in other strides than its weight's, the fused kernel's refusal on CUDA
    (pytorch#106951), is named, the command exits 1. The engine's optimizer gives it the weight's (the control)."""
    model = _Tiny()
    adam = optim.build_optimizer if engines else lambda _, params, **kw: torch.optim.Adam(params, lr=kw["lr"])
    optimizer = adam("adam", model.parameters(), lr=1e-3, weight_decay=0.0, options={})
    settings = {"device": torch.device("cpu"), "channels": 1, "mean": 0.5, "std": 0.5, "channels_last": True}
    monkeypatch.setattr(gpu_steps, "build", lambda *args: (model, optimizer, {**settings, "pad_to": 0}, 8))
    rc = gpu_steps.main(["layout", "--device", "cpu", "--models", "tiny", "--precisions", "fp32", "--batch", "2"])
    line = capsys.readouterr().out.splitlines()[0]
    if engines:
        assert rc == 0 and "layout ok" in line
    else:
        assert rc == 1 and re.match(r"tiny\s+fp32\s+layout mismatch in 1 parameter\(s\): conv\.weight: ", line)
        assert (
            "grad torch.float32 cpu strides (9, 9, 3, 1)" in line
            and "param torch.float32 cpu strides (9, 1, 3, 1)" in line
        )


def test_host_syncs_are_counted_by_the_line_that_made_them(monkeypatch):
    """set_sync_debug_mode("warn")'s warnings counted per source line; other warnings are shown as before."""
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)  # no CUDA here: the warnings are faked
    with pytest.warns(UserWarning, match="something else"), gpu_steps.host_syncs(Counter()) as sites:
        for _ in range(3):
            warnings.warn("called a synchronizing CUDA operation", stacklevel=1)  # as torch warns: this line
        warnings.warn("something else", stacklevel=1)
    ((site, n),) = sites.items()
    assert n == 3 and site.startswith("tests/test_gpu_check.py:") and "warnings.warn(" in site


def test_the_kernel_step_times_one_seed_and_seeds_stacked(capsys):
    """On a CPU only wall times (the kernel times are the GPU's)."""
    argv = ["kernel", "--device", "cpu", "--sizes", "16", "--steps", "1", "--seeds", "2", "--precision", "fp32"]
    assert gpu_steps.main(argv) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert re.match(r"summary: 16 px, 1 seed: [\d.]+ ms per seed-step; ", summary), summary
    assert re.search(r"16 px, 2 seeds stacked: [\d.]+ ms per seed-step \([\d.]+x one seed's images/s\)$", summary)
