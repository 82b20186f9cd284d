"""Engine speed, with pytest-benchmark (not part of the default test run):

    pytest benchmarks/ --benchmark-autosave                 # store a run under .benchmarks/
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=mean:10%   # fail on a 10 % slowdown

Each train-step benchmark is one optimiser step on a batch of 32 at 64 px on the CPU, in fp32
and in bf16 autocast (fast only where the CPU has bf16 instructions; ``--precision auto`` uses it
only there); ``extra_info`` records the images per step, so images/s = images / mean.
"""

import pytest
import torch

from xraybench.cases import PROFILES
from xraybench.data import BatchLoader, cache
from xraybench.data.sources import SyntheticSource
from xraybench.models.registry import create_model
from xraybench.train.engine import evaluate
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import Precision, final_layer_in_fp32

SIZE, BATCH = 64, 32
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return cache.prepare(SyntheticSource(PROFILES["quick"].synthetic_sizes), SIZE).open()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(
    "name, options, channels",
    [
        ("hw3_cnn", {}, 1),
        ("hw3_cnn", {"dropout": 0.6}, 1),
        ("hw3_mlp", {}, 1),
        ("hw3_gap_cnn", {}, 1),
        ("hw3_gap_cnn", {"conv3_channels": 128, "head_hidden": 128}, 1),
        ("efficientnet_lite0", {"mode": "finetune"}, 3),
    ],
    ids=["cnn", "cnn-dropout", "mlp", "gap", "gap-wide", "lite0-finetune"],
)
def test_train_step(benchmark, data, name, options, channels, precision):
    torch.manual_seed(0)
    model = create_model(name, in_channels=channels, image_size=SIZE, num_outputs=1, **options).train()
    arithmetic = Precision(precision, "benchmark")
    if arithmetic.autocast_dtype is not None:
        final_layer_in_fp32(model)
    objective = OBJECTIVES["bce"]
    loss_fn, optimizer = objective.make_loss(), torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = next(iter(BatchLoader(data.splits["train"], BATCH, device=CPU, channels=channels, shuffle=True)))

    def step():
        optimizer.zero_grad(set_to_none=True)
        with arithmetic.autocast(CPU):
            logits = model(x)
        loss = loss_fn(logits.float(), objective.target(y))
        loss.backward()
        optimizer.step()

    benchmark.extra_info.update(images=BATCH, model=name, options=options, precision=precision)
    benchmark(step)


def test_cache_load(benchmark):
    source = SyntheticSource(PROFILES["quick"].synthetic_sizes)
    cache.prepare(source, SIZE).open()  # build once
    benchmark.extra_info["images"] = sum(PROFILES["quick"].synthetic_sizes)
    benchmark(lambda: cache.prepare(source, SIZE).open().splits["train"].images.sum())  # map and touch every byte


def test_evaluate(benchmark, data):
    model = create_model("hw3_cnn", in_channels=1, image_size=SIZE, num_outputs=1)
    objective = OBJECTIVES["bce"]
    loader = BatchLoader(data.splits["val"], 256, device=CPU)
    benchmark.extra_info["images"] = loader.num_images
    benchmark(lambda: evaluate(model, loader, objective))
