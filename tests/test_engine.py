import dataclasses
import statistics

import numpy as np
import pytest
import torch

from xraybench.cases import PROFILES, apply_profile, load_cases
from xraybench.data import cache
from xraybench.data.sources import SyntheticSource
from xraybench.train import memory
from xraybench.train.engine import Diverged, train_case
from xraybench.train.metrics import binary_metrics

CPU = torch.device("cpu")


def smoke_case(case_id: str = "hw3-a-cnn"):
    case = next(c for c in load_cases()[0] if c.id == case_id)
    return apply_profile(case, PROFILES["smoke"])


def smoke_data():
    return cache.prepare(SyntheticSource(PROFILES["smoke"].synthetic_sizes), 32).open()


def strip_times(outcome: dict) -> dict:
    timing = {
        "wall_time_s",
        "s_per_epoch",
        "train_images_per_s",
        "train_time_s",
        "epoch_time_s",
        "peak_memory_mb",
        "memory_at_start_mb",
    }
    return {
        "history": [{k: v for k, v in row.items() if k not in timing} for row in outcome["history"]],
        "metrics": {k: v for k, v in outcome["metrics"].items() if k not in timing},
    }


@pytest.mark.parametrize("case_id", ["hw3-a-cnn-dropout", "hw3-b-mlp"])
def test_cpu_training_is_deterministic(case_id):
    case, data = smoke_case(case_id), smoke_data()
    first, second = train_case(case, data, CPU), train_case(case, data, CPU)
    assert strip_times(first) == strip_times(second)
    other_seed = dataclasses.replace(case, train=dataclasses.replace(case.train, seed=1))
    assert strip_times(train_case(other_seed, data, CPU)) != strip_times(first)


def test_outcome_has_history_and_test_metrics():
    case = smoke_case()
    outcome = train_case(case, smoke_data(), CPU)
    assert [row["epoch"] for row in outcome["history"]] == list(range(1, case.train.epochs + 1))
    m = outcome["metrics"]
    for key in (
        "test_acc",
        "test_auc",
        "test_sensitivity",
        "test_specificity",
        "test_f1",
        "test_loss",
        "best_val_acc",
        "wall_time_s",
        "train_images_per_s",
        "params",
        "peak_memory_mb",
    ):
        assert m[key] is not None, key
    confusion = m["test_confusion"]
    assert sum(confusion.values()) == 64
    assert m["test_acc"] == pytest.approx((confusion["tp"] + confusion["tn"]) / 64)
    assert m["best_val_acc"] == max(row["val_acc"] for row in outcome["history"])


def test_images_per_second_come_from_the_median_epoch():
    case = dataclasses.replace(smoke_case(), train=dataclasses.replace(smoke_case().train, epochs=3))
    outcome = train_case(case, smoke_data(), CPU)
    median = statistics.median(row["train_time_s"] for row in outcome["history"])
    assert outcome["metrics"]["train_images_per_s"] == pytest.approx(192 / median)


def test_cpu_peak_memory_is_the_case_s_own():
    """The resident-set high-water mark is reset per case: a case after a big one does not inherit its peak
    (ru_maxrss only ever rises)."""
    import ctypes
    import ctypes.util

    meter = memory.PeakMeter.start(CPU)
    big = torch.ones(400 * 2**20 // 4)  # 400 MB, touched
    after_big = meter.read()
    del big
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)  # hand the freed pages back, whatever the heap did
    if not meter.resettable:  # a sandbox whose kernel ignores clear_refs: the record must say so
        assert after_big["peak_memory_kind"] == "process RSS peak since start (not resettable here)"
        return
    assert after_big["peak_memory_mb"] >= after_big["memory_at_start_mb"] + 380
    small = memory.PeakMeter.start(CPU).read()
    assert small["peak_memory_kind"] == "process RSS peak during the case"
    lifetime = after_big["peak_memory_mb"]  # (clear_refs resets ru_maxrss too: it reads the same mark)
    assert small["peak_memory_mb"] <= small["memory_at_start_mb"] + 16  # reset to the RSS it found
    assert small["peak_memory_mb"] < lifetime - 300  # not the process's lifetime peak
    metrics = train_case(smoke_case(), smoke_data(), CPU)["metrics"]
    assert metrics["memory_at_start_mb"] <= metrics["peak_memory_mb"]
    assert metrics["peak_memory_kind"] == "process RSS peak during the case"


def test_training_learns_on_synthetic_data():
    """A few epochs at 32 px rank pneumonia above normal on the shifted test split: the data
    carry a learnable signal (accuracy may still sit at the class prior this early)."""
    case = smoke_case()
    case = dataclasses.replace(case, train=dataclasses.replace(case.train, epochs=8))
    data = cache.prepare(SyntheticSource((600, 200, 200)), 32).open()
    outcome = train_case(case, data, CPU)
    assert outcome["metrics"]["test_auc"] > 0.8
    assert outcome["history"][-1]["train_loss"] < outcome["history"][0]["train_loss"]


def test_nan_loss_is_reported_as_diverged():
    case = smoke_case()
    case = dataclasses.replace(case, model=dataclasses.replace(case.model, name="nan_model", options={}))
    with pytest.raises(Diverged, match="diverged at epoch 1"):
        train_case(case, smoke_data(), CPU)


def test_binary_metrics_match_a_hand_count():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    probs = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7, 0.3])
    m = binary_metrics(labels, probs)
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 2, "tp": 3}
    assert m["acc"] == pytest.approx(5 / 8)
    assert m["sensitivity"] == pytest.approx(3 / 5) and m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert binary_metrics(np.ones(3), np.ones(3))["auc"] is None  # undefined with one class


@pytest.mark.parametrize("rule, key", [("val_auc", lambda r: r["val_auc"]), ("val_loss", lambda r: -r["val_loss"])])
def test_the_kept_epoch_follows_the_cases_rule(rule, key):
    case = smoke_case()
    case = dataclasses.replace(case, train=dataclasses.replace(case.train, epochs=4, select_by=rule))
    outcome = train_case(case, smoke_data(), CPU)
    history = outcome["history"]
    assert all(row["val_auc"] is not None for row in history)
    assert outcome["metrics"]["best_epoch"] == max(history, key=key)["epoch"]


def test_early_stopping_ends_training_once_the_metric_stalls():
    """A learning rate too small to move any weight: validation loss never improves after epoch 1, so
    patience 2 stops after epoch 3 of 10, and the epoch time is over the epochs that ran."""
    case = smoke_case()
    train = dataclasses.replace(
        case.train, epochs=10, optimizer="sgd", lr=1e-30, select_by="val_loss", early_stopping={"patience": 2}
    )
    outcome = train_case(dataclasses.replace(case, train=train), smoke_data(), CPU)
    m = outcome["metrics"]
    assert [row["epoch"] for row in outcome["history"]] == [1, 2, 3] and m["epochs_run"] == 3
    assert m["best_epoch"] == 1 and m["s_per_epoch"] == pytest.approx(m["wall_time_s"] / 3)


def test_pad_to_centres_the_image_on_a_zero_canvas_and_the_model_sees_the_canvas():
    """MedMNIST+ pads 28-pixel images with zeros to 224 rather than resizing them, after normalising them
    (torchvision's Pad follows Normalize in its transforms): zeros, the mean colour, around the untouched
    image; the model is built for the padded side."""
    from xraybench.data import BatchLoader
    from xraybench.data.sources import Split

    images = torch.randint(1, 256, (4, 1, 28, 28), dtype=torch.uint8)
    split = Split(images, torch.tensor([0, 1, 0, 1]))
    plain = BatchLoader(split, 4, device="cpu", mean=0.5, std=0.5)
    padded = BatchLoader(split, 4, device="cpu", mean=0.5, std=0.5, pad_to=33)
    ((x, _),) = list(plain)
    ((big, _),) = list(padded)
    assert big.shape == (4, 1, 33, 33)
    assert torch.equal(big[..., 2:30, 2:30], x)  # 5 extra pixels: 2 before, 3 after
    assert torch.all(big[..., :2, :] == 0.0) and torch.all(big[..., 30:, :] == 0.0)  # not (0/255 − 0.5)/0.5 = −1

    case = smoke_case("hw3-b-mlp")  # a flatten head: its width follows the side it is built for
    case = dataclasses.replace(
        case, data=dataclasses.replace(case.data, pad_to=48), train=dataclasses.replace(case.train, epochs=1)
    )
    outcome = train_case(case, smoke_data(), CPU)
    assert outcome["metrics"]["test_acc"] is not None and case.data.input_size == 48
