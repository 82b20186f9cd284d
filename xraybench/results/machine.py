"""What a run was measured on — the machine's GPU, the software, the commit: tables a reader reads as dicts (the report
lists them whole), with the fields xraybench writes typed, so that a reader can trust them; fields another version
adds are kept."""

from __future__ import annotations

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict


@with_config(ConfigDict(extra="allow"))
class Gpu(TypedDict, total=False):
    name: str
    memory_gb: float
    capability: str


@with_config(ConfigDict(extra="allow"))
class Software(TypedDict, total=False):
    xraybench: str
    torch: str
    torchvision: str
    cuda: str | None
    cudnn: int | None
    torch_threads: int
    device: str
    gpu: Gpu | None
    autocast: str | None  # older runs: the autocast a GPU run used


@with_config(ConfigDict(extra="allow"))
class Commit(TypedDict, total=False):
    id: str | None
    branch: str | None
    dirty: bool | None
    time: str | None
