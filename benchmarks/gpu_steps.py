"""The GPU check's own measurements (benchmarks/gpu_check.sh), one subcommand each; ``--help`` lists the options.

    python benchmarks/gpu_steps.py versions   # torch, CUDA, cuDNN, the device, --precision auto's choice, TF32
    python benchmarks/gpu_steps.py layout     # per model and precision: fused Adam's layout, host syncs of an epoch
    python benchmarks/gpu_steps.py kernel     # the HW3 CNN's step: GPU kernel time against wall time, seeds stacked

layout builds each model as the engine does, with its fused Adam, and after one training step checks that every
parameter, its gradient and its Adam moments share dtype, device, sizes and strides, as CUDA's fused kernel
demands (tests/test_cuda_layout.py holds it on the CPU); then it counts every host synchronisation of a short
epoch and an evaluation pass under ``torch.cuda.set_sync_debug_mode("warn")``, by source line. Each subcommand
ends with one line ``summary: …`` for the check's table, and exits 1 when a check fails. They run on a CPU too
(without host syncs or kernel times), for the tests.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity

from xraybench import environment
from xraybench.data import BatchLoader
from xraybench.data.sources import Split
from xraybench.models.registry import min_input_size, model_options
from xraybench.train import engine, optim, speedups
from xraybench.train.choices import CE
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import CHOICES, Precision, choose
from xraybench.train.stacked import StackedModel

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["hw3_cnn", "resnet18", "efficientnet_b0", "convnext_small"]  # issue 35: HW3, ResNet-18, EffNet-B0, ConvNeXt-S
PRECISIONS = ["fp32", "bf16", "fp16"]
MOMENTS = ("exp_avg", "exp_avg_sq")
SYNC_WARNING = "synchroniz"  # "called a synchronizing CUDA operation"
OBJECTIVE = OBJECTIVES[CE]
TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "optimizer_options": {}, "epochs": 1}
TRAIN |= {"scheduler": "none", "scheduler_options": {}}  # what engine._optimization reads: fused Adam, no schedule


# --- versions ---------------------------------------------------------------------------------------------------
def cmd_versions(args: argparse.Namespace) -> int:
    """What a run on this machine gets: versions, the device, ``auto``'s precision and TF32, as ``configure`` sets."""
    device, auto = args.device, choose("auto", args.device)
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    where = f"CPU, {torch.get_num_threads()} threads (no CUDA device)"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where = f"{props.name} (compute capability {props.major}.{props.minor}, {props.total_memory / 2**30:.0f} GiB)"
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuDNN {cudnn}\ndevice: {where}")
    print(f"--precision auto: {auto.name} ({auto.reason})")
    with warnings.catch_warnings():  # newer torch prefers its fp32_precision settings and says so
        warnings.simplefilter("ignore")
        matmul, conv = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    print(f"TF32: matmul {matmul}, cuDNN conv {conv}, float32 matmul precision {torch.get_float32_matmul_precision()}")
    print(
        f"summary: torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}; {where.split(' (')[0]}; "
        f"auto picks {auto.name}; TF32 matmul {'on' if matmul else 'off'}, conv {'on' if conv else 'off'}"
    )
    return 0


# --- layout -----------------------------------------------------------------------------------------------------
def build(name: str, device: torch.device, precision: Precision, size: int):
    """``name`` as the engine builds a case of it (random init, no downloads): model, optimizer, loader settings."""
    options, side = (
        {"pretrained": False} if "pretrained" in model_options(name) else {},
        max(size, min_input_size(name)),
    )
    data = SimpleNamespace(channels=3 if options else 1, input_size=side, mean=0.5, std=0.5, pad_to=0)
    case = SimpleNamespace(model=SimpleNamespace(name=name, options=options), data=data, train=SimpleNamespace(**TRAIN))
    model, channels_last = engine._build_model(case, OBJECTIVE, device, precision)
    optimizer, _ = engine._optimization(case.train, model)
    return model, optimizer, engine._batch_settings(case, model, device, channels_last), side


def loader(settings: dict, batch: int, batches: int, side: int, *, shuffle: bool = True) -> BatchLoader:
    """``batches`` batches of random uint8 images on the device, as a case's loader presents them."""
    images = torch.randint(0, 256, (batch * batches, 1, side, side), dtype=torch.uint8)
    return BatchLoader(Split(images, torch.randint(0, 2, (len(images),))), batch, shuffle=shuffle, **settings)


def mismatches(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Each trainable parameter whose gradient or Adam moments the CUDA fused kernel would refuse (ATen's
    ``check_fast_path_restrictions``: one dtype and device, dense, the same sizes and strides), and why."""
    found = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        state = optimizer.state.get(p, {})
        tensors = {"param": p, "grad": p.grad, **{k: state.get(k) for k in MOMENTS}}
        missing = [k for k, t in tensors.items() if t is None]
        if missing:
            found.append(f"{name}: no {' or '.join(missing)} after the step")
            continue
        seen = {k: (t.dtype, t.device, t.layout, tuple(t.shape), t.stride()) for k, t in tensors.items()}
        if not optim.fused_kernel_accepts(list(tensors.values())):
            found.append(f"{name}: " + ", ".join(f"{k} {d} {dev} strides {s}" for k, (d, dev, _, _, s) in seen.items()))
    return found


def step_and_check(model: nn.Module, optimizer, batches: BatchLoader, precision: Precision) -> list[str]:
    """One training step of the engine's (``train_one_epoch`` over one batch), then ``mismatches``."""
    engine.train_one_epoch(model, batches, OBJECTIVE, OBJECTIVE.make_loss(), optimizer, precision=precision)
    return mismatches(model, optimizer)


def _site(filename: str, lineno: int) -> str:
    """A source line, relative to the repository or to site-packages."""
    path = filename.replace(str(ROOT) + "/", "")
    return f"{path.split('site-packages/')[-1]}:{lineno}"


@contextmanager
def host_syncs(sites: Counter):
    """Count every synchronising CUDA call in the block by where it was made: the innermost Python line, and
    the innermost line of xraybench's own code that led to it."""

    def record(message, category, filename, lineno, file=None, line=None):
        if SYNC_WARNING not in str(message):
            return shown(message, category, filename, lineno, file, line)
        stack = traceback.extract_stack()[:-1]
        ours = next(
            (f for f in reversed(stack) if f.filename.startswith(str(ROOT)) and "site-packages" not in f.filename), None
        )
        code = next((f.line for f in reversed(stack) if (f.filename, f.lineno) == (filename, lineno)), "") or ""
        via = f" via {_site(ours.filename, ours.lineno)}" if ours and ours.filename != filename else ""
        sites[f"{_site(filename, lineno)} `{code.strip()}`{via}"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        shown, warnings.showwarning = warnings.showwarning, record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield sites
        finally:
            torch.cuda.set_sync_debug_mode("default")


def epoch_syncs(model, optimizer, settings: dict, side: int, precision: Precision, args) -> tuple[Counter, Counter]:
    """Host syncs of one short epoch (``args.steps`` batches, ``train_one_epoch``) and of one evaluation pass."""
    train, val = loader(settings, args.batch, args.steps, side), loader(settings, args.batch, 2, side)
    with host_syncs(Counter()) as in_training:
        engine.train_one_epoch(model, train, OBJECTIVE, OBJECTIVE.make_loss(), optimizer, precision=precision)
    with host_syncs(Counter()) as in_evaluation:
        engine.evaluate(model, val, OBJECTIVE, precision=precision)
    return in_training, in_evaluation


def check_model(name: str, chosen: str, device: torch.device, args) -> tuple[bool, float | None, list[str]]:
    """One model in one precision: its layout after a step and, on CUDA, the host syncs of a short epoch.
    Returns whether the layout is ok, the syncs per training step (None on a CPU) and the lines to print."""
    precision, label = choose(chosen, device), f"{name:<16} {chosen:<5}"
    torch.manual_seed(0)
    model, optimizer, settings, side = build(name, device, precision, args.size)
    refused = step_and_check(model, optimizer, loader(settings, args.batch, 1, side), precision)
    line = f"{label} layout " + (f"mismatch in {len(refused)} parameter(s): {refused[0]}" if refused else "ok")
    lines = [f"    refused: {r}" for r in refused[1:]]
    if device.type != "cuda":
        return not refused, None, [f"{line}; host syncs not checked (set_sync_debug_mode needs CUDA)", *lines]
    train, evaluation = epoch_syncs(model, optimizer, settings, side, precision, args)
    per_step = sum(train.values()) / args.steps
    line += f"; host syncs: {per_step:.2f}/step ({sum(train.values())} in {args.steps} training steps)"
    line += f", {sum(evaluation.values())} in evaluation"
    lines += [f"    train ×{n}  {site}" for site, n in train.items()]
    lines += [f"    eval ×{n}  {site}" for site, n in evaluation.items()]
    return not refused, per_step, [line, *lines]


def cmd_layout(args: argparse.Namespace) -> int:
    device, bad, per_step = args.device, [], {}
    for name in args.models:
        for chosen in args.precisions:
            try:
                ok, syncs, lines = check_model(name, chosen, device, args)
            except Exception as exc:  # the check goes on to the next model, and says what stopped this one
                ok, syncs = False, None
                lines = [f"{name:<16} {chosen:<5} error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"]
            print("\n".join(lines), flush=True)
            if not ok:
                bad.append(f"{name} {chosen}")
            if syncs is not None:
                per_step[f"{name} {chosen}"] = syncs
            torch.cuda.empty_cache()
    checked = len(args.models) * len(args.precisions)
    summary = f"layout ok in {checked - len(bad)}/{checked} ({', '.join(args.models)} in {', '.join(args.precisions)})"
    summary += f"; not in {', '.join(bad)}" if bad else ""
    if per_step:
        worst = max(per_step, key=per_step.get)
        summary += f"; host syncs per training step at most {per_step[worst]:.2f} ({worst})"
    print(f"summary: {summary}")
    return 1 if bad else 0


# --- kernel -----------------------------------------------------------------------------------------------------
def stacked_model(models: list[nn.Module], image_shape: tuple[int, int, int]) -> nn.Module:
    """The K models as one, by xraybench's seed batching (train/stacked.py), prepared as the engine prepares it."""
    return speedups.prepare(StackedModel(models, image_shape))[0]


def timed(step: Callable[[], None], steps: int, device: torch.device) -> tuple[float, float | None]:
    """Seconds per step: wall time between synchronised clocks, and the GPU's kernel time (the profiler's sum of
    kernel self times, from a second run, so that profiling does not slow the clock; None on a CPU)."""

    def run() -> None:
        for _ in range(steps):
            step()
        environment.synchronize(device)

    for _ in range(3):  # cuDNN autotuning, the allocator, fused Adam's first step
        step()
    environment.synchronize(device)
    start = time.perf_counter()
    run()
    wall = (time.perf_counter() - start) / steps
    if device.type != "cuda":
        return wall, None
    with torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    return wall, sum(e.self_device_time_total for e in kernels) / 1e6 / steps


def training_step(model, x: torch.Tensor, y: torch.Tensor, precision: Precision, seeds: int = 1) -> Callable:
    """The engine's step (its fused Adam) on batches already on the device; with K seeds stacked (x packed along
    the channels, [B, K·C, H, W], as train/seed_batch.py feeds it), the loss is the sum of each seed's mean loss."""
    device, loss_fn, scaler = x.device, OBJECTIVE.make_loss(), precision.grad_scaler(x.device)
    optimizer = optim.build_optimizer("adam", model.parameters(), lr=1e-3, weight_decay=1e-4, options={})

    def step() -> None:
        with precision.autocast(device):
            logits = model(x)
        loss = loss_fn(logits.float().reshape(y.numel(), -1), OBJECTIVE.target(y.flatten())) * seeds
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def measured(label: str, seeds: int, wall: float, busy: float | None) -> str:
    gpu = f", kernels {busy * 1e3:.2f} ms/step, GPU busy {100 * busy / wall:.0f}%" if busy is not None else ""
    return f"{label}: {wall * 1e3 / seeds:.2f} ms per seed-step{gpu}"


def measure_size(side: int, device: torch.device, precision: Precision, args) -> list[str]:
    """The HW3 CNN at ``side`` px, one seed and ``args.seeds`` stacked (each seed its own batch)."""
    torch.manual_seed(0)
    model, _, settings, _ = build("hw3_cnn", device, precision, side)
    x, y = next(iter(loader(settings, args.batch, 1, side)))
    wall, busy = timed(training_step(model, x, y, precision), args.steps, device)
    found = [measured(f"{side} px, 1 seed", 1, wall, busy)]
    stacked = stacked_model([build("hw3_cnn", device, precision, side)[0] for _ in range(args.seeds)], x.shape[1:])
    xs, ys = zip(*loader(settings, args.batch, args.seeds, side))
    packed = training_step(stacked, torch.cat(xs, dim=1), torch.stack(ys, dim=1), precision, args.seeds)
    k_wall, k_busy = timed(packed, args.steps, device)
    found.append(measured(f"{side} px, {args.seeds} seeds stacked", args.seeds, k_wall, k_busy))
    found[-1] += f" ({wall * args.seeds / k_wall:.1f}x one seed's images/s)"
    return found


def cmd_kernel(args: argparse.Namespace) -> int:
    device, precision = args.device, choose(args.precision, args.device)
    print(f"hw3_cnn training step, batch {args.batch}, {precision.name} ({precision.reason}), {args.steps} steps")
    found, failed = [], False
    for side in args.sizes:
        try:
            lines = measure_size(side, device, precision, args)
        except Exception as exc:  # the other sizes go on; the table says what stopped this one
            failed, lines = True, [f"{side} px failed: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}"]
        print("\n".join(lines), flush=True)
        found += lines
        torch.cuda.empty_cache()
    print(f"summary: {'; '.join(found)}")
    return 1 if failed else 0


# --- the command line -------------------------------------------------------------------------------------------
def positive(text: str) -> int:
    if int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    versions = sub.add_parser("versions", help="torch, CUDA, cuDNN, the device, auto's precision, TF32")
    versions.set_defaults(func=cmd_versions)
    layout = sub.add_parser("layout", help="fused Adam's layout after one step; host syncs of one epoch")
    layout.add_argument("--models", nargs="+", default=MODELS, metavar="MODEL")
    layout.add_argument("--precisions", nargs="+", default=PRECISIONS, choices=PRECISIONS)
    layout.add_argument("--size", type=positive, default=64, help="input side in px (at least the model's minimum)")
    layout.add_argument("--batch", type=positive, default=16)
    layout.add_argument("--steps", type=positive, default=20, help="training steps of the epoch under sync debug")
    layout.set_defaults(func=cmd_layout)
    kernel = sub.add_parser("kernel", help="the HW3 CNN step: GPU kernel time against wall time")
    kernel.add_argument("--sizes", type=positive, nargs="+", default=[64, 256])
    kernel.add_argument("--batch", type=positive, default=32)
    kernel.add_argument("--seeds", type=positive, default=5, help="K, the seeds stacked into one model")
    kernel.add_argument("--steps", type=positive, default=20, help="timed steps, and as many profiled")
    kernel.add_argument("--precision", default="auto", choices=CHOICES)
    kernel.set_defaults(func=cmd_kernel)
    for each, device in ((versions, "auto"), (layout, "cuda"), (kernel, "cuda")):
        each.add_argument("--device", default=device, choices=["auto", "cpu", "cuda"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.device = environment.resolve_device(args.device)
    environment.configure(args.device, deterministic=False)  # as a run sets torch up (cuDNN autotuning)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
