"""What a model costs, for HW4's model-selection table: parameters, FLOPs at the case's
input size (torch.utils.flop_counter), weight file size, ImageNet acc@1 from the weights'
metadata, and measured inference latency (in the run's precision). Works without the weight
file: the architecture is built with random weights."""

from __future__ import annotations

import contextlib
import functools
import json
import statistics
import time
from typing import TYPE_CHECKING

import torch
from torch.utils.flop_counter import FlopCounterMode

from xraybench.environment import synchronize
from xraybench.models import registry
from xraybench.models.backbones import TIMM_BACKBONES, TORCHVISION_BACKBONES, required_weights

if TYPE_CHECKING:
    from xraybench.cases import Case

IMAGENET_CLASSES = 1000
_TORCHVISION = {b.name: b for b in TORCHVISION_BACKBONES}
_TIMM = {b.name: b for b in TIMM_BACKBONES}


def model_info(
    case: Case,
    device: torch.device,
    latency_runs: int = 10,
    *,
    num_outputs: int,
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """Costs of the case's architecture with ``num_outputs`` outputs (its loss's), latency measured under autocast to
    ``autocast_dtype`` (the run's precision; default fp32). Pretrained backbones are counted in their
    ImageNet configuration (1000-class head), so parameters match the weights' published figures.

    Measured once per process for each architecture, input, device and precision (``_costs``): the seeds of a
    case, and the cases of a sweep that share a model, reuse it (VGG16 alone initialises 138 M parameters)."""
    model, data = case.model, case.data
    options = json.dumps(model.options, sort_keys=True, default=str)
    builder = registry.builder(model.name)  # a name registered anew (a notebook, a test) is another architecture
    key = (model.name, builder, options, data.channels, data.input_size, num_outputs, str(device), latency_runs)
    return dict(_costs(*key, autocast_dtype))


@functools.lru_cache(maxsize=64)
def _costs(name, builder, options, channels, size, num_outputs, device, latency_runs, autocast_dtype) -> dict:
    device, options = torch.device(device), json.loads(options)
    weights = required_weights(name, options)
    imagenet = weights is not None
    outputs = IMAGENET_CLASSES if imagenet else num_outputs
    options = {**options, "pretrained": False} if imagenet else options
    model = (
        registry.create_model(name, in_channels=channels, image_size=size, num_outputs=outputs, **options)
        .to(device)
        .eval()
    )
    flops = forward_flops(model, channels, size, device)
    x = torch.zeros(1, channels, size, size, device=device)
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for _ in range(3):  # warm-up
            model(x)
        times = []
        for _ in range(latency_runs):
            synchronize(device)
            t0 = time.perf_counter()
            model(x)
            synchronize(device)
            times.append(time.perf_counter() - t0)
    info = {
        "params": sum(p.numel() for p in model.parameters()),
        "flops": flops,
        "input": f"{channels}×{size}×{size}",
        "latency_ms": 1000 * statistics.median(times),
        "weights": None,
        "imagenet_acc1": None,
        "file_size_mb": None,
    }
    if imagenet:
        info.update(_weights_meta(name, weights))
    return info


def forward_flops(model: torch.nn.Module, channels: int, size: int, device: torch.device | str = "cpu") -> int:
    """FLOPs of one forward pass of one image (torch.utils.flop_counter: two per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, channels, size, size, device=device))
    return int(counter.get_total_flops())


def _weights_meta(name: str, file) -> dict:
    meta = {"weights": file.path.name, "file_size_mb": file.path.stat().st_size / 2**20 if file.present else None}
    backbone = _TORCHVISION.get(name)
    if backbone is not None:
        w = backbone.weights_enum()
        meta["weights"] = backbone.weights
        meta["imagenet_acc1"] = w.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        meta["file_size_mb"] = meta["file_size_mb"] or w.meta.get("_file_size")
    if name in _TIMM:
        meta["weights"] = f"timm {_TIMM[name].arch}"
    return meta
