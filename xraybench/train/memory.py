"""Memory of one case: its peak, and what to do when a CUDA device runs out of it.

Peak: on CUDA, the allocator's peaks, reset at the start of the case — what tensors held
(``max_memory_allocated``, the ``peak_memory_mb`` every row has) and what the caching allocator
held from the device (``max_memory_reserved``, ``peak_reserved_mb``: tensors plus the cache and its
fragmentation, which is what runs out). On the CPU: the process's peak resident set during the
case. ``getrusage``'s ``ru_maxrss`` only ever rises (it read 848 → 1,289 MB case after case in the
smoke baseline, whatever the case); Linux lets a process reset its own high-water mark
(``/proc/self/clear_refs``, "5") and read it back as ``VmHWM``, so each case starts from the RSS
it finds. Where that is not possible the process-lifetime peak is recorded and its kind says so.
The memory in use when the case started is recorded beside the peak: on the CPU it includes
torch itself and the data.

Out of memory: ``is_out_of_memory`` is the one test of it (cuBLAS and cuDNN report theirs as
plain RuntimeErrors); ``ForwardBatch`` halves the batch of forward-only passes that run out.
"""

from __future__ import annotations

import gc
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")
# Allocation failures outside the caching allocator, raised as RuntimeError: cuBLAS's and cuDNN's workspaces,
# and a raw cudaMalloc (cudaErrorMemoryAllocation). Other cuDNN errors (CUDNN_STATUS_NOT_SUPPORTED for a
# non-contiguous input, ...) are not memory and are not retried.
ALLOCATION_FAILED = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED", "CUDA error: out of memory")
T = TypeVar("T")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory: a smaller batch may fit where this one did not."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(message in str(exc) for message in ALLOCATION_FAILED)


def release() -> None:
    """Give back what a failed attempt held: its frames may sit in reference cycles, its blocks in the cache."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class ForwardOutOfMemory(RuntimeError):
    """A forward-only pass ran out of memory at one image a batch. Not an out-of-memory error for the worker:
    a smaller training batch would not make evaluation fit."""


class ForwardBatch:
    """The batch of a case's forward-only passes (evaluation, the frozen backbone's feature pass), shared by their
    loaders. One that runs out of CUDA memory is run again at half the batch, and the later passes start there:
    no result depends on it (the validation loss averages over ``train.eval_batch_size``, not over these
    batches), so the training goes on with its own batch unchanged."""

    def __init__(self, size: int):
        self.requested = self.size = size

    def run(self, loader, forward: Callable[[], T]) -> T:
        """``forward()`` over ``loader`` at this batch (set on the loader), halved until it fits."""
        while True:
            loader.batch_size = min(loader.batch_size, self.size)
            try:
                return forward()
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if loader.batch_size == 1:
                    raise ForwardOutOfMemory(f"out of memory at one image a batch ({type(exc).__name__})") from exc
            # Out of the except block: its traceback would keep the failed pass's activations alive.
            release()
            self.size = max(1, min(loader.batch_size, loader.num_images) // 2)

    @property
    def halved_to(self) -> int | None:
        """The batch the passes ended at, where an out-of-memory error made it smaller than requested."""
        return self.size if self.size < self.requested else None


@dataclass
class PeakMeter:
    device: torch.device
    resettable: bool
    start_mb: float | None

    @classmethod
    def start(cls, device: torch.device) -> PeakMeter:
        """Start measuring a new peak on ``device``."""
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            return cls(device, True, torch.cuda.memory_allocated(device) / 2**20)
        try:
            CLEAR_REFS.write_text("5")
        except OSError:
            resettable = False
        else:  # a sandbox may accept the write and do nothing: the mark must have come down to the RSS
            hwm, rss = _status_mb("VmHWM"), _status_mb("VmRSS")
            resettable = hwm is not None and rss is not None and hwm <= rss + 16
        return cls(device, resettable, _status_mb("VmRSS"))

    def read(self) -> dict:
        """{"peak_memory_mb", "peak_memory_kind", "peak_reserved_mb", "memory_at_start_mb"} since ``start``."""
        reserved = None
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda allocated"
            reserved = torch.cuda.max_memory_reserved(self.device) / 2**20
        elif self.resettable:
            peak, kind = _status_mb("VmHWM"), "process RSS peak during the case"
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            kind = "process RSS peak since start (not resettable here)"
        return {
            "peak_memory_mb": peak,
            "peak_memory_kind": kind,
            "peak_reserved_mb": reserved,
            "memory_at_start_mb": self.start_mb,
        }


def _status_mb(field: str) -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None
