"""Several seeds of one case trained in one pass: ``train_seeds``, the engine's loop for a stacked model.

Each seed keeps what makes it a seed — its own initialisation (its model is built right after
``torch.manual_seed(seed)``, as alone), its own data order and augmentation (its own loader), its own dropout
masks (drawn per element of the stacked tensors), its own model selection and early stopping — and its
own result, as ``train_case`` returns it. What they share is each kernel launch (train/stacked.py). A seed
that stops early keeps its kept epoch's weights; the pass goes on while any seed trains. A seed whose loss
becomes NaN ends as ``Diverged``, the others unharmed (no tensor mixes seeds).

Times are the pass's, divided among its seeds; peak memory is the pass's (``metrics.seeds_batched`` lists the
seeds that shared it: a seed's numbers depend on them, as its dropout masks are drawn beside theirs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from xraybench.data import BatchLoader, Dataset
from xraybench.data.batches import SeedBatches
from xraybench.environment import synchronize
from xraybench.models import registry
from xraybench.models.backbones import required_weights
from xraybench.stats.decision import says_pneumonia
from xraybench.train import engine, memory, selection, speedups
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import FP32, Precision
from xraybench.train.stacked import StackedModel, unstackable

if TYPE_CHECKING:
    from xraybench.cases import Case


MAX_SEEDS = 8  # seeds in one pass at most: memory grows with each


def unbatchable(case: Case, precision: Precision) -> str | None:
    """Why ``case``'s seeds cannot train in one pass, or None when they can: the case says so, fp16 (one loss
    scale would skip every seed's step when one overflows), or a model that does not stack (built on the meta
    device: no memory, no time)."""
    if not case.train.seed_batching:
        return "the case sets train.seed_batching = false"
    if precision.name == "fp16":
        return "fp16's loss scale would be shared by the seeds"
    if required_weights(case.model.name, case.model.options):
        return "a pretrained backbone does not stack"
    try:
        with torch.device("meta"):
            model = registry.create_model(
                case.model.name,
                in_channels=case.data.channels,
                image_size=case.data.input_size,
                num_outputs=OBJECTIVES[case.train.loss].num_outputs,
                **case.model.options,
            )
    except Exception as exc:  # the worker will say it properly
        return f"the model cannot be built here ({type(exc).__name__})"
    return unstackable(model)


@dataclass
class _Seed:
    """One seed's selection and stopping, and what it has recorded so far."""

    stopping: selection.EarlyStopping
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    best_state: dict | None = None
    best_val_probs: torch.Tensor | None = None
    error: Exception | None = None
    done: bool = False


def train_seeds(
    cases: list[Case],
    data: Dataset,
    device: torch.device,
    *,
    eval_batch_size: int = 256,
    precision: Precision = FP32,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[dict | Exception]:
    """``train_case`` for the seeds of one case (``cases``: the case once per seed, equal but for the seed), in
    one pass. Returns per seed what ``train_case`` returns, or the ``Diverged`` it would have raised.
    ``on_epoch(k, row)`` receives seed k's epochs."""
    tr, k_seeds = cases[0].train, len(cases)
    objective = OBJECTIVES[tr.loss]
    models = []
    for case in cases:
        torch.manual_seed(case.train.seed)
        models.append(engine._build_model(case, objective, device, precision)[0])
    channels, size = cases[0].data.channels, cases[0].data.input_size
    net, channels_last = speedups.prepare(StackedModel(models, (channels, size, size)).to(device))
    del models
    batches = engine._batch_settings(cases[0], net, device, channels_last)
    train_loader = BatchLoader(
        data.splits["train"], tr.batch_size, shuffle=True, augment=cases[0].data.augment, **batches
    )  # one copy of the images on the device; each seed draws its own order (SeedBatches)
    train_batches = SeedBatches(train_loader, [c.train.seed for c in cases])
    val_loader = BatchLoader(data.splits["val"], eval_batch_size, **batches)
    test_loader = BatchLoader(data.splits["test"], eval_batch_size, **batches)
    forward_batch = memory.ForwardBatch(eval_batch_size)
    evaluation = dict(
        seeds=k_seeds, precision=precision, loss_mean=tr.val_loss, loss_batch=tr.eval_batch_size,
        forward_batch=forward_batch,
    )  # fmt: skip
    seeds = [_Seed(selection.EarlyStopping(tr.early_stopping, tr.select_by)) for _ in cases]
    kept_by = selection.SELECT_BY[tr.select_by]

    memory_meter = memory.PeakMeter.start(device)
    synchronize(device)
    start = time.perf_counter()
    optimizer, scheduler = engine._optimization(tr, net)
    scaler = precision.grad_scaler(device)
    for epoch in range(1, tr.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        losses, accs = _train_one_epoch(net, train_batches, objective, optimizer, precision, scaler, on_batch)
        t1 = time.perf_counter()
        vals = engine.evaluate_seeds(net.shared(), val_loader, objective, **evaluation)
        if scheduler is not None:
            scheduler.step()
        epoch_s = (time.perf_counter() - t0) / k_seeds  # each seed's share of the pass
        for k, seed in enumerate(seeds):
            if seed.done:
                continue
            if not math.isfinite(losses[k]):
                seed.error = engine.Diverged(f"diverged at epoch {epoch}: training loss is {losses[k]}")
                seed.done = True
                continue
            row = engine._epoch_row(
                epoch, losses[k], accs[k], vals[k], lr, train_time_s=(t1 - t0) / k_seeds, started=t0
            )
            row["epoch_time_s"] = epoch_s
            seed.history.append(row)
            if seed.best is None or kept_by(row) > kept_by(seed.best):
                seed.best, seed.best_state, seed.best_val_probs = row, net.seed_state(k), vals[k].probs
            if on_epoch:
                on_epoch(k, row)
            seed.done = seed.stopping.should_stop(row)
        if all(seed.done for seed in seeds):
            break
    for k, seed in enumerate(seeds):
        if seed.error is None:
            net.load_seed_state(k, seed.best_state)
    tests = engine.evaluate_seeds(net.shared(), test_loader, objective, **evaluation)
    synchronize(device)
    wall = (time.perf_counter() - start) / k_seeds
    used = memory_meter.read()  # the pass's peak
    together = [c.train.seed for c in cases]
    return [
        seed.error
        or _outcome(seed, tests[k], net, precision, wall, train_batches.num_images, used, forward_batch, together)
        for k, seed in enumerate(seeds)
    ]


def _train_one_epoch(net, batches: SeedBatches, objective, optimizer, precision, scaler, on_batch) -> tuple[list, list]:
    """One pass over every seed's batches, in step (``SeedBatches``: packed along the channels). Returns per-seed
    (loss, accuracy)."""
    net.train()
    device, k_seeds = batches.device, len(batches.seeds)
    per_image_loss = objective.make_loss(reduction="none")
    total_loss = torch.zeros(k_seeds, device=device)
    correct = torch.zeros(k_seeds, device=device, dtype=torch.long)
    for x, y in batches:
        n = y.shape[0]
        y = y.reshape(-1)  # [B·K]: image-major, as the logits
        with precision.autocast(device):
            logits = net(x)
        logits = logits.float().reshape(n * k_seeds, -1)
        losses = per_image_loss(logits, objective.target(y))
        optimizer.zero_grad(set_to_none=True)
        # The sum of the seeds' mean losses: the seeds' parameters are apart, so each gets its own mean's gradient.
        scaler.scale(losses.sum() / n).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += losses.detach().reshape(n, k_seeds).sum(0)
        hits = says_pneumonia(objective.pneumonia_prob(logits.detach())).long() == y
        correct += hits.reshape(n, k_seeds).sum(0)
        if on_batch:
            on_batch()
    images = batches.num_images
    return (total_loss / images).tolist(), (correct.double() / images).tolist()


def _outcome(seed: _Seed, test, net, precision, wall, train_images, used, forward_batch, together: list) -> dict:
    """What ``train_case`` returns, for one seed of the pass."""
    metrics = engine._metrics(
        test,
        seed.history,
        seed.best,
        net,
        precision,
        wall_time_s=wall,
        train_images=train_images,
        feature_pass_s=None,
        memory=used,
        eval_batch_halved_to=forward_batch.halved_to,
    )
    metrics["params"] //= len(together)
    metrics["trainable_params"] //= len(together)
    metrics["seeds_batched"] = together
    return {
        "history": seed.history,
        "metrics": metrics,
        "predictions": {"val": seed.best_val_probs.tolist(), "test": test.probs.tolist()},
    }
