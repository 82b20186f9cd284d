"""Loss functions and how logits become probabilities: one logit with BCE, or two classes with CE (the names a
case gives, ``choices.LOSSES``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from xraybench.train.choices import BCE, CE


@dataclass(frozen=True)
class Objective:
    num_outputs: int
    make_loss: Callable[[], nn.Module]
    target: Callable[[torch.Tensor], torch.Tensor]  # integer labels → what the loss expects
    pneumonia_prob: Callable[[torch.Tensor], torch.Tensor]  # logits → P(pneumonia)


OBJECTIVES: dict[str, Objective] = {
    BCE: Objective(
        num_outputs=1,
        make_loss=nn.BCEWithLogitsLoss,
        target=lambda y: y.float().unsqueeze(1),
        pneumonia_prob=lambda logits: torch.sigmoid(logits.float()).squeeze(1),
    ),
    CE: Objective(
        num_outputs=2,
        make_loss=nn.CrossEntropyLoss,
        target=lambda y: y.long(),
        pneumonia_prob=lambda logits: torch.softmax(logits.float(), dim=1)[:, 1],
    ),
}
