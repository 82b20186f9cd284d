"""Memory on a GPU, held on the CPU (issue 35): an out-of-memory error while evaluating halves evaluation's batch and
the training goes on at its own batch; one while training still retries the case at half the batch; cuBLAS's and
cuDNN's allocation failures count as out of memory; the peak the caching allocator reserved is recorded beside the
allocated one; the feature cache lets the images go once their features exist. The errors are injected by a
forward pre-hook on the case's model, the CUDA memory queries by monkeypatching."""

import dataclasses
import weakref

import pytest
import torch

from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.models import registry
from xraybench.results import Metrics
from xraybench.train import engine, memory, trainings
from xraybench.train.engine import train_case

CPU = torch.device("cpu")
CUBLAS = "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
CUDNN = "cuDNN error: CUDNN_STATUS_ALLOC_FAILED"
NOT_SUPPORTED = (
    "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."
)
TIMES = {"wall_time_s", "s_per_epoch", "train_images_per_s", "train_time_s", "epoch_time_s", "feature_pass_s"}
TIMES |= {"peak_memory_mb", "memory_at_start_mb", "eval_batch_halved_to"}


def smoke(case_id: str = "hw3-a-cnn", **train):
    case = apply_profile(next(c for c in load_cases()[0] if c.id == case_id), PROFILES["smoke"])
    case = dataclasses.replace(case, train=dataclasses.replace(case.train, **train))
    data = cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), case.data.image_size).open()
    return case, data


def inject(monkeypatch, fails, part=None):
    """Every model the engine builds raises ``fails(training, batch)`` (an exception or None) before a forward pass
    (of ``part``, e.g. the backbone, where given); returns the (training, batch) of the passes that ran."""
    ran = []
    create = registry.create_model

    def hook(module, args):
        training, batch = module.training, args[0].shape[0]
        error = fails(training, batch)
        if error is not None:
            raise error
        ran.append((training, batch))

    def create_model(*args, **kwargs):
        model = create(*args, **kwargs)
        (getattr(model, part) if part else model).register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(registry, "create_model", create_model)
    return ran


def eval_above(limit: int):
    return lambda training, batch: torch.cuda.OutOfMemoryError("injected") if not training and batch > limit else None


def same_results(a: dict, b: dict):
    """The same history and metrics, times and memory aside: no result depends on evaluation's batch."""
    for x, y in [(a["metrics"], b["metrics"]), *zip(a["history"], b["history"], strict=True)]:
        assert {k: v for k, v in x.items() if k not in TIMES} == {k: v for k, v in y.items() if k not in TIMES}


def test_the_out_of_memory_test_knows_cublas_and_cudnn_allocation_failures():
    assert memory.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert memory.is_out_of_memory(RuntimeError(CUBLAS)) and memory.is_out_of_memory(RuntimeError(CUDNN))
    assert memory.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not memory.is_out_of_memory(RuntimeError(NOT_SUPPORTED))
    assert not memory.is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"))
    assert not memory.is_out_of_memory(ValueError(CUBLAS))
    assert not memory.is_out_of_memory(memory.ForwardOutOfMemory("out of memory at one image a batch"))


def test_the_worker_retries_a_cublas_allocation_failure_and_nothing_else():
    def fails(message):
        def first():
            raise RuntimeError(message)

        return first

    assert trainings._with_oom_retry(fails(CUBLAS), lambda: "retried") == "retried"
    with pytest.raises(RuntimeError, match="NOT_SUPPORTED"):
        trainings._with_oom_retry(fails(NOT_SUPPORTED), lambda: "retried")


def test_out_of_memory_while_evaluating_halves_only_the_evaluation_batch(monkeypatch):
    """Evaluation at 64 runs out above 16: the split is run again at 32, then 16, the training goes on at its own
    batch of 32 without a restart, and the results are those of an evaluation that fitted."""
    case, data = smoke()
    fitted = train_case(case, data, CPU, eval_batch_size=64)
    ran = inject(monkeypatch, eval_above(16))
    outcome = train_case(case, data, CPU, eval_batch_size=64)
    assert outcome["metrics"]["eval_batch_halved_to"] == 16 and fitted["metrics"]["eval_batch_halved_to"] is None
    assert max(batch for training, batch in ran if training) == case.train.batch_size == 32
    assert {batch for training, batch in ran if not training} == {16}
    assert len(outcome["history"]) == case.train.epochs  # one training, every epoch
    same_results(outcome, fitted)


def test_the_worker_row_keeps_the_training_batch_and_says_evaluation_was_halved(monkeypatch):
    case, data = smoke()
    inject(monkeypatch, eval_above(16))
    row = trainings.train_one(case, data, CPU, eval_batch_size=64, progress=False)
    assert row.status == "ok" and row.retry is None
    assert row.config["train"]["batch_size"] == 32 and row.metrics.eval_batch_halved_to == 16


def test_out_of_memory_while_training_still_retries_the_case_at_half_the_batch(monkeypatch):
    """A cuBLAS allocation failure in the first training step: the case trains again at 16, recorded in
    ``row.retry``; evaluation keeps its whole batch."""
    case, data = smoke()
    failed = []

    def first_training_step(training, batch):
        if training and not failed:
            failed.append(batch)
            return RuntimeError(CUBLAS)
        return None

    ran = inject(monkeypatch, first_training_step)
    row = trainings.train_one(case, data, CPU, eval_batch_size=64, progress=False)
    assert row.status == "ok" and row.retry == "CUDA out of memory at batch size 32; retried with 16"
    assert row.config["train"]["batch_size"] == 16 and row.metrics.eval_batch_halved_to is None
    assert max(batch for training, batch in ran if training) == 16
    assert max(batch for training, batch in ran if not training) == 64


def test_evaluation_that_fits_no_batch_fails_the_case_without_a_training_retry(monkeypatch):
    case, data = smoke()
    inject(monkeypatch, eval_above(0))
    row = trainings.train_one(case, data, CPU, eval_batch_size=64, progress=False)
    assert row.status == "failed" and row.retry is None
    assert row.reason.startswith("ForwardOutOfMemory: out of memory at one image a batch")


def test_out_of_memory_in_the_feature_pass_halves_its_batch(monkeypatch):
    """The frozen backbone's one forward pass over every image: halved like evaluation, same features."""
    case, data = smoke("hw4-c-efficientnet-lite0", epochs=1)
    fitted = train_case(case, data, CPU, eval_batch_size=64)
    ran = inject(monkeypatch, eval_above(8), part="backbone")
    outcome = train_case(case, data, CPU, eval_batch_size=64)
    assert outcome["metrics"]["feature_pass_s"] is not None and outcome["metrics"]["eval_batch_halved_to"] == 8
    assert {batch for _, batch in ran} == {8}
    same_results(outcome, fitted)


def test_the_feature_cache_lets_the_images_go(monkeypatch):
    """Once the frozen backbone's features exist, no image loader (on a GPU: the splits' images on the device) is
    referenced: none is alive when the first epoch ends, and the training split is loaded once, not twice."""
    case, data = smoke("hw4-c-efficientnet-lite0", epochs=2)
    loaders: list[weakref.ref] = []

    class Recorded(engine.BatchLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            loaders.append(weakref.ref(self))

    alive_after_epoch = []
    monkeypatch.setattr(engine, "BatchLoader", Recorded)
    outcome = train_case(
        case, data, CPU, on_epoch=lambda row: alive_after_epoch.append(sum(ref() is not None for ref in loaders))
    )
    assert outcome["metrics"]["feature_pass_s"] is not None
    assert alive_after_epoch == [0, 0] and len(loaders) == 3


def test_the_cuda_peaks_are_allocated_and_reserved_from_the_case_s_start(monkeypatch):
    """``peak_memory_mb`` keeps its meaning (what tensors held); ``peak_reserved_mb`` adds the allocator's cache."""
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 100 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 1500 * 2**20)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: 2048 * 2**20)
    gpu = torch.device("cuda", 0)
    read = memory.PeakMeter.start(gpu).read()
    assert calls == [("reset", gpu)]
    assert read == {
        "peak_memory_mb": 1500.0,
        "peak_memory_kind": "cuda allocated",
        "peak_reserved_mb": 2048.0,
        "memory_at_start_mb": 100.0,
    }
    assert Metrics.model_validate(read).peak_reserved_mb == 2048.0
    assert memory.PeakMeter(CPU, False, None).read()["peak_reserved_mb"] is None


def test_a_cpu_case_records_no_reserved_peak():
    case, data = smoke("hw3-b-mlp", epochs=1)
    metrics = Metrics.model_validate(train_case(case, data, CPU)["metrics"])
    assert metrics.peak_reserved_mb is None and metrics.peak_memory_mb is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_reserved_peak_covers_the_allocated_one_and_evaluation_halves(monkeypatch):
    """On a real GPU (benchmarks/gpu_check.sh runs ``-k cuda``): the peaks as recorded, and an injected evaluation
    out-of-memory error halved with the allocator's cache emptied."""
    case, data = smoke()
    inject(monkeypatch, eval_above(16))
    metrics = train_case(case, data, torch.device("cuda"), eval_batch_size=64)["metrics"]
    assert metrics["peak_memory_kind"] == "cuda allocated" and metrics["eval_batch_halved_to"] == 16
    assert 0 < metrics["peak_memory_mb"] <= metrics["peak_reserved_mb"]
