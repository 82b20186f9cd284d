r"""Our model, loss and selection code beside the ORIGINAL published code, on the same images, on the CPU.

Why: the published cases (benchmarks/cases/published.toml) claim to run MedMNIST v2's and MedMNIST+'s protocols.
This script imports the originals at run time from checkouts given on the command line (nothing of theirs is
copied here) and runs their functions and ours side by side, from the same initial weights, on the same input
tensors in the same batch order: their transforms' output, which our engine reads through a TensorLoader. Our
own preprocessing (BatchLoader) is compared with their transforms separately, image by image. (Feeding each side
its own preprocessing would mix two questions: training from scratch with Adam at lr 1e-3 amplifies a 1-ulp
input difference to 1e-3 in the loss within a few steps, whoever's code runs.)

1. MedMNIST v2 (github.com/MedMNIST/experiments, MedMNIST2D/): its ``models.ResNet18`` against our
   ``resnet18_cifar``: the initialisation (every weight within ±1/√fan_in, PyTorch's default) and, from our initial
   state loaded into theirs, its ``train()``/``test()`` against our ``train_one_epoch``/``evaluate``: step losses,
   logits, validation loss (ours ``batch_mean``, as their ``test()`` averages), AUC, accuracy, final weights. Our
   Adam runs with their kernel (``fused=False``); a row shows how far our default, fused, Adam drifts. Then its
   ``main()``, with ``train``/``test`` patched to replay a validation curve (the recorded ones, and a tie), against
   ``selection.SELECT_BY["val_auc"]``; and the learning rate its ``main()`` sets per epoch against our multistep.
2. MedMNIST+ (github.com/sdoerrich97/rethinking-model-prototyping-MedMNISTPlus): its ``train()`` (endToEnd and
   linearProbing: timm's ResNet-18, 28-pixel images zero-padded to 224) against our ``timm_resnet18`` (finetune,
   linear_probe) in our engine with our default AdamW (lr and weight decay as theirs; each epoch's learning rate
   set to the one theirs had, the schedule being compared in a row of its own). ``timm.create_model`` is patched
   for the duration of their call to hand them a model holding our initial weights (pretrained=False: no
   network). Their stdout gives their validation loss, AUC, accuracy and kept epoch; a wrapper around their
   criterion records their per-step loss, logits and learning rate. Their selection and early stopping are also
   run on a scripted 12-epoch validation-loss curve with ties (their criterion patched to return it), against our
   ``EarlyStopping`` and ``SELECT_BY["val_loss"]``.

Tolerances (fp32 on the CPU): step losses within 1e-5 relative, logits within 1e-4; MedMNIST+'s epochs after the
first within 1e-4 and 1e-3 (fused AdamW rounds differently from their per-tensor loop, and that compounds).
A row is ``pass`` or ``FAIL``; ``known`` marks a deviation that published.toml declares, ``info`` a figure shown
to explain another. The exit status is 1 if any row fails; a part that cannot run (ours not ready) is a FAIL row
with its error, its traceback on stderr, and the other parts go on.

Get the originals (plain checkouts; the commits this was written against are given):

    git clone https://github.com/MedMNIST/experiments /tmp/orig/experiments  # at 70b6b3a7
    git clone https://github.com/sdoerrich97/rethinking-model-prototyping-MedMNISTPlus \
        /tmp/orig/medmnistplus  # at b67b7722

Run (about 4 minutes on 2 idle cores, 6 on busy ones; ``--parts v2`` or ``--parts plus`` for one half):

    python benchmarks/published_side_by_side.py \
        --experiments /tmp/orig/experiments --medmnistplus /tmp/orig/medmnistplus

The originals need medmnist, timm, tqdm, PyYAML, scipy and scikit-learn (installed with xraybench's test extras);
tensorboardX, which MedMNIST v2's script imports, is stubbed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib
import io
import math
import re
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tabulate import tabulate
from torch import nn
from torch.utils.data import DataLoader

from xraybench.data.batches import BatchLoader, TensorLoader
from xraybench.data.dataset import Split
from xraybench.models import create_model, is_model
from xraybench.train import engine, optim, selection, speedups
from xraybench.train.metrics import auc
from xraybench.train.objectives import OBJECTIVES

REPO = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (
    REPO / "tests/fixtures/pneumoniamnist-28-subset.npz",
    Path("/work/shared/data/pneumoniamnist-28-subset.npz"),
)
FLAG = "pneumoniamnist"  # MedMNIST's name: the temporary root holds FLAG.npz
CE = OBJECTIVES["ce"]
V2_LR, V2_BATCH = 1e-3, 128  # train_and_eval_pytorch.py lines 24, 267
PLUS_LR, PLUS_BATCH, PLUS_EVAL_BATCH = 1e-4, 64, 256  # config.yaml: learning_rate, batch_size, batch_size_eval
PATIENCE = 5  # train.py line 103: n_epochs_stop
FIRST_EPOCH_REL = 1e-5  # step losses in the first epoch, relative
LATER_EPOCH_REL = {"v2": 1e-5, "plus": 1e-4}  # later epochs (plus: our fused AdamW's rounding compounds)


# ----------------------------------------------------------------------------------------------- results table


@dataclass
class Row:
    item: str
    tolerance: str
    result: str
    status: str  # pass, FAIL, known, info


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def check(self, item: str, tolerance: str, result: str, ok: bool) -> bool:
        self.rows.append(Row(item, tolerance, result, "pass" if ok else "FAIL"))
        return ok

    def note(self, item: str, tolerance: str, result: str, status: str = "info") -> None:
        self.rows.append(Row(item, tolerance, result, status))

    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "FAIL"]

    def show(self) -> str:
        return tabulate(
            [(r.item, r.tolerance, r.result, r.status) for r in self.rows],
            headers=["item", "tolerance", "max |diff| or agreement", "status"],
            tablefmt="github",
        )


def fmt(x: float) -> str:
    return f"{x:.2e}"


def rel_diff(ours: list[float], theirs: list[float]) -> float:
    return max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, theirs)), default=0.0)


def max_abs(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    return max((float((a - b).abs().max()) for a, b in zip(ours, theirs)), default=0.0)


# ------------------------------------------------------------------------------------- importing the originals


class _TensorboardStub:
    """tensorboardX.SummaryWriter, which MedMNIST v2's script imports and writes scalars to."""

    def __init__(self, *args, **kwargs):
        self.scalars = []

    def add_scalar(self, tag, value, step=None):
        self.scalars.append((tag, value, step))

    def close(self):
        pass


def import_original(directory: Path, name: str, stubs: dict[str, types.ModuleType] | None = None):
    """Import ``name`` from a checkout directory. The checkout's top-level names (models, utils, train) are
    imported from it and taken out of sys.modules afterwards, so nothing else picks them up; ``stubs`` stand in
    for modules it imports that are not installed, during the import only."""
    if not (directory / f"{name}.py").is_file():
        raise FileNotFoundError(f"{directory / (name + '.py')} not found: is this the right checkout?")
    local = {p.stem for p in directory.glob("*.py")}
    saved = {k: sys.modules.pop(k) for k in local if k in sys.modules}
    stubbed = [k for k in stubs or {} if k not in sys.modules]
    sys.modules.update({k: stubs[k] for k in stubbed})
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))
        for key in [*local, *stubbed]:
            sys.modules.pop(key, None)
        sys.modules.update(saved)


def import_v2(checkout: Path):
    stub = types.ModuleType("tensorboardX")
    stub.SummaryWriter = _TensorboardStub
    folder = checkout / "MedMNIST2D"
    return import_original(folder, "models"), import_original(folder, "train_and_eval_pytorch", {"tensorboardX": stub})


class _ModuleProxy(types.ModuleType):
    """A module with some attributes replaced: their ``nn`` with a recording CrossEntropyLoss."""

    def __init__(self, base: types.ModuleType, **overrides):
        super().__init__(base.__name__)
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._base, name)


# ----------------------------------------------------------------------------------------------------- data


@dataclass
class Data:
    root: Path  # a MedMNIST root: FLAG.npz with the subsets below
    train: Split
    val: Split


def prepare_data(path: Path, n_train: int, n_val: int, seed: int, root: Path) -> Data:
    """A seeded subset of the training images (the archive's class mix) and the first ``n_val`` validation
    images, as a MedMNIST root for their datasets and as Splits for our loaders."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    pick = np.random.default_rng(seed).permutation(len(arrays["train_labels"]))[:n_train]
    subset = {
        "train_images": arrays["train_images"][pick],
        "train_labels": arrays["train_labels"][pick],
        "val_images": arrays["val_images"][:n_val],
        "val_labels": arrays["val_labels"][:n_val],
    }
    subset["test_images"], subset["test_labels"] = subset["val_images"], subset["val_labels"]
    np.savez(root / f"{FLAG}.npz", **subset)

    def split(name: str) -> Split:
        images = torch.from_numpy(subset[f"{name}_images"]).unsqueeze(1)
        return Split(images, torch.from_numpy(subset[f"{name}_labels"]).reshape(-1).long())

    return Data(root, split("train"), split("val"))


def their_batches(dataset, order: torch.Tensor, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Their dataset's (transformed) batches in ``order``, as a DataLoader gives them: labels [B, 1]."""
    return list(DataLoader(dataset, batch_size=batch, sampler=order.tolist()))


def as_loader(batches: list, batch: int) -> TensorLoader:
    """The same tensors, for our engine: a loader with .device and .num_images, in the same order."""
    x, y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]).reshape(-1).long()
    return TensorLoader(x, y, batch)


class EpochBatches:
    """A train loader for their train(): epoch k's batches on the k-th pass."""

    def __init__(self, epochs: list[list]):
        self.epochs, self.epoch = epochs, 0

    def __len__(self) -> int:
        return len(self.epochs[0])

    def __iter__(self):
        self.epoch += 1
        return iter(self.epochs[self.epoch - 1])


def epoch_orders(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g) for _ in range(epochs)]


def medmnist_dataset(data: Data, medmnist_class=None):
    """MedMNIST's dataset class reading our subset: rooted at the temporary root, its ``info`` counting the
    subset's images (MedMNIST's __len__ asserts the official split sizes)."""
    import medmnist

    medmnist_class = medmnist_class or medmnist.PneumoniaMNIST

    def dataset(split, **kwargs):
        ds = medmnist_class(split=split, root=str(data.root), **kwargs)
        counts = {**ds.info["n_samples"], split: int(ds.imgs.shape[0])}
        ds.info = {**ds.info, "n_samples": counts}
        return ds

    return dataset


def their_dataset(data: Data, split: str, transform):
    return medmnist_dataset(data)(split, transform=transform, as_rgb=True)


def our_loader(split: Split, batch: int, *, mean, std, pad_to: int = 0) -> BatchLoader:
    return BatchLoader(split, batch, device=torch.device("cpu"), channels=3, mean=mean, std=std, pad_to=pad_to)


# ---------------------------------------------------------------------------------------------- recording


@dataclass
class Step:
    loss: float
    logits: torch.Tensor
    lr: float | None


class Recorded(nn.Module):
    """A loss that records each training step (loss, logits, learning rate); evaluation calls pass through."""

    def __init__(self, inner: nn.Module, lr_of=None):
        super().__init__()
        self.inner, self.lr_of, self.steps = inner, lr_of, []

    def forward(self, logits, target):
        loss = self.inner(logits, target)
        if torch.is_grad_enabled():
            lr = self.lr_of() if self.lr_of else None
            self.steps.append(Step(loss.item(), logits.detach().clone(), lr))
        return loss


def record_eval_logits(model: nn.Module) -> list[torch.Tensor]:
    """Every eval-mode forward output of ``model``, in order."""
    seen: list[torch.Tensor] = []

    def hook(module, args, output):
        if not module.training:
            seen.append(output.detach().clone())

    model.register_forward_hook(hook)
    return seen


def copy_by_position(source: nn.Module, target: nn.Module) -> int:
    """Load ``source``'s state into ``target``: tensors matched by position, every shape checked."""
    src, dst = source.state_dict(), target.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} tensors in ours, {len(dst)} in theirs")
    mapped = {}
    for (s_key, s), (d_key, d) in zip(src.items(), dst.items()):
        if s.shape != d.shape:
            raise ValueError(f"ours {s_key} {tuple(s.shape)} does not fit theirs {d_key} {tuple(d.shape)}")
        mapped[d_key] = s.detach().clone()
    target.load_state_dict(mapped, strict=True)
    return len(mapped)


def state_diff(ours: nn.Module, theirs: nn.Module) -> float:
    return max(
        float((a.double() - b.double()).abs().max())
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values())
        if a.is_floating_point()
    )


def our_evaluate(model, loader, loss_mean: str, loss_batch: int):
    """engine.evaluate with the validation loss averaged as ``loss_mean`` says."""
    return engine.evaluate(model, loader, CE, loss_mean=loss_mean, loss_batch=loss_batch)


def our_selection(rows: list[dict], select_by: str, early_stopping: dict) -> tuple[int, int | None]:
    """(kept epoch, epoch early stopping fired on or None), with engine.train_case's loop:
    ``if best is None or kept_by(row) > kept_by(best)`` then ``stopping.should_stop(row)``."""
    kept_by, stopping = selection.SELECT_BY[select_by], selection.EarlyStopping(early_stopping, select_by)
    best = None
    for row in rows:
        if best is None or kept_by(row) > kept_by(best):
            best = row
        if stopping.should_stop(row):
            return best["epoch"], row["epoch"]
    return best["epoch"], None


def per_epoch(steps: list, epochs: int) -> list[list]:
    per = len(steps) // epochs
    return [steps[e * per : (e + 1) * per] for e in range(epochs)]


def epoch_tolerance(epoch: int, later: float) -> float:
    return FIRST_EPOCH_REL if epoch == 0 else later


# ------------------------------------------------------------------------------------------- 1. MedMNIST v2


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def fan_in(layer: nn.Module) -> int:
    return layer.weight[0].numel()  # in_channels/groups × kh × kw, or in_features


def v2_init(table: Table, ours: nn.Module, theirs: nn.Module) -> None:
    """Every conv/linear weight within PyTorch's default bound 1/√fan_in, on both sides; max|w| ratio per layer."""
    per_layer, worst = [], {"ours": 0.0, "theirs": 0.0}
    for (name, a), (_, b) in zip(layers(ours), layers(theirs)):
        bound = 1 / math.sqrt(fan_in(a))
        ma, mb = float(a.weight.detach().abs().max()), float(b.weight.detach().abs().max())
        worst["ours"], worst["theirs"] = max(worst["ours"], ma / bound), max(worst["theirs"], mb / bound)
        per_layer.append((name, fan_in(a), f"{bound:.4f}", f"{ma / bound:.3f}", f"{mb / bound:.3f}", f"{ma / mb:.3f}"))
    print("MedMNIST v2 ResNet-18 initialisation, per layer (max|w| in units of the bound 1/√fan_in):")
    print(
        tabulate(
            per_layer,
            headers=["layer (ours)", "fan_in", "bound", "ours", "theirs", "ours/theirs"],
            disable_numparse=True,
        )
    )
    print()
    n = len(per_layer)
    for side in ("ours", "theirs"):
        table.check(
            f"v2 init: {side} conv/linear weights within ±1/√fan_in ({n} layers)",
            "max|w|·√fan_in ≤ 1 (+1e-6, fp32)",
            f"{worst[side]:.6f}",
            worst[side] <= 1.0 + 1e-6,
        )
    ratios = [float(r[-1]) for r in per_layer]
    table.check(
        "v2 init: max|w| ratio ours/theirs per layer",
        "within [0.95, 1.05]",
        f"{min(ratios):.3f} … {max(ratios):.3f}",
        min(ratios) >= 0.95 and max(ratios) <= 1.05,
    )


def v2_training(table: Table, v2, v2_models, data: Data, args) -> dict:
    """Their train()/test() and our train_one_epoch/evaluate from the same weights on the same input tensors."""
    torch.manual_seed(args.seed)
    ours = create_model("resnet18_cifar", in_channels=3, image_size=28, num_outputs=2)
    torch.manual_seed(args.seed + 1)
    theirs = v2_models.ResNet18(in_channels=3, num_classes=2)
    v2_init(table, ours, theirs)
    n_tensors = copy_by_position(ours, theirs)
    table.check(
        "v2: our initial state loaded into theirs by position", "every shape equal", f"{n_tensors} tensors", True
    )

    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=[0.5], std=[0.5])])  # l. 58-60
    train_ds, val_ds = their_dataset(data, "train", transform), their_dataset(data, "val", transform)
    orders = epoch_orders(min(args.v2_train, len(train_ds)), args.v2_epochs, args.seed)
    val_batches = their_batches(val_ds, torch.arange(len(val_ds)), V2_BATCH)
    compare_inputs(table, "v2", val_batches, our_loader(data.val, V2_BATCH, mean=0.5, std=0.5), "Normalize(.5, .5)")
    channels_last_row(table, ours, theirs, val_batches)

    import medmnist

    evaluator = medmnist.Evaluator(FLAG, "val", root=str(data.root))
    initial = {k: v.clone() for k, v in ours.state_dict().items()}
    their_loss, our_loss = Recorded(nn.CrossEntropyLoss()), Recorded(CE.make_loss())
    their_opt = torch.optim.Adam(theirs.parameters(), lr=V2_LR)  # line 114
    our_opt = our_adam(ours, fused=False)  # their kernel; our default (fused) is the next row's
    their_eval, our_eval = record_eval_logits(theirs), record_eval_logits(ours)
    our_val = as_loader(val_batches, V2_BATCH)
    their_curve, our_curve, epochs_batches = [], [], []
    v2.iteration = 0  # train() counts its steps in this module global
    for epoch in range(args.v2_epochs):
        batches = their_batches(train_ds, orders[epoch], V2_BATCH)
        epochs_batches.append(batches)
        v2.train(theirs, batches, "binary-class", their_loss, their_opt, "cpu", _TensorboardStub())
        loss, val_auc, val_acc = v2.test(theirs, evaluator, val_batches, "binary-class", their_loss, "cpu", "sbs")
        their_curve.append({"epoch": epoch + 1, "val_loss": loss, "val_auc": val_auc, "val_acc": val_acc})

        engine.train_one_epoch(ours, as_loader(batches, V2_BATCH), CE, our_loss, our_opt)
        val = our_evaluate(ours, our_val, "batch_mean", V2_BATCH)
        our_curve.append(our_row(epoch, val))

    epochs = args.v2_epochs
    compare_steps(table, "v2", their_loss.steps, our_loss.steps, epochs, LATER_EPOCH_REL["v2"])
    compare_val_logits(table, "v2", their_eval, our_eval, epochs, len(val_batches), tol=1e-4)
    compare_curves(table, "v2", their_curve, our_curve, f"batch_mean over {V2_BATCH}", len(val_ds))
    d = state_diff(ours, theirs)
    table.check("v2 final weights and BatchNorm statistics (all state tensors)", "1e-5", fmt(d), d <= 1e-5)
    v2_fused(table, initial, epochs_batches, their_loss.steps, theirs)
    return {"theirs": their_curve, "ours": our_curve}


@torch.no_grad()
def channels_last_row(table: Table, ours: nn.Module, theirs: nn.Module, val_batches: list) -> None:
    """train_case runs the model as speedups.prepare leaves it (channels-last): other kernels, other rounding."""
    prepared, channels_last = speedups.prepare(copy.deepcopy(ours))
    x = torch.cat([x for x, _ in val_batches])
    x_ours = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    d = float((prepared.eval()(x_ours) - theirs.eval()(x)).abs().max())
    table.note(
        f"v2 our model as train_case runs it (speedups.prepare, channels_last={channels_last}): val logits at init",
        "(rounding, no verdict)",
        fmt(d),
    )


def our_adam(model: nn.Module, fused: bool | None) -> torch.optim.Optimizer:
    """Our optimizer as train_case builds it (``fused`` None: its default, the fused kernel where there is one)."""
    options = {} if fused is None else {"fused": fused}
    return optim.build_optimizer("adam", list(model.parameters()), lr=V2_LR, weight_decay=0.0, options=options)


def v2_fused(table: Table, initial: dict, epochs_batches: list, their_steps: list[Step], theirs: nn.Module) -> None:
    """Our default optimizer (fused Adam) on the same batches: the same formula, other rounding, which Adam at
    lr 1e-3 from scratch amplifies step by step."""
    model = create_model("resnet18_cifar", in_channels=3, image_size=28, num_outputs=2)
    model.load_state_dict(initial)
    loss, opt = Recorded(CE.make_loss()), our_adam(model, fused=None)
    for batches in epochs_batches:
        engine.train_one_epoch(model, as_loader(batches, V2_BATCH), CE, loss, opt)
    per = zip(per_epoch(loss.steps, len(epochs_batches)), per_epoch(their_steps, len(epochs_batches)))
    diffs = [rel_diff([s.loss for s in o], [s.loss for s in t]) for o, t in per]
    table.note(
        f"v2 with our default optimizer ({type(opt).__name__}, fused={opt.defaults.get('fused')}): step loss per "
        "epoch; final weights",
        "(rounding, no verdict)",
        f"{', '.join(fmt(d) for d in diffs)} rel; {fmt(state_diff(model, theirs))}",
    )


def our_row(epoch: int, val) -> dict:
    """The validation part of engine._epoch_row."""
    return {
        "epoch": epoch + 1,
        "val_loss": val.loss,
        "val_auc": auc(val.labels.numpy(), val.probs.numpy()),
        "val_acc": val.acc,
    }


def compare_inputs(table: Table, tag: str, their_batches: list, ours: BatchLoader, what: str) -> None:
    """Their transforms' tensors against our BatchLoader's, every validation image."""
    d = float((torch.cat([x for x, _ in ours]) - torch.cat([x for x, _ in their_batches])).abs().max())
    table.check(
        f"{tag} inputs: our BatchLoader vs their ToTensor, {what} (as_rgb, all val images)", "1e-6", fmt(d), d <= 1e-6
    )


def compare_steps(table: Table, tag: str, theirs: list[Step], ours: list[Step], epochs: int, later: float) -> None:
    if len(theirs) != len(ours):
        table.check(f"{tag} training steps", "same count", f"theirs {len(theirs)}, ours {len(ours)}", False)
        return
    for e, (t, o) in enumerate(zip(per_epoch(theirs, epochs), per_epoch(ours, epochs))):
        tol = epoch_tolerance(e, later)
        d = rel_diff([s.loss for s in o], [s.loss for s in t])
        table.check(f"{tag} step loss, epoch {e + 1} ({len(t)} steps)", f"{tol:g} rel", fmt(d), d <= tol)
        d = max_abs([s.logits for s in o], [s.logits for s in t])
        table.check(f"{tag} step logits, epoch {e + 1}", f"{10 * tol:g} abs", fmt(d), d <= 10 * tol)


def compare_val_logits(table: Table, tag: str, theirs, ours, epochs: int, batches: int, tol: float = 1e-3) -> None:
    for e in range(epochs):
        t, o = theirs[e * batches : (e + 1) * batches], ours[e * batches : (e + 1) * batches]
        d = float((torch.cat(o) - torch.cat(t)).abs().max())
        table.check(f"{tag} val logits after epoch {e + 1}", f"{tol:g} abs", fmt(d), d <= tol)


def compare_curves(table: Table, tag: str, theirs: list[dict], ours: list[dict], how: str, n_val: int) -> None:
    """Validation loss, AUC and accuracy per epoch; accuracies as counts of the ``n_val`` images (ours is fp32)."""
    d = rel_diff([r["val_loss"] for r in ours], [r["val_loss"] for r in theirs])
    table.check(f"{tag} val loss per epoch: ours {how} vs theirs", "1e-5 rel", fmt(d), d <= 1e-5)
    d = max(abs(o["val_auc"] - t["val_auc"]) for o, t in zip(ours, theirs))
    table.check(f"{tag} val AUC per epoch: ours vs their getAUC", "1e-4", fmt(d), d <= 1e-4)
    d = max(abs(o["val_acc"] - t["val_acc"]) * n_val for o, t in zip(ours, theirs))
    table.check(
        f"{tag} val accuracy per epoch: ours vs their getACC (y_score > 0.5)",
        "same count",
        f"{d:.0f} images",
        round(d) == 0,
    )


# --- their main(): its selection loop (lines 125-157) and schedule (lines 26, 114-115, 139), fed scripted curves


def run_v2_main(v2, data: Data, curve: list[dict], tmp: Path) -> tuple[int, list[float]]:
    """Their main() with train()/test() replaced: test() returns ``curve``'s validation loss, AUC and accuracy
    for epoch k; train() records the learning rate. Returns (their kept epoch, 1-based; lr per epoch)."""
    import medmnist

    lrs, epoch = [], {"k": 0}

    def scripted_train(model, loader, task, criterion, optimizer, device, writer):
        lrs.append(optimizer.param_groups[0]["lr"])
        epoch["k"] += 1
        return 0.0

    def scripted_test(model, evaluator, loader, task, criterion, device, run, save_folder=None):
        row = curve[min(epoch["k"], len(curve)) - 1] if epoch["k"] else curve[0]
        if evaluator.split != "val":
            return [0.0, 0.5, 0.5]
        return [row["val_loss"], row["val_auc"], row.get("val_acc", 0.5)]

    out = io.StringIO()
    patches = [
        mock.patch.object(v2, "train", scripted_train),
        mock.patch.object(v2, "test", scripted_test),
        mock.patch.object(medmnist, "PneumoniaMNIST", medmnist_dataset(data, medmnist.PneumoniaMNIST)),
        mock.patch.object(medmnist, "Evaluator", functools.partial(medmnist.Evaluator, root=str(data.root))),
    ]
    with contextlib.ExitStack() as stack, contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        for p in patches:
            stack.enter_context(p)
        v2.main(FLAG, str(tmp), len(curve), "-1", V2_BATCH, 28, False, "resnet18", False, True, None, "side-by-side")
    found = re.findall(r"cur_best_epoch (\d+)", out.getvalue())
    return (int(found[-1]) + 1 if found else 1), lrs


def our_lrs(name: str, epochs: int, lr: float) -> list[float]:
    """Our scheduler's learning rate for each epoch, stepped after each as train_case does."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = optim.build_scheduler(name, opt, epochs=epochs, options={})
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # nothing to update; keeps the scheduler's order check quiet
        scheduler.step()
    return lrs


def v2_rules(table: Table, v2, data: Data, curves: dict | None, tmp: Path) -> None:
    """Selection on the recorded curves and on a tie; the learning-rate schedule over 100 and over few epochs."""
    if curves:
        picks = {}
        for whose in ("theirs", "ours"):
            curve = curves[whose]
            picks[whose] = run_v2_main(v2, data, curve, tmp)[0], our_selection(curve, "val_auc", {})[0]
            aucs = ", ".join(f"{r['val_auc']:.4f}" for r in curve)
            table.check(
                f"v2 kept epoch on {whose} recorded AUC curve ({aucs}): their main() vs SELECT_BY['val_auc']",
                "same epoch",
                f"theirs {picks[whose][0]}, ours {picks[whose][1]}",
                picks[whose][0] == picks[whose][1],
            )
        table.check(
            "v2 kept epoch, each side on its own training run",
            "same epoch",
            f"theirs {picks['theirs'][0]}, ours {picks['ours'][1]}",
            picks["theirs"][0] == picks["ours"][1],
        )
    tie = [
        {"epoch": 1, "val_auc": 0.90, "val_loss": 0.50},
        {"epoch": 2, "val_auc": 0.95, "val_loss": 0.45},
        {"epoch": 3, "val_auc": 0.95, "val_loss": 0.30},  # same AUC, lower loss: the first is still kept
        {"epoch": 4, "val_auc": 0.93, "val_loss": 0.35},
    ]
    their_pick, _ = run_v2_main(v2, data, tie, tmp)
    our_pick, _ = our_selection(tie, "val_auc", {})
    table.check(
        "v2 tie: AUC 0.90, 0.95, 0.95 (lower loss), 0.93: their main() vs SELECT_BY['val_auc']",
        "same epoch (2)",
        f"theirs {their_pick}, ours {our_pick}",
        their_pick == our_pick == 2,
    )
    flat = [{"epoch": k + 1, "val_auc": 0.9, "val_loss": 0.3} for k in range(100)]
    _, their = run_v2_main(v2, data, flat, tmp)
    ours = our_lrs("multistep", 100, V2_LR)
    d = max(abs(a - b) for a, b in zip(ours, their))
    table.check("v2 lr per epoch, 100 epochs: their MultiStepLR vs our 'multistep'", "1e-12", fmt(d), d <= 1e-12)
    short = 10
    _, their = run_v2_main(v2, data, flat[:short], tmp)
    ours = our_lrs("multistep", short, V2_LR)
    decays = (
        [f"{lr:g}" for lr in sorted(set(their), reverse=True)],
        [f"{lr:g}" for lr in sorted(set(ours), reverse=True)],
    )
    table.note(
        f"v2 lr over {short} epochs (shortened profiles only): their milestones 0.5·E, 0.75·E vs ours E//2, 3E//4",
        "(no verdict)",
        f"theirs {' → '.join(decays[0])}, ours {' → '.join(decays[1])}",
    )


def v2_decision_tie(table: Table, v2, data: Data) -> None:
    """P(pneumonia) exactly 0.5: their getACC (y_score > 0.5) calls it NORMAL; does our evaluate?"""
    import medmnist

    class Undecided(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2)

    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=[0.5], std=[0.5])])
    their_val = DataLoader(their_dataset(data, "val", transform), batch_size=V2_BATCH)
    evaluator = medmnist.Evaluator(FLAG, "val", root=str(data.root))
    _, _, their_acc = v2.test(Undecided(), evaluator, their_val, "binary-class", nn.CrossEntropyLoss(), "cpu", "tie")
    our_acc = our_evaluate(Undecided(), our_loader(data.val, V2_BATCH, mean=0.5, std=0.5), "image_mean", V2_BATCH).acc
    n = len(data.val)
    table.check(
        "val accuracy at P(pneumonia) = 0.5 exactly: our evaluate vs their test()/getACC (y_score > 0.5: NORMAL)",
        "same count",
        f"theirs {round(their_acc * n)}/{n}, ours {round(our_acc * n)}/{n} correct",
        round(their_acc * n) == round(our_acc * n),
    )


# ------------------------------------------------------------------------------------------------ 2. MedMNIST+


PROCEDURES = {"finetune": "endToEnd", "linear_probe": "linearProbing"}


def plus_config(procedure: str, epochs: int, tmp: Path) -> dict:
    return {
        "architecture": "resnet18",
        "training_procedure": procedure,
        "device": "cpu",
        "learning_rate": PLUS_LR,
        "epochs": epochs,
        "task": "binary-class",
        "num_classes": 2,
        "output_path": str(tmp),
        "dataset": FLAG,
        "img_size": 28,
        "seed": 0,
        "batch_size": PLUS_BATCH,
        "batch_size_eval": PLUS_EVAL_BATCH,
    }


@dataclass
class TheirRun:
    stdout: str
    model: nn.Module
    loss: Recorded

    def values(self, label: str) -> list[float]:
        return [float(v) for v in re.findall(rf"\t{label}: (\S+)", self.stdout)]

    @property
    def kept_epoch(self) -> int:
        return int(re.findall(r"Current best Epoch: (\d+)", self.stdout)[-1]) + 1

    @property
    def epochs_run(self) -> int:
        return len(re.findall(r"\tEpoch \d+ of \d+:", self.stdout))

    @property
    def stopped(self) -> int | None:
        return self.epochs_run if "Early stopping!" in self.stdout else None


def run_plus_train(plus, config: dict, train_loader, val_loader, make_model, loss: nn.Module) -> TheirRun:
    """Their train(config, train_loader, val_loader) with timm.create_model handing them ``make_model()``'s model
    and their criterion replaced by ``loss``; stdout captured."""
    import timm

    made, real_adamw, holder = {}, plus.AdamW, {}

    def create_model(name, pretrained=False, num_classes=None, **kwargs):
        assert name == config["architecture"] and num_classes == config["num_classes"], (name, num_classes)
        made["model"] = make_model()
        return made["model"]

    def adamw(*args, **kwargs):  # theirs, recorded so the loss wrapper can read the learning rate
        holder["opt"] = real_adamw(*args, **kwargs)
        return holder["opt"]

    if isinstance(loss, Recorded):
        loss.lr_of = lambda: holder["opt"].param_groups[0]["lr"]
    out = io.StringIO()
    with (
        mock.patch.object(timm, "create_model", create_model),
        mock.patch.object(plus, "AdamW", adamw),
        mock.patch.object(plus, "nn", _ModuleProxy(nn, CrossEntropyLoss=lambda: loss)),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        plus.train(config, train_loader, val_loader)
    return TheirRun(out.getvalue(), made["model"], loss)


def plus_transform():
    """train.py lines 282-293: timm's default_cfg mean/std, ToTensor, Normalize, zero Pad to 224."""
    import timm
    from torchvision import transforms

    cfg = timm.create_model("resnet18", pretrained=False).default_cfg
    total = max(0, 224 - 28)
    left, top = total // 2, total // 2
    pad = transforms.Pad((left, top, total - left, total - top), fill=0, padding_mode="constant")
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=cfg["mean"], std=cfg["std"]), pad]), cfg


@dataclass
class PlusInputs:
    """Their transformed tensors, shared by both procedures: each epoch's training batches, the validation ones."""

    train: list[list]
    val: list
    n_val: int


def plus_inputs(table: Table, data: Data, args) -> PlusInputs:
    transform, cfg = plus_transform()
    train_ds, val_ds = their_dataset(data, "train", transform), their_dataset(data, "val", transform)
    orders = epoch_orders(min(args.plus_train, len(train_ds)), args.plus_epochs, args.seed)
    val = their_batches(val_ds, torch.arange(len(val_ds)), PLUS_EVAL_BATCH)
    ours = our_loader(data.val, PLUS_EVAL_BATCH, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), pad_to=224)
    compare_inputs(table, "+", val, ours, "Normalize(ImageNet), Pad to 224")
    return PlusInputs([their_batches(train_ds, order, PLUS_BATCH) for order in orders], val, len(val_ds))


def plus_training(table: Table, plus, inputs: PlusInputs, mode: str, args, tmp: Path) -> dict:
    """Their train() and our engine, one procedure, from the same weights on the same tensors."""
    tag = f"+ {PROCEDURES[mode]}"
    if not is_model("timm_resnet18"):
        raise RuntimeError("our timm_resnet18 is not registered (xraybench/models/backbones.py)")
    import timm

    torch.manual_seed(args.seed)
    ours = create_model("timm_resnet18", in_channels=3, image_size=224, num_outputs=2, mode=mode, pretrained=False)
    initial = {k: v.clone() for k, v in ours.state_dict().items()}
    timm_create, their_eval = timm.create_model, []  # timm's own: theirs is patched while their train() runs

    def their_model():
        model = timm_create("resnet18", pretrained=False, num_classes=2)
        copy_by_position(ours, model)
        their_eval.append(record_eval_logits(model))
        return model

    their_loss = Recorded(nn.CrossEntropyLoss())
    config = plus_config(PROCEDURES[mode], args.plus_epochs, tmp)
    run = run_plus_train(plus, config, EpochBatches(inputs.train), inputs.val, their_model, their_loss)
    their_lrs = [steps[0].lr for steps in per_epoch(their_loss.steps, args.plus_epochs)]

    our_loss, our_eval = Recorded(CE.make_loss()), record_eval_logits(ours)
    trainable = [p for p in ours.parameters() if p.requires_grad]
    our_opt = optim.build_optimizer("adamw", trainable, lr=PLUS_LR, weight_decay=0.01, options={})
    val_loader = as_loader(inputs.val, PLUS_EVAL_BATCH)
    rows, image_means = [], []
    for epoch in range(args.plus_epochs):
        for group in our_opt.param_groups:
            group["lr"] = their_lrs[epoch]  # the learning rate theirs had (the schedule row shows ours)
        engine.train_one_epoch(ours, as_loader(inputs.train[epoch], PLUS_BATCH), CE, our_loss, our_opt)
        val = our_evaluate(ours, val_loader, "batch_mean", PLUS_EVAL_BATCH)
        rows.append(our_row(epoch, val))
        per_image = CE.make_loss(reduction="none")(torch.cat(our_eval[-len(val_loader) :]), val.labels)
        image_means.append(selection.VAL_LOSSES["image_mean"](per_image.double().numpy(), PLUS_EVAL_BATCH))

    epochs = args.plus_epochs
    compare_steps(table, tag, their_loss.steps, our_loss.steps, epochs, LATER_EPOCH_REL["plus"])
    compare_val_logits(table, tag, their_eval[0], our_eval, epochs, len(inputs.val), tol=1e-4)
    theirs = [
        {"epoch": k + 1, "val_loss": loss, "val_auc": a, "val_acc": acc}
        for k, (loss, a, acc) in enumerate(zip(run.values("Val Loss"), run.values("AUC"), run.values("ACC")))
    ]
    compare_curves(table, tag, theirs, rows, f"batch_mean over {PLUS_EVAL_BATCH}", inputs.n_val)
    batch_mean_matters(table, tag, image_means, [r["val_loss"] for r in theirs], inputs.n_val)
    d = state_diff(ours, run.model)
    table.check(f"{tag} final weights and BatchNorm statistics (all state tensors)", "1e-4", fmt(d), d <= 1e-4)
    if mode == "linear_probe":
        plus_probe_checks(table, tag, ours, run.model, initial)
    our_pick, our_stop = our_selection(rows, "val_loss", {"patience": PATIENCE, "metric": "val_loss"})
    table.check(
        f"{tag} kept epoch / early stop on the recorded curves: their train() vs ours",
        "same",
        f"theirs {run.kept_epoch}/{run.stopped}, ours {our_pick}/{our_stop}",
        (run.kept_epoch, run.stopped) == (our_pick, our_stop),
    )
    return {"lrs": their_lrs}


def batch_mean_matters(table: Table, tag: str, image_means: list[float], theirs: list[float], n_val: int) -> None:
    gap = max(abs(a - b) / b for a, b in zip(image_means, theirs))
    sizes = [min(PLUS_EVAL_BATCH, n_val - s) for s in range(0, n_val, PLUS_EVAL_BATCH)]
    table.note(
        f"{tag} val loss: ours as image_mean vs their batch mean (batches {'+'.join(map(str, sizes))})",
        "(why batch_mean)",
        f"{fmt(gap)} rel" + (": image_mean would not match" if gap > 1e-5 else ""),
    )


def plus_probe_checks(table: Table, tag: str, ours: nn.Module, theirs: nn.Module, initial: dict) -> None:
    """Linear probing: only the head's weights move; BatchNorm's running statistics move too (train mode)."""
    moved = {"weights": [0.0, 0.0], "running": [0.0, 0.0]}
    keys = list(initial)
    for side, model in enumerate((ours, theirs)):
        for key, value in zip(keys, model.state_dict().values()):
            if not key.startswith("backbone.") or not value.is_floating_point():
                continue
            kind = "running" if "running_" in key else "weights"
            moved[kind][side] = max(moved[kind][side], float((value - initial[key]).abs().max()))
    table.check(
        f"{tag}: backbone weights unchanged (ours, theirs)",
        "0",
        f"{fmt(moved['weights'][0])}, {fmt(moved['weights'][1])}",
        moved["weights"] == [0.0, 0.0],
    )
    table.check(
        f"{tag}: backbone BatchNorm running stats updated, as theirs (ours, theirs)",
        "> 0 on both",
        f"{fmt(moved['running'][0])}, {fmt(moved['running'][1])}",
        min(moved["running"]) > 0,
    )


def plus_schedule(table: Table, their_lrs: list[float], epochs: int) -> None:
    ours = our_lrs("cosine", epochs, PLUS_LR)
    table.note(
        f"+ lr per epoch over {epochs} epochs: their CosineLRScheduler.step(epoch=epoch) vs our 'cosine'",
        "documented deviation",
        f"theirs {', '.join(f'{x:.3g}' for x in their_lrs)}; ours {', '.join(f'{x:.3g}' for x in ours)}",
        "known",
    )


def plus_rules(table: Table, plus, tmp: Path) -> None:
    """Their selection and early stopping (train.py lines 183-198) on a scripted validation-loss curve: their
    criterion returns the curve's value for the one validation batch of each epoch."""
    curve = [0.70, 0.60, 0.60, 0.62, 0.55, 0.58, 0.55, 0.57, 0.56, 0.59, 0.61, 0.50]
    values = iter(curve)

    class Scripted(nn.Module):
        def __init__(self):
            super().__init__()
            self.ce = nn.CrossEntropyLoss()

        def forward(self, logits, target):
            return self.ce(logits, target) if torch.is_grad_enabled() else torch.tensor(next(values))

    x, y = torch.randn(2, 4), torch.tensor([[0], [1]])
    config = plus_config("endToEnd", len(curve), tmp)
    run = run_plus_train(plus, config, [(x, y)], [(x, y)], lambda: nn.Sequential(nn.Linear(4, 2)), Scripted())
    rows = [{"epoch": k + 1, "val_loss": v} for k, v in enumerate(curve)]
    our_pick, our_stop = our_selection(rows, "val_loss", {"patience": PATIENCE, "metric": "val_loss"})
    shown = ", ".join(f"{v:g}" for v in curve)
    table.check(
        f"+ scripted val loss ({shown}): kept epoch / early stop, their train() vs ours",
        "same",
        f"theirs {run.kept_epoch}/{run.stopped}, ours {our_pick}/{our_stop}",
        (run.kept_epoch, run.stopped) == (our_pick, our_stop),
    )
    d = rel_diff(run.values("Val Loss"), curve[: run.epochs_run])
    table.check(
        "+ scripted curve reached their code (their printed Val Loss vs the curve)", "1e-6 rel", fmt(d), d <= 1e-6
    )


def plus_weights_tag(table: Table) -> None:
    """Our timm_resnet18 names the weights (arch.tag) that their bare 'resnet18' resolves to, same normalisation."""
    import timm

    from xraybench.models.backbones import TIMM_BACKBONES

    spec = next(b for b in TIMM_BACKBONES if b.name == "timm_resnet18")
    theirs = timm.create_model("resnet18", pretrained=False).pretrained_cfg
    ours = timm.create_model(spec.arch, pretrained=False).pretrained_cfg
    same = [k for k in ("architecture", "tag", "mean", "std", "input_size") if ours.get(k) == theirs.get(k)]
    ok = len(same) == 5 and Path(spec.url).name == Path(theirs["url"]).name
    table.check(
        "+ weights: our timm_resnet18 arch/tag, file, mean/std vs their timm.create_model('resnet18')",
        "equal",
        f"{spec.arch} vs {theirs['architecture']}.{theirs['tag']}, file {Path(spec.url).name}",
        ok,
    )


# ------------------------------------------------------------------------------------------------------ main


def guarded(table: Table, part: str, rerun: str, fn, *args):
    """Run one part; a failure of ours becomes a FAIL row naming what to re-run, and the other parts go on."""
    start = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # reported in the table, its traceback on stderr
        traceback.print_exc()
        table.check(
            f"{part}: could not run", "runs", f"{type(exc).__name__}: {exc}"[:200] + f" — re-run {rerun}", False
        )
        return None
    finally:
        print(f"[{part}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Get the originals" + __doc__.split("Get the originals")[1].split("Run (")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--experiments", type=Path, required=True, help="checkout of github.com/MedMNIST/experiments")
    p.add_argument("--medmnistplus", type=Path, required=True, help="checkout of sdoerrich97/rethinking-…-MedMNISTPlus")
    p.add_argument("--data", type=Path, default=next((p for p in DATA_CANDIDATES if p.exists()), DATA_CANDIDATES[0]))
    p.add_argument("--v2-train", type=int, default=256, help="training images, MedMNIST v2 part")
    p.add_argument("--v2-epochs", type=int, default=3)
    p.add_argument("--plus-train", type=int, default=128, help="training images, MedMNIST+ part (224 px: slow)")
    p.add_argument("--plus-epochs", type=int, default=2)
    p.add_argument("--val", type=int, default=300, help="validation images (300 = one batch of 256 and one of 44)")
    p.add_argument("--parts", default="v2,plus", help="comma-separated: v2, plus")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag, checkout, needed in [
        ("--experiments", args.experiments, "MedMNIST2D/models.py"),
        ("--medmnistplus", args.medmnistplus, "train.py"),
    ]:
        if not (checkout / needed).is_file():
            print(f"error: {flag} {checkout}: no {needed} there; clone the repository (see --help)", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    table, parts = Table(), set(args.parts.split(","))
    command = "python benchmarks/published_side_by_side.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp_name:
        tmp = Path(tmp_name)
        data = prepare_data(args.data, max(args.v2_train, args.plus_train), args.val, args.seed, tmp)
        if "v2" in parts:
            v2_models, v2 = import_v2(args.experiments)
            curves = guarded(table, "v2 training", command, v2_training, table, v2, v2_models, data, args)
            guarded(table, "v2 rules", command, v2_rules, table, v2, data, curves, tmp)
            guarded(table, "decision at 0.5", command, v2_decision_tie, table, v2, data)
        if "plus" in parts:
            plus = import_original(args.medmnistplus, "train")
            guarded(table, "+ weights", command, plus_weights_tag, table)
            inputs, done = guarded(table, "+ inputs", command, plus_inputs, table, data, args), None
            for mode in PROCEDURES if inputs else ():
                done = guarded(table, f"+ {mode}", command, plus_training, table, plus, inputs, mode, args, tmp) or done
            if done:
                plus_schedule(table, done["lrs"], args.plus_epochs)
            guarded(table, "+ rules", command, plus_rules, table, plus, tmp)
    print(table.show())
    failed = table.failed()
    print(
        f"\n{len(table.rows)} rows, {len(failed)} failed; {time.perf_counter() - start:.0f} s "
        f"({args.threads} threads, torch {torch.__version__})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
