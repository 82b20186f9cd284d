import os
import signal
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from xraybench.cases import declared_in, load_cases
from xraybench.models.registry import register_model

FIXTURES = Path(__file__).parent / "fixtures"
KERMANY = FIXTURES / "kermany-mini"
NPZ = FIXTURES / "pneumoniamnist-28-subset.npz"
# Two cases: one diverges at once (a failed row), one trains (an ok row).
NAN_AND_OK_CASES = """
suite = "hw3"
[tasks]
A = "a task"
[[case]]
id = "hw3-nan"
task = "A"
title = "diverges"
model = { name = "nan_model" }
[[case]]
id = "hw3-ok"
task = "A"
title = "fine"
model = { name = "hw3_gap_cnn" }
"""


def own_cases(path: Path) -> list:
    """The cases of one case file, without the built-in ones ``load_cases`` adds for ids to resolve against."""
    return declared_in(load_cases([path])[0], [path])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """One data cache for the whole test session, never the user's."""
    monkeypatch.setenv("XRAYBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _never_the_network(monkeypatch):
    """Tests never touch the network: downloads are off unless a test serves them itself on 127.0.0.1
    (and then turns this off)."""
    monkeypatch.setenv("XRAYBENCH_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _same_arithmetic_on_every_machine(monkeypatch):
    """--precision auto reads the CPU's flags: pretend none, so that every test trains in fp32 whether or
    not this CPU has bf16 instructions (the tests of the choice fake the flags they need)."""
    from xraybench.train import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: set())


@pytest.fixture(autouse=True)
def _torch_settings_restored():
    """--deterministic changes process-wide torch settings; no test leaks them into the next."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[4], saved[5]


@pytest.fixture
def write_cases(tmp_path):
    """Write a case file from TOML text; returns its path."""

    def write(text: str, name: str = "cases.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@register_model
def nan_model(*, in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """A model whose output is NaN, for tests of divergence handling."""

    class NaN(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return (self.w * float("nan")).expand(x.shape[0], num_outputs)

    return NaN()


@register_model
def cuda_broken_model(*, in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """Fails its first forward as a lost CUDA context does (an illegal memory access): every later kernel of the
    process would fail too, so the executor must not give the process another case."""

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    return Broken()


@register_model
def crash_model(*, in_channels: int, image_size: int, num_outputs: int, attempts: str = "") -> nn.Module:
    """Kills its own process with SIGKILL when built, as the kernel's OOM killer would: for the executors'
    tests of a dying worker. Each attempt appends its pid to the file ``attempts``. Never run it locally."""
    if attempts:
        with open(attempts, "a") as f:
            f.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


@register_model
def slow_model(*, in_channels: int, image_size: int, num_outputs: int, seconds: float = 1.0) -> nn.Module:
    """A linear model that takes ``seconds`` to build: cases that surely overlap in time on parallel workers."""
    time.sleep(seconds)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_outputs))
