"""Seeds in one pass (train/stacked.py, train/seed_batch.py): the stacked model computes each seed's network, a
seed trains as it would alone (without dropout, to float rounding), its dropout masks are its own, its results are
statistically those of sequential seeds on real images, and one step of K seeds costs at most 1/K of the
operations of K steps."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NPZ
from scipy import stats
from torch import nn

from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.data import BatchLoader, cache, open_source
from xraybench.data.batches import SeedBatches
from xraybench.data.sources import SyntheticSource
from xraybench.models import registry
from xraybench.runner import RunPlan
from xraybench.runner.jobs import seed_groups
from xraybench.train.engine import train_case
from xraybench.train.precision import FP32, Precision, final_layer_in_fp32
from xraybench.train.seed_batch import unbatchable
from xraybench.train.stacked import StackedModel, unstackable

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


def _ops_benchmark():
    spec = importlib.util.spec_from_file_location("seed_batch_ops", ROOT / "benchmarks" / "seed_batch_ops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case(case_id: str, **train):
    case = apply_profile(next(c for c in load_cases()[0] if c.id == case_id), PROFILES["smoke"])
    return dataclasses.replace(case, train=dataclasses.replace(case.train, **train))


def _seeds(case, seeds):
    return [dataclasses.replace(case, train=dataclasses.replace(case.train, seed=s)) for s in seeds]


def _train_seeds(cases, data):
    from xraybench.train.seed_batch import train_seeds

    return train_seeds(cases, data, CPU)


@pytest.mark.parametrize(
    "name, size, options",
    [
        ("hw3_cnn", 16, {"dropout": 0.6}),  # its flatten Linear over a 2×2 map: a convolution
        ("hw3_cnn", 96, {}),  # over 12×12: a GroupedLinear
        ("hw3_mlp", 16, {}),
        ("hw3_gap_cnn", 16, {"head_hidden": 16}),
    ],
)
def test_the_stacked_model_computes_each_seeds_network(name, size, options):
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = registry.create_model(name, in_channels=1, image_size=size, num_outputs=2, **options)
        final_layer_in_fp32(model)
        models.append(model.eval())
    stacked = StackedModel(models, (1, size, size)).eval()
    x = torch.randn(4, 1, size, size)
    alone = torch.stack([m(x) for m in models], dim=1)  # [B, K, 2]
    with torch.no_grad():
        shared = stacked.shared()(x).reshape(4, 3, 2)
        own = stacked(torch.cat([x, 2 * x, -x], dim=1)).reshape(4, 3, 2)  # packed: each seed its own batch
    torch.testing.assert_close(shared, alone.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(own[:, 1], models[1](2 * x).detach(), rtol=1e-5, atol=1e-5)
    state = stacked.seed_state(1)
    with torch.no_grad():
        for p in stacked.parameters():
            p.zero_()
    stacked.load_seed_state(1, state)
    with torch.no_grad():
        torch.testing.assert_close(stacked.shared()(x).reshape(4, 3, 2)[:, 1], alone[:, 1].detach())


def test_models_that_do_not_stack_say_why():
    with torch.device("meta"):
        resnet = registry.create_model("resnet18", in_channels=3, image_size=64, num_outputs=1, pretrained=False)
    assert "TransferModel is not an nn.Sequential" in unstackable(resnet)
    assert "LayerNorm cannot be stacked" in unstackable(nn.Sequential(nn.Flatten(), nn.LayerNorm(4)))
    assert "only to 1×1" in unstackable(nn.Sequential(nn.AdaptiveAvgPool2d(2)))
    case = _case("hw3-a-cnn")
    assert unbatchable(case, FP32) is None
    assert "fp16" in unbatchable(case, Precision("fp16", "requested"))
    off = dataclasses.replace(case, train=dataclasses.replace(case.train, seed_batching=False))
    assert "seed_batching = false" in unbatchable(off, FP32)
    transfer = next(c for c in load_cases()[0] if c.model.name == "resnet18")
    assert "pretrained backbone" in unbatchable(transfer, FP32)


@pytest.mark.parametrize("augment", [(), ("hflip", "brightness")])
def test_seed_batches_are_each_seeds_own_loader_batches(augment):
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    settings = dict(device=CPU, channels=3, mean=0.4, std=0.3, channels_last=True, pad_to=36, augment=augment)
    packed = SeedBatches(BatchLoader(data.splits["train"], 32, shuffle=True, **settings), [3, 7])
    alone = [BatchLoader(data.splits["train"], 32, shuffle=True, seed=s, **settings) for s in (3, 7)]
    for (x, y), (x3, y3), (x7, y7) in zip(packed, *alone, strict=True):
        torch.testing.assert_close(x, torch.cat([x3, x7], dim=1), rtol=0, atol=0)
        assert torch.equal(y, torch.stack([y3, y7], dim=1))
        assert x.is_contiguous(memory_format=torch.channels_last)


def test_without_dropout_each_seed_trains_as_it_would_alone():
    """Same initialisation, same batches, same selection: the same training, to float rounding."""
    case = _case("hw3-c-gap", epochs=3, early_stopping={"patience": 1, "metric": "val_loss"})
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    cases = _seeds(case, [0, 1, 2])
    together = _train_seeds(cases, data)
    for alone, batched in zip([train_case(c, data, CPU) for c in cases], together, strict=True):
        assert [r["epoch"] for r in batched["history"]] == [r["epoch"] for r in alone["history"]]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            np.testing.assert_allclose([r[key] for r in batched["history"]], [r[key] for r in alone["history"]], 1e-4)
        np.testing.assert_allclose(batched["predictions"]["test"], alone["predictions"]["test"], atol=1e-4)
        assert batched["metrics"]["best_epoch"] == alone["metrics"]["best_epoch"]
        assert batched["metrics"]["seeds_batched"] == [0, 1, 2]
        assert batched["metrics"]["params"] == alone["metrics"]["params"]


def test_each_seed_draws_its_own_dropout_masks():
    """Two copies of one seed (same weights, same batches) part only by their dropout masks."""
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    twins = _train_seeds(_seeds(_case("hw3-a-cnn-dropout", epochs=1), [0, 0]), data)
    assert twins[0]["history"][0]["train_loss"] != twins[1]["history"][0]["train_loss"]
    calm = _train_seeds(_seeds(_case("hw3-a-cnn", epochs=1), [0, 0]), data)
    assert calm[0]["history"] == calm[1]["history"]


def _equivalent(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    """Paired equivalence (two one-sided t tests at 5 %): the 90 % interval of mean(b − a) within ±margin."""
    d = b - a
    half = stats.t.ppf(0.95, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return abs(d.mean()) + half < margin


def test_batched_seeds_are_statistically_sequential_seeds_on_real_images():
    """PneumoniaMNIST (28 px, 2,000 training images), HW3 task A's CNN with dropout 0.6, 3 epochs, 6 seeds: each
    seed's test AUC and training loss batched and alone, paired by seed (same initialisation and batches; the
    dropout masks differ), are equivalent within 0.03 AUC and 0.03 loss (measured: −0.002 AUC, 90 % interval
    ±0.012; −0.008 loss, ±0.009). A batched training at a tenth of the learning rate is not (+0.14 loss): the test
    can tell."""
    data = cache.prepare(open_source(NPZ, (0, 0, 0)), 28).open().limited(2000)
    case = next(c for c in load_cases()[0] if c.id == "hw3-a-cnn-dropout")
    case = dataclasses.replace(
        case, data=dataclasses.replace(case.data, image_size=28), train=dataclasses.replace(case.train, epochs=3)
    )
    cases = _seeds(case, range(6))

    def measures(outcomes):
        return {k: np.array([o["metrics"][k] for o in outcomes]) for k in ("test_auc", "train_loss")}

    alone, together = measures([train_case(c, data, CPU) for c in cases]), measures(_train_seeds(cases, data))
    assert _equivalent(alone["test_auc"], together["test_auc"], 0.03), (alone, together)
    assert _equivalent(alone["train_loss"], together["train_loss"], 0.03), (alone, together)
    slower = [dataclasses.replace(c, train=dataclasses.replace(c.train, lr=1e-4)) for c in cases]
    assert not _equivalent(alone["train_loss"], measures(_train_seeds(slower, data))["train_loss"], 0.03)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_step_of_five_seeds_costs_at_most_a_fifth_of_the_operations_per_seed(precision):
    alone, batched = _ops_benchmark().ops_per_model_step("hw3_cnn", precision, seeds=5)
    assert alone > 90  # the engine's own step (data, forward, loss, backward, fused Adam, running sums)
    assert batched <= alone / 5, (alone, batched)


def test_runs_group_a_cases_pending_seeds_only_where_batching_is_on(tmp_path):
    cases = _seeds(_case("hw3-a-cnn"), range(10)) + _seeds(_case("hw3-b-mlp"), [0, 1])
    plan = RunPlan(profile=PROFILES["smoke"], device=CPU, source=None, out=tmp_path)
    assert [len(g) for g in seed_groups(cases, plan)] == [1] * 12  # auto: on CUDA only
    on = dataclasses.replace(plan, seed_batching="on")
    assert [[c.train.seed for c in g] for g in seed_groups(cases, on)] == [list(range(8)), [8, 9], [0, 1]]
    fp16 = dataclasses.replace(on, precision=Precision("fp16", "requested"))
    assert [len(g) for g in seed_groups(cases, fp16)] == [1] * 12
    cuda = dataclasses.replace(plan, device=torch.device("cuda"))
    assert [len(g) for g in seed_groups(cases, cuda)] == [8, 2, 2]
    # --deterministic: a batched seed's bits depend on the seeds beside it, so auto trains them apart
    assert [len(g) for g in seed_groups(cases, dataclasses.replace(cuda, deterministic=True))] == [1] * 12


def test_the_cli_trains_seeds_together_on_request_and_the_report_says_so(tmp_path, capsys):
    from xraybench import results
    from xraybench.cli import main
    from xraybench.report.method import facts

    argv = ["run", "hw3-a-cnn", "--profile", "smoke", "--seeds", "3", "--no-report", "--out", str(tmp_path)]
    assert main([*argv, "--seed-batching", "on", "--device", "cpu"]) == 0
    assert "seed batching: 3 training(s) of 1 case(s) in 1 pass(es)" in capsys.readouterr().out
    run = results.read(tmp_path / "smoke-cpu-synthetic")
    assert [(r.seed, r.metrics.seeds_batched) for r in run.cases] == [(s, [0, 1, 2]) for s in range(3)]
    assert run.settings.seed_batching == "on"
    assert dict(facts(run))["Seed batching"].startswith("3 of 3 trainings with the other seeds of their case")
    assert (tmp_path / "smoke-cpu-synthetic" / "logs").is_dir()  # each seed's live log
    assert len(list((tmp_path / "smoke-cpu-synthetic" / "logs").rglob("*.csv"))) == 3


def test_a_seed_that_diverges_fails_alone(monkeypatch):
    """No tensor mixes seeds: one seed's NaN weights make its result a Diverged, the others train as alone."""
    from xraybench.train import engine

    build = engine._build_model

    def poisoned(case, *args):
        model, channels_last = build(case, *args)
        if case.train.seed == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return model, channels_last

    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    cases = _seeds(_case("hw3-c-gap", epochs=2), [0, 1, 2])
    alone = train_case(cases[2], data, CPU)
    monkeypatch.setattr(engine, "_build_model", poisoned)
    first, broken, last = _train_seeds(cases, data)
    assert isinstance(broken, engine.Diverged) and "diverged at epoch 1" in str(broken)
    assert np.isfinite(first["metrics"]["test_loss"])
    np.testing.assert_allclose(last["predictions"]["test"], alone["predictions"]["test"], atol=1e-4)


def test_out_of_memory_with_every_seed_at_once_trains_them_one_at_a_time(monkeypatch):
    from xraybench.train import trainings

    def too_big(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainings, "train_seeds", too_big)
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    cases = tuple(_seeds(_case("hw3-a-cnn", epochs=1), [0, 1]))
    rows = trainings.train_together(cases, data, CPU, progress=False, logs=[None, None])
    assert [(r.seed, r.status) for r in rows] == [(0, "ok"), (1, "ok")]
    assert all(r.retry == "CUDA out of memory with 2 seeds in one pass; trained one at a time" for r in rows)
    assert all(r.metrics.seeds_batched is None for r in rows)


def test_the_stacked_models_gradients_suit_the_fused_kernel():
    """After a step under the engine's settings (channels-last, fused Adam), every stacked parameter, its gradient
    and its moments share dtype, device and strides, as the CUDA fused kernel demands (the grouped first conv's
    weight, [K·32, 1, 3, 3], has the size-1 dimension of pytorch#106951)."""
    from xraybench.train import engine, optim, speedups

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(registry.create_model("hw3_cnn", in_channels=1, image_size=32, num_outputs=1, dropout=0.5))
    stacked, channels_last = speedups.prepare(StackedModel(models, (1, 32, 32)))
    assert channels_last
    optimizer, _ = engine._optimization(_case("hw3-a-cnn").train, stacked)
    x = torch.randn(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    stacked(x).float().square().mean().backward()
    optimizer.step()
    for name, p in stacked.named_parameters():
        state = optimizer.state[p]
        assert optim.fused_kernel_accepts([p, p.grad, state["exp_avg"], state["exp_avg_sq"]]), name
