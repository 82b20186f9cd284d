"""Peak memory of one case, not of the process's whole life.

On CUDA: the allocator's peak, reset at the start of the case. On the CPU: the process's
peak resident set during the case. ``getrusage``'s ``ru_maxrss`` only ever rises (it read
848 → 1,289 MB case after case in the smoke baseline, whatever the case); Linux lets a
process reset its own high-water mark (``/proc/self/clear_refs``, "5") and read it back as
``VmHWM``, so each case starts from the RSS it finds. Where that is not possible the
process-lifetime peak is recorded and its kind says so. The memory in use when the case
started is recorded beside the peak: on the CPU it includes torch itself and the data.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

import torch

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


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
        """{"peak_memory_mb", "peak_memory_kind", "memory_at_start_mb"} since ``start``."""
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda allocated"
        elif self.resettable:
            peak, kind = _status_mb("VmHWM"), "process RSS peak during the case"
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            kind = "process RSS peak since start (not resettable here)"
        return {"peak_memory_mb": peak, "peak_memory_kind": kind, "memory_at_start_mb": self.start_mb}


def _status_mb(field: str) -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None
