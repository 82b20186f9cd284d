"""What a result was measured on (machine, software, git commit), and how the process is set
up to run: the device choice, determinism and the memory allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

import xraybench

REPO = Path(__file__).resolve().parent.parent


class DeviceError(ValueError):
    pass


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA device is available to torch; use --device cpu or --device auto")
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: expected auto, cpu or cuda")
    return torch.device(name)


def worker_device(name: str) -> torch.device:
    """The device a job trains on: CUDA means device 0 of the GPUs this process sees (Ray and Slurm
    hand each job its own GPU through CUDA_VISIBLE_DEVICES); else as ``resolve_device``."""
    device = resolve_device(name)
    return torch.device("cuda", 0) if device.type == "cuda" else device


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read after it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


NONDETERMINISTIC_WARNING = "does not have a deterministic implementation"


@contextmanager
def nondeterministic_ops(record):
    """Within: torch's "X does not have a deterministic implementation" warnings (``--deterministic``)
    call ``record("X")`` instead of printing, once per op and place; every other warning is filtered
    and shown as it would be without this."""
    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.filterwarnings("default", message=f".*{NONDETERMINISTIC_WARNING}")
        show = warnings.showwarning

        def show_or_record(message, category, filename, lineno, file=None, line=None):
            if NONDETERMINISTIC_WARNING in str(message):
                record(str(message).split(NONDETERMINISTIC_WARNING)[0].strip())
            else:
                show(message, category, filename, lineno, file, line)

        warnings.showwarning = show_or_record
        yield


def configure(device: torch.device, *, deterministic: bool) -> None:
    """Set up torch for a run on ``device``.

    Fast by default: cuDNN benchmarks its kernels once per input shape (the shapes are fixed).
    ``deterministic``: the same seed gives the same bits on the same machine and software —
    deterministic algorithms only, cuBLAS with a fixed workspace, no cuDNN autotuning. An op
    with no deterministic implementation (on CUDA, e.g. adaptive average pooling's backward)
    warns rather than fails, and the runner records it with the case.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
    torch.backends.cudnn.deterministic = deterministic


@contextmanager
def keep_freed_memory():
    """While training: have glibc's malloc serve every allocation from its heap and keep what is freed.

    By default each tensor over a few MB gets fresh pages from the kernel, and every training
    step pays the page faults of zeroing them again. Measured on the 2-core CPU, per training
    step: HW3 CNN 1.7× faster at 64 px and 1.65× at 128 px, MLP 1.5× at 128 px. Training
    repeats the same shapes, so the heap settles at its peak; data decoding does not, which
    is why this is scoped to training. On exit the defaults return and the heap is trimmed.
    Yields False, changing nothing, where the C library has no ``mallopt`` (not glibc).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        yield False
        return
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 2**31 - 1)
    try:
        yield True
    finally:  # glibc's defaults: up to 65,536 mmapped chunks; trim above 128 KiB
        mallopt(m_mmap_max, 65536)
        mallopt(m_trim_threshold, 128 * 1024)
        malloc_trim(0)


def machine_info() -> dict:
    uname = platform.uname()
    return {
        "node": uname.node,
        "system": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "processor": uname.processor or uname.machine,
        "cpu_count": os.cpu_count(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
    }


def software_info(device: torch.device) -> dict:
    import torchvision

    info = {
        "xraybench": xraybench.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "gpu": None,
    }
    if device.type == "cuda" and torch.cuda.is_available():  # a Ray driver may have no GPU of its own
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
        }
    return info


def commit_info() -> dict:
    """The git commit of the xraybench checkout, as pytest-benchmark records it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"id": None, "branch": None, "dirty": None, "time": None}
    return {
        "id": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(git("status", "--porcelain")),
        "time": git("show", "-s", "--format=%cI", "HEAD"),
    }  # the commit date: what `xraybench history` orders by
