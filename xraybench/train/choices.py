"""What a case may choose for its training, by name, without torch: the optimisers and schedulers with the options
a case may give each, and the losses. This is where the names are defined: ``optim`` and ``objectives`` implement
them keyed by these tables, and the case validation reads them here, so case files load without torch.

An optimiser's or scheduler's options are its constructor's keyword arguments, less those xraybench passes itself;
they are listed as torch 2.2 (the oldest torch xraybench supports) has them. A newer torch's further options are
found in its signatures (``optim.optimizer_options``), which the validation asks only for an option not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    implementation: str | None  # the class that implements it: in torch.optim, or torch.optim.lr_scheduler
    options: tuple[str, ...] = ()  # keyword options a case may set (torch 2.2's)


OPTIMIZERS: dict[str, Choice] = {
    "adam": Choice("Adam", ("betas", "eps", "amsgrad", "foreach", "maximize", "capturable", "differentiable", "fused")),
    "adamw": Choice(
        "AdamW", ("betas", "eps", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused")
    ),
    "sgd": Choice("SGD", ("momentum", "dampening", "nesterov", "maximize", "foreach", "differentiable")),
    "rmsprop": Choice("RMSprop", ("alpha", "eps", "momentum", "centered", "foreach", "maximize", "differentiable")),
}
SCHEDULERS: dict[str, Choice] = {
    "none": Choice(None),
    "step": Choice("StepLR", ("step_size", "gamma")),
    "cosine": Choice("CosineAnnealingLR", ("T_max", "eta_min")),
    "exponential": Choice("ExponentialLR", ("gamma",)),
    "multistep": Choice("MultiStepLR", ("milestones", "gamma")),
}
BCE, CE = "bce", "ce"  # one logit with binary cross-entropy; two classes with cross-entropy
LOSSES = (BCE, CE)
