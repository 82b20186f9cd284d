"""Optimizers and learning-rate schedulers by name: tables, not if/elif chains.

Cases name an optimizer and a scheduler (the names, and the options a case may give, are declared in
``choices``, which needs no torch); their options are the constructor's keyword arguments, whose signature
the case validation asks for an option ``choices`` does not list.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.optim import lr_scheduler

from xraybench.train import choices

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    name: getattr(torch.optim, choice.implementation) for name, choice in choices.OPTIMIZERS.items()
}


def _no_defaults(epochs: int) -> dict:
    return {}


@dataclass(frozen=True)
class SchedulerKind:
    """A scheduler class and defaults that depend on the number of epochs."""

    cls: type | None
    defaults: Callable[[int], dict] = field(default=_no_defaults)


_EPOCH_DEFAULTS: dict[str, Callable[[int], dict]] = {
    "cosine": lambda e: {"T_max": e},
    # MedMNIST v2's schedule: ×0.1 at half and at three quarters of the epochs (50 and 75 of 100), so a
    # profile that shortens the training shortens the schedule with it.
    "multistep": lambda e: {"milestones": [e // 2, 3 * e // 4], "gamma": 0.1},
}
SCHEDULERS: dict[str, SchedulerKind] = {
    name: SchedulerKind(
        getattr(lr_scheduler, choice.implementation) if choice.implementation else None,
        _EPOCH_DEFAULTS.get(name, _no_defaults),
    )
    for name, choice in choices.SCHEDULERS.items()
}


def accepted_options(factory: Callable, skip: tuple[str, ...]) -> list[str]:
    """Keyword arguments a constructor accepts, except the positional ones we pass ourselves."""
    return [p for p in inspect.signature(factory).parameters if p not in skip and p != "self"]


def optimizer_options(name: str) -> list[str]:
    return accepted_options(OPTIMIZERS[name], skip=("params", "lr", "weight_decay"))


def scheduler_options(name: str) -> list[str]:
    kind = SCHEDULERS[name]
    return accepted_options(kind.cls, skip=("optimizer", "last_epoch", "verbose")) if kind.cls else []


def build_optimizer(name: str, params, *, lr: float, weight_decay: float, options: dict) -> torch.optim.Optimizer:
    """The named optimizer, with its fused kernel where it has one and the case does not choose.

    A fused step updates every parameter in one pass: measured 1.9–2.0× per training step of
    the HW3 MLP on the CPU (its step is dominated by Adam over 2–8 M weights); same update rule.
    A fused optimizer's parameters that have a size-1 dimension get ``_grad_in_param_strides``.
    """
    cls = OPTIMIZERS[name]
    chosen = {"fused", "foreach"} & options.keys()
    speed = {"fused": True} if "fused" in inspect.signature(cls).parameters and not chosen else {}
    optimizer = cls(params, lr=lr, weight_decay=weight_decay, **speed, **options)
    if optimizer.defaults.get("fused"):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.requires_grad and 1 in p.shape:
                    p.register_post_accumulate_grad_hook(_grad_in_param_strides)
    return optimizer


def _grad_in_param_strides(param: torch.Tensor) -> None:
    """Give a freshly accumulated gradient exactly its parameter's strides (a post-accumulate-grad hook).

    CUDA's fused kernel stops the step unless each gradient has its parameter's strides ("params, grads,
    exp_avgs, and exp_avg_sqs must have same dtype, device, and layout"), and before torch 2.5 it compares
    them in size-1 dimensions too (pytorch#106951), where autograd lets a gradient keep the strides its
    kernel chose. Channels-last conv weights of shape (32, 1, 3, 3), (C, 1, k, k) or (C_out, C_in, 1, 1)
    are such tensors: a conv kernel that works in the contiguous format (CUDA's slow_conv2d, which runs bf16
    convs where cuDNN has no bf16) would stop the first step. cuDNN returns the weight's own strides, so
    with cuDNN the copy does not run.
    """
    grad = param.grad
    if grad is not None and grad.stride() != param.stride():
        param.grad = grad.new_empty_strided(param.shape, param.stride()).copy_(grad)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, *, epochs: int, options: dict):
    """An epoch-stepped scheduler, or None for ``"none"``."""
    kind = SCHEDULERS[name]
    if kind.cls is None:
        return None
    return kind.cls(optimizer, **{**kind.defaults(epochs), **options})


def fused_kernel_accepts(tensors: list[torch.Tensor]) -> bool:
    """Whether the CUDA fused kernel takes a parameter's tensors (parameter, gradient, moments) as they are: ATen's
    ``check_fast_path_restrictions`` wants one device, dtype, layout, sizes and strides, each tensor dense (its
    elements fill ``numel`` consecutive places). The CPU kernel checks none of it; the CPU tests and the GPU check
    ask this."""
    described = {(t.device, t.dtype, t.layout, tuple(t.shape), t.stride()) for t in tensors}
    return len(described) == 1 and all(_dense(t) for t in tensors)


def _dense(t: torch.Tensor) -> bool:
    expected = 1
    for size, stride in sorted(((n, s) for n, s in zip(t.shape, t.stride()) if n != 1), key=lambda d: d[1]):
        if stride != expected:
            return False
        expected *= size
    return True
