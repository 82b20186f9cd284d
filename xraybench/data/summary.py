"""What the report shows about the images themselves, computed once per run and stored in
results.json so that the report never needs the data: intensity histograms per split and
class, a few sample images per split and class, and a thumbnail of every test image, in split
order, for the report's error gallery (small PNGs, base64; none beyond MAX_THUMBNAILS test images)."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch

from xraybench.data.sources import CLASSES, Dataset

BINS = 32
THUMBNAIL = 48  # px
MAX_THUMBNAILS = 2000  # about 1 KB each in results.json


def summarize(data: Dataset, samples_per_class: int = 4, sample_size: int = 96) -> dict:
    histograms, samples = {}, {}
    for name, split in data.splits.items():
        histograms[name], samples[name] = {}, {}
        for label, cls in enumerate(CLASSES):
            members = (split.labels == label).nonzero().squeeze(1)
            images = split.images[members]
            counts = torch.histc(images.float(), bins=BINS, min=0, max=256) if len(members) else torch.zeros(BINS)
            total = float(counts.sum()) or 1.0
            histograms[name][cls.lower()] = [round(float(c) / total, 6) for c in counts]
            samples[name][cls.lower()] = [
                _png(images[i, 0], sample_size) for i in range(min(samples_per_class, len(members)))
            ]
    test = data.splits.get("test")
    thumbnails = (
        [_png(test.images[i, 0], THUMBNAIL) for i in range(len(test))]
        if test is not None and len(test) <= MAX_THUMBNAILS
        else None
    )
    return {
        "histogram_bins": BINS,
        "histograms": histograms,
        "samples": samples,
        "image_size": data.image_size,
        "test_thumbnails": thumbnails,
    }


def _png(image: torch.Tensor, size: int) -> str:
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if img.size[0] > size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")
