"""Training throughput on a GPU: xraybench's engine vs a plain torchvision loop, ResNet-50 at 224 px.

    python benchmarks/gpu_throughput.py [--batches 32 64 128] [--steps 50] [--warmup 10]
                                        [--model resnet50] [--size 224] [--precision auto] [--device auto]

Both train the same architecture (random weights, 2 outputs, Adam: the engine's fused one, the plain loop's
torch default) with the same precision
(``auto``: bf16 autocast on compute capability ≥ 8.0, fp16 with loss scaling before) and
channels_last. The plain loop is what a careful user writes: the model, ``torch.autocast``, a
batch already on the GPU as float, ``zero_grad / backward / step`` (its output layer runs in the
autocast dtype; xraybench's in fp32, a small cost on xraybench's side). xraybench's engine is
``train_one_epoch`` over a ``BatchLoader`` whose uint8 images sit on the GPU and are
normalised per batch (grayscale replicated to RGB), as ``xraybench run`` trains. Each side
warms up (cuDNN autotuning, allocator) before the clock, and the clock is read after
``torch.cuda.synchronize()``. Prints images/s per batch size and their ratio, and the anchor:
about 2,500 img/s for ResNet-50 AMP training on one A100 (NVIDIA's DeepLearningExamples,
mixed precision, batch 256).

On a CPU it runs too (``--device cpu --size 64 --steps 3 --batches 8``), for a quick look and
for the tests; the figures that matter are a GPU's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from tabulate import tabulate

from xraybench import environment
from xraybench.data import BatchLoader
from xraybench.data.sources import Split
from xraybench.environment import synchronize
from xraybench.models.backbones import TORCHVISION_BACKBONES
from xraybench.models.registry import create_model
from xraybench.train import optim, speedups
from xraybench.train.engine import train_one_epoch
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import CHOICES, Precision, choose, final_layer_in_fp32

ANCHOR = "≈ 2,500 img/s: ResNet-50, AMP, one A100 (NVIDIA DeepLearningExamples)"


def xraybench_engine(
    model_name: str,
    size: int,
    batch: int,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: Precision,
    repeats: int,
) -> float:
    """Images/s of train_one_epoch: the median of ``repeats`` epochs of ``steps`` batches each."""
    torch.manual_seed(0)
    objective = OBJECTIVES["ce"]
    model = create_model(model_name, in_channels=3, image_size=size, num_outputs=2, pretrained=False).to(device)
    model, channels_last = speedups.prepare(model)
    if precision.autocast_dtype is not None:
        final_layer_in_fp32(model)
    images = torch.randint(0, 256, (batch * max(steps, warmup), 1, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (len(images),))
    split = Split(images[: batch * steps], labels[: batch * steps])
    mean, std = model.normalization or (0.5, 0.5)
    loader = BatchLoader(
        split, batch, device=device, channels=3, mean=mean, std=std, shuffle=True, channels_last=channels_last
    )
    # The engine's own optimizer (fused Adam where torch has it, as a case trains), not a plain torch.optim.Adam.
    optimizer = optim.build_optimizer("adam", model.parameters(), lr=1e-4, weight_decay=0.0, options={})
    scaler, loss_fn = precision.grad_scaler(device), objective.make_loss()
    warm = BatchLoader(
        Split(images[: batch * warmup], labels[: batch * warmup]),
        batch,
        device=device,
        channels=3,
        mean=mean,
        std=std,
        channels_last=channels_last,
    )
    train_one_epoch(model, warm, objective, loss_fn, optimizer, precision=precision, scaler=scaler)
    return median_rate(
        lambda: train_one_epoch(model, loader, objective, loss_fn, optimizer, precision=precision, scaler=scaler),
        batch * steps,
        repeats,
        device,
    )


def plain_loop(
    model_name: str,
    size: int,
    batch: int,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: Precision,
    repeats: int,
) -> float:
    """Images/s of a plain torchvision loop on float batches already on the device."""
    torch.manual_seed(0)
    extra = {"aux_logits": False, "init_weights": False} if model_name == "googlenet" else {}
    model = torchvision.models.get_model(model_name, weights=None, num_classes=2, **extra).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler, loss_fn = precision.grad_scaler(device), torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)

    def run(n: int) -> None:
        for _ in range(n):
            with precision.autocast(device):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    run(warmup)
    return median_rate(lambda: run(steps), batch * steps, repeats, device)


def median_rate(work, images: int, repeats: int, device: torch.device) -> float:
    """Images/s of ``work()`` (which trains on ``images`` images): the median of ``repeats`` timings,
    each between two synchronizations, so that queued GPU work is inside the clock."""
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", choices=[b.name for b in TORCHVISION_BACKBONES])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--steps", type=positive, default=50, help="timed steps per repeat")
    parser.add_argument("--warmup", type=positive, default=10, help="untimed steps first (cuDNN autotuning)")
    parser.add_argument("--repeats", type=positive, default=3, help="timed repeats; the median is printed")
    parser.add_argument("--precision", default="auto", choices=CHOICES)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    device = environment.resolve_device(args.device)
    environment.configure(device, deterministic=False)
    precision = choose(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{args.model} at {args.size} px, training, channels_last, {precision.name} ({precision.reason}); "
        f"{name}; torch {torch.__version__}; median of {args.repeats} × {args.steps} steps after {args.warmup}"
    )
    rows = []
    for batch in args.batches:
        common = (args.model, args.size, batch, args.steps, args.warmup, device, precision, args.repeats)
        ours, plain = xraybench_engine(*common), plain_loop(*common)
        rows.append([batch, f"{ours:,.0f}", f"{plain:,.0f}", f"{ours / plain:.2f}"])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(
        tabulate(
            rows, headers=["batch", "xraybench img/s", "plain loop img/s", "xraybench / plain"], disable_numparse=True
        )
    )
    print(f"anchor: {ANCHOR}")
    return rows


if __name__ == "__main__":
    main()
