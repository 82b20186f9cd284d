"""Built-in synthetic chest radiographs: deterministic from a seed, at any resolution.

Anatomy (body outline, lung fields, mediastinum, heart, ribs, vascular markings) is drawn in
normalised coordinates, so the same seed gives the same patients at 32 or 512 px. Pneumonia
is one to four patchy consolidations of varying size and contrast inside the lung fields,
some subtle enough to be missed; normal images carry small benign densities so that "any
blob" is not the answer. Each split is imaged by an acquisition (exposure, contrast, noise,
patient size, positioning); the test split uses a shifted one, as a second hospital would,
so the validation-vs-test gap of HW4-E can be observed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GENERATOR_VERSION = 1  # bump when the images change, so caches are rebuilt
CHUNK = 64  # images drawn per random-generator seed; fixed so results never depend on batching
MAX_PATCHES = 4


@dataclass(frozen=True)
class Acquisition:
    """Ranges (low, high) from which each image's acquisition settings are drawn uniformly."""

    contrast: tuple[float, float]
    brightness: tuple[float, float]
    gamma: tuple[float, float]
    noise: tuple[float, float]
    patient_scale: tuple[float, float]
    rotation_deg: tuple[float, float]
    heel: tuple[float, float]  # top-to-bottom exposure gradient
    prevalence: float  # fraction of pneumonia


TRAIN_SITE = Acquisition(
    contrast=(0.9, 1.1),
    brightness=(-0.04, 0.04),
    gamma=(0.9, 1.1),
    noise=(0.02, 0.045),
    patient_scale=(0.85, 1.0),
    rotation_deg=(-4, 4),
    heel=(-0.03, 0.03),
    prevalence=0.74,
)
TEST_SITE = Acquisition(
    contrast=(0.7, 0.95),
    brightness=(0.0, 0.1),
    gamma=(1.1, 1.4),
    noise=(0.04, 0.07),
    patient_scale=(0.92, 1.08),
    rotation_deg=(-8, 8),
    heel=(0.0, 0.08),
    prevalence=0.625,
)
SITES = {"train": TRAIN_SITE, "val": TRAIN_SITE, "test": TEST_SITE}
SPLIT_SALT = {"train": 1, "val": 2, "test": 3}


def generate_split(split: str, n: int, image_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``split`` as uint8 [n, 1, S, S] and labels int64 [n] (1 = pneumonia)."""
    images, labels = [], []
    for start in range(0, n, CHUNK):
        g = torch.Generator().manual_seed(hash_seed(seed, SPLIT_SALT[split], start // CHUNK))
        x, y = _draw(min(CHUNK, n - start), image_size, SITES[split], g)
        images.append(x)
        labels.append(y)
    if not images:
        return torch.zeros(0, 1, image_size, image_size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    return torch.cat(images), torch.cat(labels)


def hash_seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def _uniform(g: torch.Generator, n: int, bounds: tuple[float, float], *shape: int) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def _ellipse(x, y, cx, cy, ax, ay, sharpness: float = 14.0):
    """Soft mask, 1 inside the ellipse and 0 outside."""
    r = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    return torch.sigmoid((1.0 - r) * sharpness)


def _smooth_noise(g: torch.Generator, n: int, grid: int, size: int) -> torch.Tensor:
    """Low-frequency noise in [0, 1] from a coarse random grid, upsampled."""
    coarse = torch.rand(n, 1, grid, grid, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[:, 0]


def _draw(n: int, s: int, site: Acquisition, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    u = lambda bounds: _uniform(g, n, bounds, 1, 1)  # noqa: E731  one value per image
    labels = (torch.rand(n, generator=g) < site.prevalence).long()

    # Coordinates in [-1, 1], rotated per image (patient positioning).
    axis = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1
    y0, x0 = torch.meshgrid(axis, axis, indexing="ij")
    theta = u(site.rotation_deg) * math.pi / 180
    x = torch.cos(theta) * x0 + torch.sin(theta) * y0
    y = -torch.sin(theta) * x0 + torch.cos(theta) * y0

    scale = u(site.patient_scale)
    width = scale * u((0.92, 1.08))  # broad or narrow chest
    body = _ellipse(x, y, 0, 0.2, 0.95 * width, 1.1 * scale, 10)
    lung_w, lung_h = 0.25 * width * u((0.9, 1.1)), 0.56 * scale * u((0.9, 1.08))
    lung_y = -0.12 * scale
    right_lung = _ellipse(x, y, -0.37 * width, lung_y, lung_w, lung_h)
    left_lung = _ellipse(x, y, 0.37 * width, lung_y, lung_w * 0.95, lung_h * 0.97)
    lungs = torch.maximum(right_lung, left_lung)
    mediastinum = _ellipse(x, y, 0, 0.0, 0.13 * width, 0.8 * scale, 6)
    heart = _ellipse(
        x, y, 0.1 * width * u((0.6, 1.4)), 0.22 * scale, 0.24 * width * u((0.85, 1.2)), 0.19 * scale * u((0.9, 1.15))
    )
    thorax = _ellipse(x, y, 0, lung_y, 0.62 * width, 0.6 * scale, 8)

    # Posterior ribs: arched bands across the thorax.
    rib_freq = u((5.5, 6.5)) * 2 * math.pi / scale
    rib_wave = 0.5 + 0.5 * torch.sin((y + 0.35 * x**2) * rib_freq + u((0, 2 * math.pi)))
    ribs = ((rib_wave - 0.65) / 0.35).clamp(0, 1) * thorax

    markings = _smooth_noise(g, n, 10, s) * 0.6 + _smooth_noise(g, n, 28, s) * 0.4
    img = 0.04 + 0.5 * body - 0.32 * lungs * body + 0.16 * mediastinum + 0.14 * heart
    img = img + 0.08 * ribs + 0.07 * (markings - 0.5) * lungs

    # Benign small densities in any image (granulomas, vessels end-on): not pneumonia.
    nodule = _ellipse(x, y, u((-0.5, 0.5)), u((-0.5, 0.3)), u((0.02, 0.045)), u((0.02, 0.045)), 6)
    img = img + 0.12 * nodule * (torch.rand(n, 1, 1, generator=g) < 0.35) * lungs

    img = img + _consolidations(g, x, y, labels, width, scale, lung_y, lungs)

    # Acquisition: contrast, brightness, gamma, heel effect, noise, quantisation.
    img = (img - 0.45) * u(site.contrast) + 0.45 + u(site.brightness) + u(site.heel) * y
    img = img.clamp(1e-4, 1) ** u(site.gamma)
    img = img + u(site.noise) * torch.randn(n, s, s, generator=g)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    return images, labels


def _consolidations(g, x, y, labels, width, scale, lung_y, lungs) -> torch.Tensor:
    """Patchy opacities for the pneumonia images: 1–4 blobs, textured, some subtle."""
    n, s = labels.shape[0], x.shape[-1]
    k = MAX_PATCHES
    count = torch.randint(1, k + 1, (n, 1), generator=g)
    active = (torch.arange(k).unsqueeze(0) < count) & labels.bool().unsqueeze(1)  # [n, k]
    side = torch.where(torch.rand(n, k, generator=g) < 0.5, -1.0, 1.0)
    cx = side * 0.37 * width.view(n, 1) + 0.13 * width.view(n, 1) * (2 * torch.rand(n, k, generator=g) - 1)
    cy = lung_y.view(n, 1) if torch.is_tensor(lung_y) else lung_y
    cy = cy + scale.view(n, 1) * (-0.3 + 0.72 * torch.rand(n, k, generator=g) ** 0.7)  # lower lobes likelier
    radius = 0.07 + 0.16 * torch.rand(n, k, generator=g)
    severity = torch.rand(n, 1, generator=g) ** 1.5  # many mild cases, few florid ones
    contrast = (0.25 + 0.45 * severity) * (0.6 + 0.4 * torch.rand(n, k, generator=g))
    d2 = (x.unsqueeze(1) - cx.view(n, k, 1, 1)) ** 2 + (y.unsqueeze(1) - cy.view(n, k, 1, 1)) ** 2
    blobs = torch.exp(-d2 / (2 * radius.view(n, k, 1, 1) ** 2)) * (contrast * active).view(n, k, 1, 1)
    texture = 0.35 + 0.65 * _smooth_noise(g, n, 18, s)
    return blobs.sum(1) * texture * lungs
