"""The speed rewrites must not change what a model computes: outputs and gradients."""

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from xraybench.models.registry import create_model
from xraybench.train import speedups


@pytest.mark.parametrize(
    "name, options",
    [
        ("hw3_cnn", {}),
        ("hw3_cnn", {"dropout": 0.6}),
        ("hw3_gap_cnn", {}),
        ("hw3_gap_cnn", {"conv3_channels": 128, "head_hidden": 128}),
    ],
)
def test_pool_before_relu_keeps_outputs_and_gradients(name, options):
    torch.manual_seed(0)
    original = create_model(name, in_channels=1, image_size=32, num_outputs=1, **options).eval()
    rewritten = copy.deepcopy(original)
    swapped = speedups.pool_before_relu(rewritten)
    # The dropout variant keeps conv3 → ReLU → Dropout → pool: only blocks 1 and 2 swap.
    assert swapped == (2 if options.get("dropout") else 3)
    assert [type(m) for m in rewritten[:3]] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU]

    x = torch.randn(8, 1, 32, 32)
    outputs = []
    for model in (original, rewritten):
        model.zero_grad()
        out = model(x)
        out.sum().backward()
        outputs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = outputs
    assert torch.equal(out_a, out_b)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


def test_pool_before_relu_leaves_other_orders_alone():
    model = nn.Sequential(nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(1, 1, 3), nn.ReLU(), nn.AvgPool2d(2))
    assert speedups.pool_before_relu(model) == 0
    assert [type(m) for m in model] == [nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.AvgPool2d]


def test_prepare_uses_channels_last_only_for_convolutions():
    cnn, cnn_cl = speedups.prepare(create_model("hw3_cnn", in_channels=1, image_size=32, num_outputs=1))
    _mlp, mlp_cl = speedups.prepare(create_model("hw3_mlp", in_channels=1, image_size=32, num_outputs=1))
    assert cnn_cl and not mlp_cl
    assert cnn[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_takes_the_same_steps(name):
    from xraybench.train.optim import build_optimizer

    torch.manual_seed(0)
    start = torch.randn(50, 20)
    params = {label: nn.Parameter(start.clone()) for label in ("fused", "plain")}
    optimizers = {
        "fused": build_optimizer(name, [params["fused"]], lr=1e-2, weight_decay=1e-4, options={}),
        "plain": build_optimizer(name, [params["plain"]], lr=1e-2, weight_decay=1e-4, options={"fused": False}),
    }
    assert optimizers["fused"].defaults["fused"] and not optimizers["plain"].defaults["fused"]
    for _ in range(5):
        grad = torch.randn(50, 20)
        for label, opt in optimizers.items():
            params[label].grad = grad.clone()
            opt.step()
    assert not torch.equal(params["fused"], start)
    torch.testing.assert_close(params["fused"], params["plain"], rtol=1e-5, atol=1e-6)


def test_optimizer_without_fused_kernel_is_built_plainly():
    from xraybench.train.optim import build_optimizer

    opt = build_optimizer("rmsprop", [nn.Parameter(torch.zeros(3))], lr=1e-3, weight_decay=0.0, options={})
    assert "fused" not in opt.defaults


FAULTS_PER_STEP = """
import contextlib, resource, sys, torch
from xraybench.environment import keep_freed_memory
from xraybench.models.registry import create_model
torch.manual_seed(0)
model = create_model("hw3_cnn", in_channels=1, image_size=64, num_outputs=1)
x = torch.randn(32, 1, 64, 64)
def step():
    model.zero_grad()
    model(x).sum().backward()
def faults():
    for _ in range(5):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
with keep_freed_memory() if sys.argv[1] == "kept" else contextlib.nullcontext(True) as active:
    assert active
    during = min(faults(), faults())  # the quieter of two windows: a one-off page-in (4,096 faults) is not a step's
print(during, faults())  # inside the context, then after it (defaults back)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; elsewhere it changes nothing")
def test_keep_freed_memory_stops_page_faults_while_training_only():
    # In a fresh process each: the allocator setting is process-wide while it lasts.
    faults = {
        mode: [
            int(v)
            for v in subprocess.run(
                [sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True
            ).stdout.split()
        ]
        for mode in ("default", "kept")
    }
    assert faults["default"][0] > 1000  # fresh pages for every large activation, every step
    assert faults["kept"][0] < faults["default"][0] / 20
    assert faults["kept"][1] > 1000  # after the context: the default allocator again


def test_padded_evaluation_batches_change_no_result():
    """A ragged last batch filled with zero images to the loader's batch (one shape for cuDNN): the same
    probabilities, loss and accuracy as without, and the pad rows never counted."""
    from xraybench.cases import PROFILES, apply_profile, load_cases
    from xraybench.data import BatchLoader, cache
    from xraybench.data.sources import SyntheticSource
    from xraybench.train.engine import evaluate
    from xraybench.train.objectives import OBJECTIVES

    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()
    model = create_model("hw3_mlp", in_channels=1, image_size=32, num_outputs=1)  # BatchNorm: eval statistics
    loader = BatchLoader(data.splits["val"], 24, device=torch.device("cpu"))  # 64 images: 24, 24, 16
    case = apply_profile(next(c for c in load_cases()[0] if c.id == "hw3-b-mlp"), PROFILES["smoke"])
    plain = evaluate(model, loader, OBJECTIVES[case.train.loss], pad=False)
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    padded = evaluate(model, loader, OBJECTIVES[case.train.loss], pad=True)
    assert seen == [24, 24, 24]
    torch.testing.assert_close(padded.probs, plain.probs)
    assert (padded.loss, padded.acc, len(padded.probs)) == pytest.approx((plain.loss, plain.acc, 64))
    x = torch.ones(5, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    filled = speedups.padded(x, 8)
    assert filled.shape == (8, 3, 4, 4) and filled[5:].abs().sum() == 0 and torch.equal(filled[:5], x)
    assert filled.is_contiguous(memory_format=torch.channels_last)
    assert speedups.padded(x, 5) is x
