"""One image file decoded as the homework's transforms did (Grayscale, then a bilinear Resize of the
full image), with the digests the leakage check compares; and the strictness that makes a truncated
file an error."""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


@contextlib.contextmanager
def strict_pil():
    """Truncated files must fail to decode. PIL's switch is global and WeasyPrint turns it on
    when imported, so it is turned off (and restored) around our decoding."""
    from PIL import ImageFile

    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # uint8 [size, size]
    file_digest: str  # of the file's bytes
    pixel_digest: str  # of the full-resolution grayscale pixels


def try_decode(path: Path, size: int, resample: str = "bilinear") -> tuple[DecodedImage | None, str | None]:
    """(image, None), or (None, why it cannot be read)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, f"not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})"
    if path.stat().st_size == 0:
        return None, "empty file (0 bytes)"
    try:
        return read_image(path, size, resample), None
    except Exception as exc:
        return None, f"cannot decode image ({type(exc).__name__}: {exc})"


RESAMPLE = ("bilinear", "nearest")  # how an image is brought to a case's size: the homework's, or MedMNIST v2's


def read_image(path: Path, size: int, resample: str = "bilinear") -> DecodedImage:
    """Decode one image file, with the digests the leakage check compares.

    The pixels are those of the homework's transforms (Grayscale, then a bilinear Resize of the
    full image): no reduced-scale JPEG decode, which would be 2× faster once but differ by up to
    10 grey levels, enough to move a chaotic case's accuracy.
    """
    from PIL import Image

    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as img:
        img.load()  # a truncated file fails here, not later
        if img.mode.startswith("I"):  # 16-bit or 32-bit integer grayscale: scale to 0–255
            arr = np.asarray(img, dtype=np.float32)
            img = Image.fromarray((arr * (255.0 / max(float(arr.max()), 1.0))).astype(np.uint8))
        full = img.convert("L")
        method = Image.Resampling.NEAREST if resample == "nearest" else Image.Resampling.BILINEAR
        pixels = np.asarray(full.resize((size, size), method), dtype=np.uint8)
        pixel_digest = hashlib.sha1(full.tobytes() + f"{full.size}".encode()).hexdigest()
    return DecodedImage(pixels, hashlib.sha1(raw).hexdigest(), pixel_digest)
