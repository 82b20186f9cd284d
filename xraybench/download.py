"""Downloads users expect — torchvision weights, MedMNIST archives — and only those: never in the
tests, never with ``--offline`` or ``XRAYBENCH_OFFLINE=1``, and only when the network answers.

A download streams into a temporary file beside its target, with a progress bar, checks the
length and the hash (a SHA-256 prefix or an MD5), and is renamed into place only then: an
interrupted, truncated, stalled or corrupt download leaves nothing behind. Each connection and
each read waits at most ``timeout`` seconds, so an offline machine gives up in seconds.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from xraybench import files

OFFLINE_ENV = "XRAYBENCH_OFFLINE"
TIMEOUT_S = 5.0
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The file could not be fetched or did not check out; nothing was written."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable  # no answer at all: later downloads would fail the same way


def offline(flag: bool = False) -> bool:
    """Downloads forbidden: ``--offline`` or XRAYBENCH_OFFLINE set to anything but '' or '0'."""
    return flag or os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def download(
    url: str,
    path: Path,
    *,
    sha256_prefix: str | None = None,
    md5: str | None = None,
    timeout: float = TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Fetch ``url`` into ``path`` atomically, checking its length and hash; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    sha256, md5_hash = hashlib.sha256(), hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=path.name,
                        disable=None if progress else True,
                        file=sys.stderr,
                        leave=False,
                    ) as bar:
                        received = 0
                        while chunk := response.read(CHUNK):
                            out.write(chunk)
                            sha256.update(chunk)
                            md5_hash.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except urllib.error.URLError as exc:  # no route, refused, no DNS: the network does not answer
                raise DownloadError(f"{url}: no answer ({exc.reason})", unreachable=True) from None
            except (TimeoutError, http.client.IncompleteRead, ConnectionError) as exc:
                what = "stalled" if isinstance(exc, TimeoutError) else "cut off"
                raise DownloadError(f"{url}: the download {what} ({type(exc).__name__}: {exc})") from None
            if total is not None and received != total:
                raise DownloadError(f"{url}: truncated: {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if sha256_prefix and not sha256.hexdigest().startswith(sha256_prefix):
            raise DownloadError(
                f"{url}: SHA-256 {sha256.hexdigest()[:12]}… does not start with {sha256_prefix}; not kept"
            )
        if md5 and md5_hash.hexdigest() != md5:
            raise DownloadError(f"{url}: MD5 {md5_hash.hexdigest()} is not the expected {md5}; not kept")
        files.publish(tmp, path)
        return path
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file on disk, read in 1 MiB blocks; remembered per version of the file (its
    size and modification time), since a run asks more than once (checking MedMNIST's archive, then
    identifying it)."""
    st = os.stat(path)
    return _digest(str(Path(path).resolve()), algorithm, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: str, algorithm: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
