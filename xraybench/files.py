"""Writing files so that a reader never sees half of one: a temporary file beside the target,
renamed over it once complete. ``tempfile.mkstemp`` creates 0600 files; a published file gets
the mode any new file of the user's would have (0666 less the umask)."""

from __future__ import annotations

import os
import tempfile
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


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all, on disk before it is published (the folder is made if
    missing): results.json, baselines, exported tables."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
