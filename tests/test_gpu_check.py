"""benchmarks/gpu_check.sh, the GPU check, tested where there is no GPU: the script parses, --dry-run lists its
four steps with commands that the tools they call accept (xraybench's own parser, gpu_throughput's, pytest's
collection), and without a CUDA device a plain run stops in one line with exit 2."""

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xraybench.cases import load_cases, select
from xraybench.cli import build_parser
from xraybench.data import medmnist
from xraybench.data.sources import NpzSource

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEP = re.compile(r"^(\d)\s+(\S+)\s+timeout (\d+)s\s+(.+)$")


def check(*args: str, env: dict[str, str] | None = None, out: Path | None = None) -> subprocess.CompletedProcess:
    """Run the script with none of its settings (GPU_CHECK_*) but ``env``'s, its output under ``out`` if given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**base, **({"GPU_CHECK_OUT": str(out)} if out else {}), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def dry_run(*args: str, env: dict[str, str] | None = None, out: Path | None = None) -> dict[str, tuple[int, list[str]]]:
    """--dry-run's steps: key → (time limit in seconds, argv)."""
    done = check("--dry-run", *args, env=env, out=out)
    assert done.returncode == 0, done.stderr
    steps = [STEP.match(line) for line in done.stdout.splitlines() if STEP.match(line)]
    assert [int(m[1]) for m in steps] == [1, 2, 3, 4], done.stdout
    return {m[2]: (int(m[3]), shlex.split(m[4])) for m in steps}


def parse_xraybench(argv: list[str]) -> argparse.Namespace:
    assert argv[0] == "xraybench"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"xraybench's parser refuses {shlex.join(argv)}")


def test_the_script_parses():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_dry_run_lists_the_four_steps_with_their_time_limits(tmp_path):
    steps = dry_run(out=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    assert list(steps) == ["tests", "throughput", "hw3", "published"]
    assert [limit for limit, _ in steps.values()] == [60, 90, 150, 150]  # 450 s of the 470 s budget
    assert steps["tests"][1][:3] == ["python", "-m", "pytest"]
    assert steps["throughput"][1][:2] == ["python", "benchmarks/gpu_throughput.py"]


def test_time_limits_and_data_come_from_the_environment_and_the_command_line():
    env = {"GPU_CHECK_TIMEOUT_HW3": "42", "GPU_CHECK_DATA": "from-env.npz"}
    steps = dry_run(env=env)
    assert steps["hw3"][0] == 42
    assert parse_xraybench(steps["published"][1]).data == "from-env.npz"
    assert parse_xraybench(dry_run("--data", "given.npz", env=env)["published"][1]).data == "given.npz"
    done = check("--dry-run", env={"GPU_CHECK_TIMEOUT_TESTS": "soon"})
    assert done.returncode == 2 and "GPU_CHECK_TIMEOUT_TESTS=soon" in done.stderr


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


def test_the_throughput_step_is_a_command_gpu_throughput_accepts(monkeypatch):
    argv = dry_run()["throughput"][1]
    spec = importlib.util.spec_from_file_location("gpu_check_throughput", ROOT / argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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


def test_without_a_gpu_a_run_stops_in_one_line(tmp_path):
    """No nvidia-smi here; on a GPU machine, no device that torch may use. Either way: one line, exit 2."""
    done = check(env={"CUDA_VISIBLE_DEVICES": ""}, out=tmp_path / "out")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("gpu_check: error: no CUDA device: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_driver_without_a_device_for_torch_stops_in_one_line(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "name, memory.total [MiB], driver_version"\necho "Pretend GPU, 1 MiB, 0"\n')
    smi.chmod(0o755)
    path = os.pathsep.join([str(fake), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = check(env={"PATH": path, "CUDA_VISIBLE_DEVICES": ""}, out=tmp_path / "out")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("gpu_check: error: no CUDA device: torch.cuda.is_available() is False")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
