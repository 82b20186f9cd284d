"""Training and evaluation: ``train_one_epoch``, ``evaluate`` and ``train_case``.

One linear loop. Losses and correct counts are accumulated on the device and read once per
epoch, so a CUDA run never waits on the host per step. Model selection uses the validation
split only; the test split is evaluated once, with the best-on-validation weights. The
arithmetic (fp32, or bf16/fp16 autocast with an fp32 output layer and loss) comes from a
``Precision`` (xraybench/train/precision.py).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from xraybench.data import BatchLoader, Dataset
from xraybench.environment import synchronize
from xraybench.models import registry
from xraybench.stats.decision import says_pneumonia
from xraybench.train import memory, optim, selection, speedups
from xraybench.train.features import cached_features
from xraybench.train.metrics import auc, binary_metrics
from xraybench.train.objectives import OBJECTIVES, Objective
from xraybench.train.precision import FP32, Precision, final_layer_in_fp32

if TYPE_CHECKING:
    from xraybench.cases import Case


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Evaluation:
    loss: float
    acc: float
    probs: torch.Tensor  # P(pneumonia) per image, on the CPU
    labels: torch.Tensor


def train_one_epoch(
    model: nn.Module,
    loader: BatchLoader,
    objective: Objective,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    precision: Precision = FP32,
    scaler: torch.amp.GradScaler | None = None,
    on_batch: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """One pass over the training batches; returns (mean loss, accuracy).

    ``scaler`` scales fp16 losses (pass the same one every epoch: it learns its scale)."""
    model.train()
    device = loader.device
    scaler = scaler or precision.grad_scaler(device)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in loader:
        with precision.autocast(device):
            logits = model(x)
        loss = loss_fn(logits.float(), objective.target(y))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.detach() * y.shape[0]
        correct += (says_pneumonia(objective.pneumonia_prob(logits.detach())).long() == y).sum()
        if on_batch:
            on_batch()
    n = loader.num_images
    return total_loss.item() / n, correct.item() / n


def evaluate(model: nn.Module, loader: BatchLoader, objective: Objective, **options) -> Evaluation:
    """Loss, accuracy and per-image probabilities over one split, in eval mode (``evaluate_seeds`` for one seed)."""
    return evaluate_seeds(model, loader, objective, seeds=1, **options)[0]


def evaluate_seeds(
    model: nn.Module,
    loader: BatchLoader,
    objective: Objective,
    *,
    seeds: int,
    precision: Precision = FP32,
    loss_mean: str = "image_mean",
    loss_batch: int = 256,
    forward_batch: memory.ForwardBatch | None = None,
    pad: bool | None = None,
) -> list[Evaluation]:
    """One ``Evaluation`` per seed of a model whose logits are [B, seeds·outputs] (seeds > 1: a stacked model,
    train/stacked.py). The loss averages the images' losses as ``loss_mean`` says (``selection.VAL_LOSSES``;
    ``batch_mean`` over batches of ``loss_batch``, whatever batches the forward passes use: ``forward_batch``
    halves them where they run out of memory). ``pad`` (default: on CUDA, where a split has more than one batch)
    fills a ragged last batch to the loader's batch with zeros, so cuDNN meets one evaluation shape, not three."""
    forward_batch = forward_batch or memory.ForwardBatch(loader.batch_size)
    pad = speedups.pads(loader) if pad is None else pad
    logits, labels = forward_batch.run(loader, lambda: _logits(model, loader, seeds, precision, pad))
    return [_evaluation(logits[:, k], labels, objective, loss_mean, loss_batch) for k in range(seeds)]


@torch.inference_mode()
def _logits(model, loader, seeds: int, precision: Precision, pad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 logits [N, seeds, outputs] and labels over the split, at the loader's batch (``evaluate_seeds`` runs it
    again, smaller, where it runs out of memory)."""
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        n = x.shape[0]
        with precision.autocast(loader.device):
            out = model(speedups.padded(x, loader.batch_size) if pad else x)
        logits.append(out[:n].float().reshape(n, seeds, -1))
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def _evaluation(logits: torch.Tensor, labels: torch.Tensor, objective: Objective, loss_mean: str, loss_batch: int):
    per_image_loss = objective.make_loss(reduction="none")
    losses = per_image_loss(logits, objective.target(labels)).reshape(-1)
    probs_cpu, labels_cpu = objective.pneumonia_prob(logits).cpu(), labels.cpu()
    acc = (says_pneumonia(probs_cpu).long() == labels_cpu).float().mean().item()
    loss = selection.VAL_LOSSES[loss_mean](losses.cpu().double().numpy(), loss_batch)
    return Evaluation(loss, acc, probs_cpu, labels_cpu)


def train_case(
    case: Case,
    data: Dataset,
    device: torch.device,
    *,
    eval_batch_size: int = 256,
    precision: Precision = FP32,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``case`` on ``data`` and test its best-on-validation weights.

    Returns {"history": [per-epoch dict], "metrics": {...}, "predictions": {"val": [...],
    "test": [...]}}, the predictions being P(pneumonia) per image in split order (validation at
    the best epoch). Raises ``Diverged`` on a non-finite training loss.
    """
    tr = case.train
    torch.manual_seed(tr.seed)
    objective = OBJECTIVES[tr.loss]
    model, channels_last = _build_model(case, objective, device, precision)
    loss_fn = objective.make_loss()
    batches = _batch_settings(case, model, device, channels_last)
    forward_batch = memory.ForwardBatch(eval_batch_size)  # evaluation's, halved where it runs out of memory
    # A frozen backbone gives the same features every epoch: compute them once (in order, to match the labels).
    cache_features = tr.feature_cache and getattr(model, "features_fixed", False) and not case.data.augment
    if cache_features:
        train_loader = BatchLoader(data.splits["train"], eval_batch_size, **batches)
    else:
        train_loader = BatchLoader(
            data.splits["train"], tr.batch_size, shuffle=True, seed=tr.seed, augment=case.data.augment, **batches
        )
    val_loader = BatchLoader(data.splits["val"], eval_batch_size, **batches)
    test_loader = BatchLoader(data.splits["test"], eval_batch_size, **batches)

    memory_meter = memory.PeakMeter.start(device)
    synchronize(device)
    start = time.perf_counter()  # wall time counts the one-time feature pass too
    net, feature_pass_s = model, None
    if cache_features:  # the head trains on them; rebinding the names frees the images on the device
        t0 = time.perf_counter()
        train_loader, val_loader, test_loader = cached_features(
            model.backbone, (train_loader, val_loader, test_loader), tr, forward_batch, precision
        )
        synchronize(device)
        net, feature_pass_s = model.head, time.perf_counter() - t0

    optimizer, scheduler = _optimization(tr, net)
    scaler = precision.grad_scaler(device)

    evaluation = dict(loss_mean=tr.val_loss, loss_batch=tr.eval_batch_size, forward_batch=forward_batch)
    history, best, best_state, best_val_probs = [], None, None, None
    kept_by, stopping = selection.SELECT_BY[tr.select_by], selection.EarlyStopping(tr.early_stopping, tr.select_by)
    for epoch in range(1, tr.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_one_epoch(
            net, train_loader, objective, loss_fn, optimizer, precision=precision, scaler=scaler, on_batch=on_batch
        )
        t1 = time.perf_counter()  # .item() in train_one_epoch already synchronised
        if not math.isfinite(train_loss):
            raise Diverged(f"diverged at epoch {epoch}: training loss is {train_loss}")
        val = evaluate(net, val_loader, objective, precision=precision, **evaluation)
        if scheduler is not None:
            scheduler.step()
        row = _epoch_row(epoch, train_loss, train_acc, val, lr, train_time_s=t1 - t0, started=t0)
        history.append(row)
        if best is None or kept_by(row) > kept_by(best):
            best, best_state, best_val_probs = row, copy.deepcopy(net.state_dict()), val.probs
        if on_epoch:
            on_epoch(row)
        if stopping.should_stop(row):
            break
    net.load_state_dict(best_state)
    test = evaluate(net, test_loader, objective, precision=precision, **evaluation)
    synchronize(device)
    wall = time.perf_counter() - start

    metrics = _metrics(
        test,
        history,
        best,
        model,
        precision,
        wall_time_s=wall,
        train_images=train_loader.num_images,
        feature_pass_s=feature_pass_s,
        memory=memory_meter.read(),
        eval_batch_halved_to=forward_batch.halved_to,
    )
    return {
        "history": history,
        "metrics": metrics,
        "predictions": {"val": best_val_probs.tolist(), "test": test.probs.tolist()},
    }


def _epoch_row(epoch: int, train_loss: float, train_acc: float, val, lr: float, *, train_time_s: float, started: float):
    """What an epoch records (results.json's history, the live log), its time counted up to now."""
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val.loss,
        "val_acc": val.acc,
        "val_auc": auc(val.labels.numpy(), val.probs.numpy()),
        "lr": lr,
        "train_time_s": train_time_s,
        "epoch_time_s": time.perf_counter() - started,
    }


def _batch_settings(case: Case, model: nn.Module, device: torch.device, channels_last: bool) -> dict:
    """How every loader of the case presents images: device, channels, normalisation (a pretrained backbone brings
    its weights'), memory layout and padding."""
    mean, std = getattr(model, "normalization", None) or (case.data.mean, case.data.std)
    return dict(
        device=device,
        channels=case.data.channels,
        mean=mean,
        std=std,
        channels_last=channels_last,
        pad_to=case.data.pad_to,
    )


def _optimization(tr, net: nn.Module):
    """The optimiser over the parameters that train, and its learning-rate schedule."""
    optimizer = optim.build_optimizer(
        tr.optimizer,
        [p for p in net.parameters() if p.requires_grad],
        lr=tr.lr,
        weight_decay=tr.weight_decay,
        options=tr.optimizer_options,
    )
    return optimizer, optim.build_scheduler(tr.scheduler, optimizer, epochs=tr.epochs, options=tr.scheduler_options)


def _build_model(
    case: Case, objective: Objective, device: torch.device, precision: Precision
) -> tuple[nn.Module, bool]:
    """The case's network on ``device``, prepared for speed (``speedups.prepare``), its output layer in fp32
    under autocast; and whether its batches are to be channels-last."""
    model = registry.create_model(
        case.model.name,
        in_channels=case.data.channels,
        image_size=case.data.input_size,
        num_outputs=objective.num_outputs,
        **case.model.options,
    ).to(device)
    model, channels_last = speedups.prepare(model)
    if precision.autocast_dtype is not None:
        final_layer_in_fp32(model)
    return model, channels_last


def _metrics(
    test: Evaluation,
    history: list[dict],
    best: dict,
    model: nn.Module,
    precision: Precision,
    *,
    wall_time_s: float,
    train_images: int,
    feature_pass_s: float | None,
    memory: dict,
    eval_batch_halved_to: int | None,
) -> dict:
    """The row's metrics: the test pass, the training at its last and its kept epoch, what it cost."""
    return {
        **{f"test_{k}": v for k, v in binary_metrics(test.labels.numpy(), test.probs.numpy()).items()},
        "test_loss": test.loss,
        "train_loss": history[-1]["train_loss"],
        "train_acc": history[-1]["train_acc"],
        "best_epoch": best["epoch"],
        "best_val_acc": best["val_acc"],
        "best_val_loss": best["val_loss"],
        "min_val_loss": min(r["val_loss"] for r in history),
        "wall_time_s": wall_time_s,
        "s_per_epoch": wall_time_s / len(history),
        "epochs_run": len(history),
        # The median epoch: the first carries one-time costs (cuDNN autotuning, lazy allocations).
        "train_images_per_s": train_images / statistics.median(r["train_time_s"] for r in history),
        "feature_pass_s": feature_pass_s,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **memory,
        "eval_batch_halved_to": eval_batch_halved_to,
        "precision": precision.name,
    }
