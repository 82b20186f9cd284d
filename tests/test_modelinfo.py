import dataclasses

import pytest
import torch

from xraybench.cases import load_cases
from xraybench.models.info import model_info


def case(case_id: str):
    return next(c for c in load_cases()[0] if c.id == case_id)


def test_resnet18_at_224_agrees_with_torchvision_meta():
    """11,689,512 parameters and 1.814 G multiply-adds (torchvision's 'GFLOPS'); flop_counter counts 2 per MAC."""
    info = model_info(case("hw4-b-resnet18"), torch.device("cpu"), latency_runs=2, num_outputs=2)
    assert info["params"] == 11_689_512
    assert info["flops"] / 2 / 1e9 == pytest.approx(1.814, rel=0.01)
    assert info["imagenet_acc1"] == pytest.approx(69.758) and info["file_size_mb"] == pytest.approx(44.661)
    assert info["latency_ms"] > 0


def test_costs_follow_the_input_size():
    small = dataclasses.replace(case("hw3-a-cnn"), data=dataclasses.replace(case("hw3-a-cnn").data, image_size=64))
    big = model_info(case("hw3-a-cnn"), torch.device("cpu"), 2, num_outputs=1)
    little = model_info(small, torch.device("cpu"), 2, num_outputs=1)
    assert big["flops"] == pytest.approx(16 * little["flops"], rel=0.05)
    assert big["weights"] is None and big["imagenet_acc1"] is None


def test_costs_are_measured_once_per_architecture_input_and_precision(monkeypatch):
    """The seeds of a case and the cases sharing a model reuse one measurement; another input size, output count
    or precision is measured anew, and a model registered anew under the same name too."""
    from xraybench.models import registry

    built = []
    create = registry.create_model
    monkeypatch.setattr(registry, "create_model", lambda *a, **k: built.append(a[0]) or create(*a, **k))
    cnn = dataclasses.replace(case("hw3-a-cnn"), data=dataclasses.replace(case("hw3-a-cnn").data, image_size=40))
    first = model_info(cnn, torch.device("cpu"), 2, num_outputs=1)
    again = model_info(dataclasses.replace(cnn, id="another", train=dataclasses.replace(cnn.train, seed=3)),
                       torch.device("cpu"), 2, num_outputs=1)  # fmt: skip
    assert again == first and built == ["hw3_cnn"]
    first["params"] = -1  # a caller's copy: the cache keeps its own
    assert model_info(cnn, torch.device("cpu"), 2, num_outputs=1)["params"] > 0 and len(built) == 1
    model_info(cnn, torch.device("cpu"), 2, num_outputs=2)
    model_info(cnn, torch.device("cpu"), 2, num_outputs=1, autocast_dtype=torch.bfloat16)
    assert len(built) == 3
    again_bf16 = model_info(cnn, torch.device("cpu"), 2, num_outputs=1, autocast_dtype=torch.bfloat16)
    assert len(built) == 3 and again_bf16["params"] == again["params"]
