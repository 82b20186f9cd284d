"""What a CUDA training step needs of every model's memory layout and arithmetic, checked without a GPU.

CUDA's fused optimizer kernels stop the step ("params, grads, exp_avgs, and exp_avg_sqs must have same
dtype, device, and layout") unless each parameter, its gradient and its moments pass ATen's
``check_fast_path_restrictions`` (ForeachUtils.h): one device and dtype, strided, non-overlapping and dense,
the same sizes and the same strides. Before torch 2.5 the strides are compared in size-1 dimensions too
(pytorch#106951, relaxed by pytorch#134546), and there autograd lets a gradient keep whatever strides its
kernel gave it; the CPU kernel checks nothing. So these tests demand the strict form, identical strides.

The models are built as the engine builds them (``engine._build_model``: the builder, ``speedups.prepare``,
the fp32 output layer under autocast) with the engine's optimizer (``engine._optimization``). They are the
built-in models: the test suite's own (tests/conftest.py) include one that kills its process when built.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode

from xraybench.models.registry import list_models, min_input_size, model_options, origin
from xraybench.train import engine, optim
from xraybench.train.choices import CE
from xraybench.train.objectives import OBJECTIVES
from xraybench.train.precision import FP32, Precision

MODELS = [name for name in list_models() if origin(name) == "built-in"]
PRECISIONS = ["fp32", "bf16", "fp16"]
BATCH = 2  # BatchNorm in training mode needs two values per channel
SIDE = 32  # the smallest input of the smoke profile; a model that needs more gets its min_input_size


def _case(name: str) -> SimpleNamespace:
    """A case of ``name`` as the engine reads one: the transfer backbones (the models with a ``pretrained``
    option) take RGB, randomly initialised; the others grayscale, whose first conv weight is (32, 1, 3, 3)."""
    options = {"pretrained": False} if "pretrained" in model_options(name) else {}
    return SimpleNamespace(
        model=SimpleNamespace(name=name, options=options),
        data=SimpleNamespace(channels=3 if options else 1, input_size=max(SIDE, min_input_size(name))),
        train=SimpleNamespace(
            optimizer="adam",
            lr=1e-3,
            weight_decay=1e-4,
            optimizer_options={},
            scheduler="none",
            scheduler_options={},
            epochs=1,
        ),
    )


def _build(name: str, device: str, precision: Precision = FP32) -> tuple[nn.Module, bool, SimpleNamespace]:
    case = _case(name)
    with torch.device(device):  # on "meta" nothing is allocated or initialised: only layouts and dtypes
        model, channels_last = engine._build_model(case, OBJECTIVES[CE], torch.device(device), precision)
    return model, channels_last, case


def _batch(case: SimpleNamespace, channels_last: bool, device: str = "cpu") -> torch.Tensor:
    """A batch laid out as BatchLoader lays it out."""
    side = case.data.input_size
    x = torch.randn(BATCH, case.data.channels, side, side, device=device)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _refused(named: dict[str, list[torch.Tensor]]) -> list[str]:
    """What the CUDA fused kernel would refuse, per parameter: its tensors must share device, dtype, layout,
    sizes and strides, each being non-overlapping and dense."""
    refused = []
    for name, (first, *others) in named.items():
        if not optim.fused_kernel_accepts([first, *others]):
            described = [(t.device, t.dtype, t.layout, t.shape, t.stride()) for t in (first, *others)]
            refused.append(f"{name}: {described}")
    return refused


@pytest.mark.parametrize("name", MODELS)
def test_a_training_step_keeps_every_gradient_and_moment_in_its_parameters_layout(name):
    """One real training step on the CPU. The CPU's conv kernels already return each weight gradient in its
    weight's own strides, also the (32, 1, 3, 3) and 1×1 weights, so this held before the fix too; it is the
    end-to-end check that what the engine builds and steps is what the fused kernel accepts."""
    model, channels_last, case = _build(name, "cpu")
    optimizer, _ = engine._optimization(case.train, model)
    assert optimizer.defaults["fused"]
    model.train()
    model(_batch(case, channels_last)).float().sum().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert [n for n, p in trainable.items() if p.grad is None] == []
    assert _refused({n: [p, p.grad] for n, p in trainable.items()}) == []
    optimizer.step()
    moments = {n: [p, optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"]] for n, p in trainable.items()}
    assert _refused(moments) == []


class _ArrivingWith(torch.autograd.Function):
    """The identity, whose backward hands the gradient on with the given strides, as a kernel that allocated
    it so would: what reaches the optimizer is then up to autograd (and the optimizer's hooks)."""

    @staticmethod
    def forward(ctx, tensor, strides):
        ctx.strides = strides
        return tensor.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.empty_strided(grad.shape, ctx.strides, dtype=grad.dtype).copy_(grad), None


def _backpropagate(arriving: list[tuple[nn.Parameter, tuple[int, ...]]]) -> None:
    """One backward pass in which each parameter's gradient arrives with the strides paired with it."""
    sum(_ArrivingWith.apply(p, strides).sum() for p, strides in arriving).backward()


def _strides(t: torch.Tensor, fmt: torch.memory_format) -> tuple[int, ...]:
    """The strides a kernel working in ``fmt`` gives a new tensor of ``t``'s shape (``fmt`` channels-last: 4-D)."""
    return torch.empty(t.shape, device="meta", memory_format=fmt).stride()


def test_a_gradient_with_other_strides_in_a_size_1_dimension_reaches_the_optimizer_as_it_came():
    """The control for the tests below: without the fix's hook, autograd hands the optimizer a channels-last
    (32, 1, 3, 3) weight's gradient computed in the contiguous format as it came, its strides differing from
    the weight's in the size-1 dimension (pytorch#106951). In any other dimension autograd copies it."""
    weight = nn.Parameter(torch.empty(32, 1, 3, 3, memory_format=torch.channels_last))
    wide = nn.Parameter(torch.empty(32, 8, 3, 3, memory_format=torch.channels_last))
    _backpropagate([(w, _strides(w, torch.contiguous_format)) for w in (weight, wide)])
    assert (weight.stride(), weight.grad.stride()) == ((9, 1, 3, 1), (9, 9, 3, 1))
    assert wide.grad.stride() == wide.stride()


@pytest.mark.parametrize("name", MODELS)
def test_a_gradient_in_either_format_reaches_the_fused_optimizer_in_its_parameters_strides(name):
    """Whichever format a conv backend computes a weight's gradient in (cuDNN the weight's, CUDA's other
    kernels the contiguous one), the engine's fused optimizer gets it in the weight's own strides. Fails
    without ``optim._grad_in_param_strides`` for every model with a 4-D weight that has a size-1 dimension:
    a grayscale first conv, a 1×1 or a depthwise conv."""
    model, _channels_last, case = _build(name, "meta")
    model.to_empty(device="cpu")  # the same strides; the values do not matter to the gradients' strides
    optimizer, _ = engine._optimization(case.train, model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for fmt in (torch.contiguous_format, torch.channels_last):
        optimizer.zero_grad(set_to_none=True)
        _backpropagate([(p, _strides(p, fmt if p.dim() == 4 else torch.contiguous_format)) for p in trainable.values()])
        assert _refused({n: [p, p.grad] for n, p in trainable.items()}) == [], fmt


class _Convolutions(TorchDispatchMode):
    """Records every convolution the forward pass runs, with its arguments as the kernel receives them."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.convolution.default:
            self.calls.append((args, out))
        return out


def _weight_grad(args: tuple, out: torch.Tensor) -> torch.Tensor:
    """The weight gradient of a recorded ``aten.convolution`` call, as its backward kernel allocates it."""
    x, weight, bias, *geometry = args
    bias_sizes = bias.shape if bias is not None else None
    return torch.ops.aten.convolution_backward(
        torch.empty_like(out), x, weight, bias_sizes, *geometry, [False, True, False]
    )[1]


@pytest.fixture
def cuda_autocast_without_a_gpu(monkeypatch):
    """``torch.autocast("cuda")`` turns itself off where no GPU is visible, and bf16 asks the GPU; the
    dispatcher's CUDA autocast itself acts on fake CUDA tensors as on real ones."""
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.mark.usefixtures("cuda_autocast_without_a_gpu")
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", MODELS)
def test_a_forward_pass_on_a_simulated_gpu(name, precision):
    """The engine's model on ``cuda:0`` in each precision, with fake tensors (shapes, strides, dtypes and
    devices, no data), on a machine without a GPU: it runs, autocast reaches its first layer, and its logits
    are fp32. The model is built on the meta device and its parameters and buffers put on the fake GPU with
    their layouts (``functional_call``): under FakeTensorMode ``Module.to`` must swap tensors and cannot.
    A backward pass cannot be faked: the autograd engine asks the CUDA driver for the device.

    What each convolution's weight gradient will be, ATen's own choice of conv backend and memory format
    says (the fake ``convolution_backward``): those strides, handed to the engine's fused optimizer through
    autograd on the CPU, reach it as the kernel's check demands. Here, with no GPU to ask, bf16 convs
    choose the kernels a GPU without bf16 cuDNN runs, which work in the contiguous format: without the fix
    the grayscale first conv's and the 1×1 and depthwise weights' gradients then fail."""
    chosen = Precision(precision, "test")
    model, channels_last, case = _build(name, "meta", chosen)
    model.train()
    first = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    seen = {}
    first.register_forward_hook(lambda module, args, out: seen.update(dtype=out.dtype))
    on_meta = dict(model.named_parameters()) | dict(model.named_buffers())
    with FakeTensorMode(allow_non_fake_inputs=False):
        on_gpu = {
            n: torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cuda").requires_grad_(t.requires_grad)
            for n, t in on_meta.items()
        }
        x = _batch(case, channels_last, device="cuda")
        with _Convolutions() as convolutions, chosen.autocast(torch.device("cuda")):
            logits = functional_call(model, on_gpu, (x,))
        predicted = [
            (args[1].shape, args[1].stride(), _weight_grad(args, out).stride()) for args, out in convolutions.calls
        ]
    assert logits.device == torch.device("cuda", 0)
    assert logits.dtype == torch.float32 and logits.shape == (BATCH, 2)
    assert seen["dtype"] == (chosen.autocast_dtype or torch.float32)
    assert (len(predicted) > 0) == channels_last  # the models without convolutions have no more to check
    if predicted:
        # Under autocast the weight a conv receives is its cast copy, which keeps the parameter's strides.
        twins = [nn.Parameter(torch.empty_strided(shape, strides).zero_()) for shape, strides, _ in predicted]
        optim.build_optimizer("adam", twins, lr=1e-3, weight_decay=0.0, options={})
        _backpropagate([(twin, grad_strides) for twin, (*_, grad_strides) in zip(twins, predicted)])
        assert _refused({f"conv {i} {tuple(p.shape)}": [p, p.grad] for i, p in enumerate(twins)}) == []
