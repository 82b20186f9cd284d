"""What a result was measured on (machine, software, git commit), and how the process is set
up to run: the device choice, determinism and the memory allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

import xraybench

REPO = Path(__file__).resolve().parent.parent


class DeviceError(ValueError):
    pass


# The least NVIDIA driver (Linux, Windows) a CUDA build of torch starts on, from NVIDIA's CUDA Toolkit release notes
# (13.2 Update 2, docs.nvidia.com/cuda/cuda-toolkit-release-notes). Per major, Table 2: minor version compatibility
# lets any x.y build start on its major's minimum. Per x.y, Table 3: the driver that toolkit shipped with, which all
# of its features need. None: not listed.
CUDA_DRIVERS: dict[str, tuple[str, str | None]] = {
    "11": ("450.80.02", "452.39"),
    "11.8": ("520.61.05", "520.06"),
    "12": ("525.60.13", "528.33"),
    "12.1": ("530.30.02", "531.14"),
    "12.4": ("550.54.14", "551.61"),
    "12.6": ("560.28.03", "560.76"),
    "12.8": ("570.26", "570.65"),
    "12.9": ("575.51.03", "576.02"),
    "13": ("580", "580"),
    "13.0": ("580.65.06", None),
    "13.1": ("590.44.01", None),
    "13.2": ("595.45.04", None),
}
NVIDIA_PROC = Path("/proc/driver/nvidia/version")  # the loaded kernel driver's version line
HIDDEN = ("", "-1", "NoDevFiles")  # CUDA_VISIBLE_DEVICES that hide every GPU on purpose (NoDevFiles: Slurm's)
_said: set[str] = set()  # the lines say_once printed in this process
_torch_said: list[str] = []  # torch's "CUDA initialization: …" warning, which it gives once per process


def say_once(line: str) -> None:
    """Print ``line`` on stderr the first time only: a process that resolves the device per case, or runs twice
    (a notebook), is told once."""
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU (saying why, where a GPU seems present but torch cannot use
    it); ``cuda`` without a GPU is an error."""
    try:
        return _DEVICES[name]()
    except KeyError:
        raise DeviceError(f"--device {name}: expected auto, cpu or cuda") from None


def _auto() -> torch.device:
    if cuda_available():
        return torch.device("cuda")
    if (note := cpu_fallback_note()) is not None:
        say_once(note)
    return torch.device("cpu")


def cpu_fallback_note() -> str | None:
    """The line ``--device auto`` prints when it falls back to the CPU on a machine whose GPU torch cannot use."""
    if (problem := cuda_unreachable()) is None:
        return None
    found, need = problem
    return f"device: {found}; training on the CPU. {need}, or pass --device cpu to silence this"


def _cuda() -> torch.device:
    if cuda_available():
        return torch.device("cuda")
    if (problem := cuda_unreachable()) is not None:
        found, need = problem
        raise DeviceError(f"--device cuda: no CUDA device is available to torch: {found}. {need}, or use --device cpu")
    raise DeviceError("--device cuda: no CUDA device is available to torch; use --device cpu or --device auto")


_DEVICES = {"auto": _auto, "cpu": lambda: torch.device("cpu"), "cuda": _cuda}


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, keeping torch's "CUDA initialization" warning (given on the first call only)
    for ``cuda_unreachable`` to quote; it is shown as before where that has nothing to say."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    for w in caught:
        text = str(w.message)
        if text.startswith("CUDA initialization:") and not available and _gpu_expected():
            if (said := text.removeprefix("CUDA initialization:").strip()) not in _torch_said:
                _torch_said.append(said)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return available


def _gpu_expected() -> bool:
    """Whether torch is built for CUDA on a machine that seems to have an NVIDIA GPU not hidden on purpose."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in HIDDEN
    return torch.version.cuda is not None and not hidden and nvidia_gpu_present()


def nvidia_gpu_present() -> bool:
    """Whether this machine seems to have an NVIDIA GPU: its kernel driver is loaded, or nvidia-smi is installed."""
    return NVIDIA_PROC.exists() or shutil.which("nvidia-smi") is not None


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version (e.g. 535.104.05): from the kernel module, else nvidia-smi; None if neither says."""
    try:
        text = NVIDIA_PROC.read_text()
    except OSError:
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            text = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    found = re.search(r"\b(\d{3,}\.\d+(?:\.\d+)?)\b", text)
    return found.group(1) if found else None


def cuda_unreachable() -> tuple[str, str] | None:
    """What is wrong and what is needed, where torch is built for CUDA and the machine seems to have an NVIDIA GPU
    that torch cannot use (a driver older than the build's CUDA, most often); None where no GPU is expected: a CPU
    or ROCm build, no NVIDIA driver, or every GPU hidden through CUDA_VISIBLE_DEVICES."""
    if not _gpu_expected():
        return None
    built, visible = torch.version.cuda, os.environ.get("CUDA_VISIBLE_DEVICES")
    driver = nvidia_driver_version()
    why = [f"NVIDIA driver {driver}" if driver else "NVIDIA driver version unknown", *map(_gist, _torch_said)]
    if visible is not None:
        why.append(f"CUDA_VISIBLE_DEVICES={visible}")
    found = f"this torch is built for CUDA {built} but no GPU is reachable (torch.cuda.is_available() is False: "
    found += "; ".join(why) + ")"
    least, full = _driver_need(built)
    if least and driver and _version(driver) >= _version(least):
        return found, (
            f"Driver {driver} is new enough for CUDA {built} (≥ {least}): check that nvidia-smi lists the GPU "
            "and that CUDA_VISIBLE_DEVICES, if set, names it"
        )
    need = f"CUDA {built} needs NVIDIA driver ≥ {least}" if least else f"CUDA {built} needs a driver that supports it"
    if full and full != least:
        need += f" (≥ {full} for all of CUDA {built})"
    return found, f"{need}: update the driver, or install a torch wheel for your driver's CUDA (pytorch.org)"


def _driver_need(cuda: str) -> tuple[str | None, str | None]:
    """The least driver CUDA ``cuda`` (e.g. 12.8) starts on here, and the one its toolkit shipped with."""
    column = 1 if sys.platform == "win32" else 0
    least = CUDA_DRIVERS.get(cuda.split(".")[0], (None, None))[column]
    full = CUDA_DRIVERS.get(".".join(cuda.split(".")[:2]), (None, None))[column]
    return least, full


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _gist(torch_warning: str) -> str:
    """Torch's CUDA initialization warning without its advice and source location: what went wrong."""
    text = torch_warning.split("(Triggered internally at")[0].strip()
    sentences = re.split(r"(?<=[.?!])\s+(?=[A-Z])", text)
    kept = [s for s in sentences if not s.startswith(("Please", "Alternatively", "Did you"))]
    return " ".join(kept).rstrip(".")[:200]


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


CUBLAS_WORKSPACE = ":4096:8"


def fix_cublas_workspace() -> None:
    """Set CUBLAS_WORKSPACE_CONFIG for ``--deterministic`` (unless set already). cuBLAS reads it once, when it
    starts at the process's first CUDA matrix multiply: ``run`` sets it first thing, and where CUDA is already
    initialised without it (a notebook, an earlier run in this process) says once that matrix multiplies may stay
    nondeterministic; that cannot be undone in-process."""
    if "CUBLAS_WORKSPACE_CONFIG" in os.environ:
        return
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    if torch.cuda.is_initialized():
        say_once(
            f"warning: --deterministic: CUDA was initialised in this process before CUBLAS_WORKSPACE_CONFIG was "
            f"set, so cuBLAS may have started without it and its matrix multiplies may not repeat bit for bit; "
            f"set CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE} before the first CUDA call, or run in a fresh process"
        )


def configure(device: torch.device, *, deterministic: bool, tf32: bool = False) -> None:
    """Set up torch for a run on ``device``.

    Fast by default: cuDNN benchmarks its kernels once per input shape (the shapes are fixed).
    ``deterministic``: the same seed gives the same bits on the same machine and software —
    deterministic algorithms only, cuBLAS with a fixed workspace (``fix_cublas_workspace``), no cuDNN autotuning. An op
    with no deterministic implementation (on CUDA, e.g. adaptive average pooling's backward)
    warns rather than fails, and the runner records it with the case. ``tf32``: fp32 matrix products and
    convolutions in TF32 on Ampere or newer (opt-in; PyTorch's own defaults differ between the two, so both are set).
    """
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        fix_cublas_workspace()
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
