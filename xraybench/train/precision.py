"""The arithmetic a run trains in: fp32, bf16 or fp16 autocast, chosen by what the hardware does natively.

``auto`` picks bf16 where the device computes it natively (CUDA compute capability ≥ 8.0;
a CPU with AVX512-BF16 or AMX), fp16 with loss scaling on older CUDA GPUs, fp32 otherwise.
It never assumes: ``torch.cuda.is_bf16_supported()`` says yes on a T4 or V100 through
emulation, and bf16 autocast on a CPU without bf16 instructions measured 5× slower than fp32.
Whatever the choice, the model's final layer and the loss run in fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class PrecisionError(ValueError):
    pass


@dataclass(frozen=True)
class Precision:
    name: str  # fp32 | bf16 | fp16
    reason: str  # why this one: requested, or what auto found

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES[self.name]

    def autocast(self, device: torch.device):
        """The autocast context for ``device`` (nothing in fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """fp16's loss scaling (its narrow exponent underflows small gradients); a pass-through otherwise."""
        return torch.amp.GradScaler(device.type, enabled=self.name == "fp16")

    @property
    def explicit(self) -> bool:
        """Asked for by name (``--precision bf16``), not chosen by ``auto``."""
        return self.reason == REQUESTED

    def as_record(self) -> dict:
        return {"name": self.name, "reason": self.reason}


FP32 = Precision("fp32", "default")
REQUESTED = "requested"  # the reason of a precision asked for by name


def cuda_capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere, which means fp32)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def choose(requested: str, device: torch.device) -> Precision:
    """The precision for ``requested`` (one of CHOICES) on ``device``."""
    if requested not in CHOICES:
        raise PrecisionError(f"--precision {requested}: expected one of {', '.join(CHOICES)}")
    if requested != "auto":
        return Precision(requested, REQUESTED)
    if device.type == "cuda":
        major, minor = cuda_capability(device)
        if major >= 8:
            return Precision("bf16", f"auto: CUDA compute capability {major}.{minor} has native bf16")
        return Precision(
            "fp16", f"auto: CUDA compute capability {major}.{minor} has no native bf16; fp16 with loss scaling"
        )
    if device.type == "cpu":
        native = sorted(set(CPU_BF16_FLAGS) & cpu_flags())
        if native:
            return Precision("bf16", f"auto: the CPU has native bf16 ({', '.join(native)})")
        return Precision("fp32", "auto: the CPU has no bf16 instructions (avx512_bf16 or amx_bf16)")
    return Precision("fp32", f"auto: fp32 on {device.type}")


CPU_FP16_FLAGS = ("avx512_fp16", "amx_fp16")


def slow_warning(precision: Precision, device: torch.device) -> str | None:
    """A requested precision the device only emulates: say what it will cost."""
    if not precision.explicit or precision.name == "fp32":
        return None
    if device.type == "cpu":
        native = CPU_BF16_FLAGS if precision.name == "bf16" else CPU_FP16_FLAGS
        if not set(native) & cpu_flags():
            return (
                f"warning: --precision {precision.name} on a CPU without {precision.name} instructions "
                f"({' or '.join(native)}) is emulated (bf16 measured 5× slower than fp32 on such a CPU); "
                f"--precision auto picks what this CPU computes natively"
            )
    elif device.type == "cuda" and precision.name == "bf16":
        major, minor = cuda_capability(device)
        if major < 8:
            return (
                f"warning: --precision bf16 on CUDA compute capability {major}.{minor} is emulated (native from "
                f"8.0); --precision auto picks fp16 with loss scaling here"
            )
    return None


class _Fp32Forward:
    """Runs the layer outside autocast, on fp32 input: the model's output keeps fp32's resolution."""

    def forward(self, x, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float(), *args, **kwargs)


class Fp32Linear(_Fp32Forward, nn.Linear):
    pass


class Fp32Conv2d(_Fp32Forward, nn.Conv2d):
    pass


def final_layer_in_fp32(model: nn.Module) -> nn.Module | None:
    """Run the model's output layer — its last registered Linear or Conv2d, as in every registered
    model — outside autocast, in fp32 (``in_fp32``).

    Logits then keep fp32's resolution, which the loss and the 0.5 threshold see. Returns the layer.
    """
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = module
    return last if last is None else in_fp32(last)


def runs_in_fp32(module: nn.Module) -> bool:
    return isinstance(module, _Fp32Forward)


def in_fp32(layer: nn.Module) -> nn.Module:
    """``layer``, its class swapped in place for one that runs outside autocast on fp32 input: parameter names,
    state dicts, deepcopy and pickling are unchanged."""
    if runs_in_fp32(layer):
        return layer
    if type(layer) is nn.Linear:
        layer.__class__ = Fp32Linear
    elif type(layer) is nn.Conv2d:
        layer.__class__ = Fp32Conv2d
    else:  # a subclass with behaviour of its own: keep it, in fp32
        layer.__class__ = type(f"Fp32{type(layer).__name__}", (_Fp32Forward, type(layer)), {})
    return layer
