"""Writing files so that a reader never sees half of one: a temporary file beside the target,
renamed over it once complete. ``tempfile.mkstemp`` creates 0600 files; a published file gets
the mode any new file of the user's would have (0666 less the umask)."""

from __future__ import annotations

import os
from pathlib import Path


def umask_mode() -> int:
    """0666 less the process's umask (read without changing it for longer than this call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | Path, path: Path) -> None:
    """Give the finished temporary file the user's default mode and move it into place atomically."""
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)
