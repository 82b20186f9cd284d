"""K seeds of one small network as one network of grouped layers: each layer launches once for all K.

A small model's training step on a GPU is bound by kernel launches (the HW3 CNN: ~100 PyTorch operations
of ~10 µs host time each against 0.1–0.2 ms of GPU work at 64 px). Stacking K copies turns each convolution
into one grouped convolution (``groups=K``), each linear layer into one grouped convolution over its input map
or one batched matrix product, each BatchNorm into one over K·C channels; the rest (ReLU, pooling, dropout,
flatten) act per element or per channel already. The seeds' tensors never mix, so each seed computes what it
would alone, with its own initialisation (the K models are built first, each after its seed) and its own batches.

Inputs are *packed*: seed k's batch occupies channels k·C … (k+1)·C − 1 of one [B, K·C, H, W] tensor
(``torch.cat(batches, dim=1)``), and the logits come out as [B, K·outputs, 1, 1]. Only ``nn.Sequential`` models
made of the layers in ``GROUPED`` stack (the HW3 models); ``unstackable`` says why another does not.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from xraybench.train.precision import in_fp32, runs_in_fp32


def _grouped_conv(layers: list[nn.Conv2d], shape: tuple[int, ...]) -> nn.Conv2d:
    first, k = layers[0], len(layers)
    grouped = nn.Conv2d(
        k * first.in_channels,
        k * first.out_channels,
        first.kernel_size,
        stride=first.stride,
        padding=first.padding,
        dilation=first.dilation,
        groups=k * first.groups,
        bias=first.bias is not None,
        padding_mode=first.padding_mode,  # applied per channel: each seed's own
    )
    with torch.no_grad():
        grouped.weight.copy_(torch.cat([layer.weight for layer in layers]))
        if first.bias is not None:
            grouped.bias.copy_(torch.cat([layer.bias for layer in layers]))
    return grouped


class GroupedLinear(nn.Module):
    """K ``nn.Linear`` layers over flattened [C, H, W] maps: [B, K·C, H, W] → [B, K·out, 1, 1] in one batched matrix
    product (a grouped convolution whose kernel covers a large map is slow in oneDNN and risky in cuDNN)."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]))  # [K, in, out]
        bias = [layer.bias for layer in layers]
        if bias[0] is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(torch.stack([b.detach() for b in bias]).unsqueeze(1))  # [K, 1, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seeds = x.reshape(x.shape[0], self.k, -1).transpose(0, 1)  # [K, B, in]
        out = torch.bmm(seeds, self.weight) if self.bias is None else torch.baddbmm(self.bias, seeds, self.weight)
        return out.transpose(0, 1).reshape(x.shape[0], -1, 1, 1)


CONV_LINEAR_MAX_PIXELS = 64  # a Linear over a map of at most 8×8 becomes a convolution; over a larger one, a bmm


def _grouped_linear(layers: list[nn.Linear], shape: tuple[int, ...]) -> nn.Module:
    """K ``nn.Linear`` layers as one. Over a small map ([C, H, W] flattened, H·W ≤ ``CONV_LINEAR_MAX_PIXELS``, or
    features: 1×1) a grouped convolution whose kernel covers the map, [B, K·C, H, W] → [B, K·out, 1, 1]: one kernel
    forward and one backward, where a Linear takes a transpose and a matrix product, and three more backward — what
    counts where a step is bound by launches (small maps). Over a larger map, where the arithmetic dominates, a
    ``GroupedLinear``: a map-sized kernel is slow in oneDNN (measured 12× on the CPU, 64 px) and untried in cuDNN."""
    channels, height, width = shape if len(shape) == 3 else (shape[0], 1, 1)
    if height * width > CONV_LINEAR_MAX_PIXELS:
        return GroupedLinear(layers)
    first, k = layers[0], len(layers)
    grouped = nn.Conv2d(k * channels, k * first.out_features, (height, width), groups=k, bias=first.bias is not None)
    with torch.no_grad():
        grouped.weight.copy_(
            torch.cat([layer.weight.reshape(first.out_features, channels, height, width) for layer in layers])
        )
        if first.bias is not None:
            grouped.bias.copy_(torch.cat([layer.bias for layer in layers]))
    return grouped


def _grouped_batch_norm(layers: list[nn.modules.batchnorm._BatchNorm], shape: tuple[int, ...]) -> nn.Module:
    """One BatchNorm over K·C channels (a BatchNorm1d's features are 1×1 maps here: BatchNorm2d, the same sums)."""
    first, k = layers[0], len(layers)
    grouped = nn.BatchNorm2d(
        k * first.num_features, eps=first.eps, momentum=first.momentum, affine=first.affine,
        track_running_stats=first.track_running_stats,
    )  # fmt: skip
    with torch.no_grad():
        for name, tensor in grouped.named_parameters(recurse=False):
            tensor.copy_(torch.cat([getattr(layer, name) for layer in layers]))
        for name in ("running_mean", "running_var"):
            if getattr(first, name) is not None:
                getattr(grouped, name).copy_(torch.cat([getattr(layer, name) for layer in layers]))
    return grouped


def _shared(layers: list[nn.Module], shape: tuple[int, ...]) -> nn.Module:
    """A layer that acts per element or per channel: one copy serves every seed."""
    return copy.deepcopy(layers[0])


GROUPED = {
    nn.Conv2d: _grouped_conv,
    nn.Linear: _grouped_linear,
    nn.BatchNorm1d: _grouped_batch_norm,
    nn.BatchNorm2d: _grouped_batch_norm,
    **dict.fromkeys((nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout), _shared),
    nn.Flatten: None,  # features stay [K·C, H, W] maps: each Linear covers its map (``_grouped_linear``)
    nn.AdaptiveAvgPool2d: _shared,  # to 1×1 only (checked): a larger output would interleave the seeds
}


def unstackable(model: nn.Module) -> str | None:
    """Why ``model`` cannot be stacked, or None when it can."""
    if type(model) is not nn.Sequential:
        return f"{type(model).__name__} is not an nn.Sequential"
    for layer in model:
        kind = _kind(layer)
        if kind is None:
            return (
                f"layer {type(layer).__name__} cannot be stacked (stackable: {', '.join(k.__name__ for k in GROUPED)})"
            )
        if kind is nn.AdaptiveAvgPool2d and layer.output_size not in (1, (1, 1)):
            return f"AdaptiveAvgPool2d to {layer.output_size} (only to 1×1)"
        if kind is nn.Flatten and (layer.start_dim, layer.end_dim) != (1, -1):
            return "a Flatten other than Flatten(1, -1)"
    return None


def _kind(layer: nn.Module) -> type | None:
    """The layer's class in ``GROUPED`` (for an output layer kept in fp32, the class it wraps); None if absent."""
    if runs_in_fp32(layer):
        return next((k for k in type(layer).__mro__ if k in GROUPED), None)
    return type(layer) if type(layer) in GROUPED else None


class StackedModel(nn.Module):
    """K models of one architecture as one: packed input [B, K·C, H, W] → packed logits [B, K·outputs, 1, 1]."""

    def __init__(self, models: list[nn.Module], image_shape: tuple[int, int, int]):
        super().__init__()
        if reason := unstackable(models[0]):
            raise ValueError(f"cannot stack: {reason}")
        self.k = len(models)
        layers = []
        for position, shape in zip(zip(*models), _input_shapes(models[0], image_shape)):
            make = GROUPED[_kind(position[0])]
            if make is None:
                continue
            grouped = make(list(position), shape)
            if runs_in_fp32(position[0]):  # the output layer stays out of autocast, as in each seed's model
                in_fp32(grouped)
            layers.append(grouped)
        self.net = nn.Sequential(*layers).to(next(models[0].parameters()).device)  # grouped layers start on the CPU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def shared(self) -> nn.Module:
        """The model for one batch that every seed sees (validation, test): [B, C, H, W] → [B, K·outputs, 1, 1]."""
        return SharedInput(self)

    def seed_state(self, k: int) -> dict[str, torch.Tensor]:
        """Seed ``k``'s slice of every parameter and buffer (copies): what ``load_seed_state`` puts back."""
        return {name: _seed_slice(t, self.k, k).clone() for name, t in self._seed_tensors()}

    def load_seed_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, tensor in self._seed_tensors():
                _seed_slice(tensor, self.k, k).copy_(state[name])

    def _seed_tensors(self):
        """Every parameter and buffer with a slice per seed (BatchNorm's shared step counter has none)."""
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            if tensor.dim() > 0:
                yield name, tensor


@torch.no_grad()
def _input_shapes(model: nn.Sequential, image_shape: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """The per-image shape each layer reads, a flattened map's as [C, H, W] (a forward pass of zeros in eval mode)."""
    parameter = next(model.parameters())
    x, shape, shapes = torch.zeros(1, *image_shape, device=parameter.device, dtype=parameter.dtype), image_shape, []
    for layer in model:
        shapes.append(tuple(shape))
        training = layer.training
        x = layer.eval()(x)
        layer.train(training)
        if not isinstance(layer, nn.Flatten):
            shape = x.shape[1:]
    return shapes


def _seed_slice(tensor: torch.Tensor, k_total: int, k: int) -> torch.Tensor:
    """Seed k's part of a stacked tensor: the k-th of K equal blocks along the first dimension."""
    return tensor.unflatten(0, (k_total, -1))[k]


class SharedInput(nn.Module):
    """A stacked model fed one batch for all seeds (repeated along the channels)."""

    def __init__(self, stacked: StackedModel):
        super().__init__()
        self.stacked = stacked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stacked(x.repeat(1, self.stacked.k, 1, 1))
