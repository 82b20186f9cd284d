from pathlib import Path

import pytest
import torch
from torch import nn

from xraybench.registry import register_model

FIXTURES = Path(__file__).parent / "fixtures"
KERMANY = FIXTURES / "kermany-mini"
NPZ = FIXTURES / "pneumoniamnist-28-subset.npz"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """One data cache for the whole test session, never the user's."""
    monkeypatch.setenv("XRAYBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def write_cases(tmp_path):
    """Write a case file from TOML text; returns its path."""
    def write(text: str, name: str = "cases.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@register_model
def nan_model(*, in_channels: int, image_size: int, num_outputs: int) -> nn.Module:
    """A model whose output is NaN, for tests of divergence handling."""
    class NaN(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return (self.w * float("nan")).expand(x.shape[0], num_outputs)
    return NaN()
