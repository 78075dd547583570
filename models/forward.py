"""Batched torch semantics of the affine, shape and elementwise canonical ops.

Every function takes ``(node, inputs)``: ``inputs`` holds one tensor per entry of
``node.inputs``; values that depend on the graph input carry ONE extra leading
batch dimension (``[B, *shape]``), constants do not. The functions are pure
torch (differentiable, any device and float dtype), and apply the per-sample
ONNX semantics of ``models.ops`` with the batch dimension handled explicitly:
every per-sample axis ``a`` is tensor axis ``a + 1``.

Broadcasting ops (Add, Mul, MatMul) rely on the IR invariant stated in
``models.ops``: every batched operand has the rank of the node's output, so
plain torch broadcasting aligns constants (of any lower or equal rank) with
per-sample axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import Node

ForwardFn = Callable[[Node, Sequence[Tensor]], Tensor]


def _unary(fn: Callable[[Tensor], Tensor]) -> ForwardFn:
    def forward(node: Node, inputs: Sequence[Tensor]) -> Tensor:
        return fn(inputs[0])

    forward.__doc__ = f"Elementwise ``{getattr(fn, '__name__', 'fn')}`` of input 0."
    return forward


def linear(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """``x @ W (+ b)`` over the last axis; ``W`` is ``[K, N]``."""
    y = torch.matmul(inputs[0], inputs[1])
    if len(inputs) > 2:
        y = y + inputs[2]
    return y


def matmul(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """ONNX MatMul of two operands of rank >= 2 (constant or batched)."""
    return torch.matmul(inputs[0], inputs[1])


def add(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Broadcasting sum."""
    return inputs[0] + inputs[1]


def mul(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Broadcasting product."""
    return inputs[0] * inputs[1]


def leaky_relu(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """``x`` if ``x >= 0`` else ``alpha * x``."""
    return F.leaky_relu(inputs[0], float(node.attr("alpha", 0.01)))


def gelu(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """GELU, exact (``approximate='none'``) or the tanh approximation."""
    return F.gelu(inputs[0], approximate=str(node.attr("approximate", "none")))


def power(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """``x ** exponent`` with a constant float exponent."""
    return torch.pow(inputs[0], float(node.attrs["exponent"]))


def clip(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Clamp to ``[min, max]`` (infinite bounds are absent)."""
    lo = float(node.attr("min", float("-inf")))
    hi = float(node.attr("max", float("inf")))
    return torch.clamp(
        inputs[0], min=None if lo == float("-inf") else lo, max=None if hi == float("inf") else hi
    )


def reshape(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Reshape every sample to the static ``shape``."""
    x = inputs[0]
    return x.reshape((x.shape[0], *node.attrs["shape"]))


def transpose(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Permute the per-sample axes by ``perm``."""
    return inputs[0].permute(0, *(p + 1 for p in node.attrs["perm"]))


def concat(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Concatenate along ``axis``; constants (one dim fewer) are repeated per sample."""
    batched_rank = max(t.dim() for t in inputs)
    batch = next(t.shape[0] for t in inputs if t.dim() == batched_rank)
    parts = [t if t.dim() == batched_rank else t.expand(batch, *t.shape) for t in inputs]
    return torch.cat(parts, dim=int(node.attrs["axis"]) + 1)


def slice_(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Static slices; ``starts``/``ends`` follow Python ``range`` semantics (resolved)."""
    x = inputs[0]
    starts = node.attrs["starts"]
    axes = node.attr("axes", range(len(starts)))
    steps = node.attr("steps", (1,) * len(starts))
    for start, end, axis, step in zip(starts, node.attrs["ends"], axes, steps, strict=True):
        dim = int(axis) + 1
        if step > 0:
            index = [slice(None)] * x.dim()
            index[dim] = slice(int(start), int(end), int(step))
            x = x[tuple(index)]
        else:
            idx = torch.arange(int(start), int(end), int(step), device=x.device)
            x = x.index_select(dim, idx)
    return x


def gather(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """ONNX Gather with constant (non-negative) int64 indices."""
    x, idx = inputs[0], inputs[1]
    dim = int(node.attrs["axis"]) + 1
    flat = x.index_select(dim, idx.reshape(-1).to(device=x.device, dtype=torch.long))
    return flat.reshape(*x.shape[:dim], *idx.shape, *x.shape[dim + 1 :])


def pad(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Constant padding; ``pads`` in ONNX order (negative values crop)."""
    pads = [int(p) for p in node.attrs["pads"]]
    n = len(pads) // 2
    torch_pads: list[int] = []
    for axis in reversed(range(n)):
        torch_pads += [pads[axis], pads[axis + n]]
    return F.pad(inputs[0], torch_pads, mode="constant", value=float(node.attr("value", 0.0)))


def expand(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Broadcast every sample to the static target ``shape``."""
    x = inputs[0]
    target = tuple(int(d) for d in node.attrs["shape"])
    lead = len(target) - (x.dim() - 1)
    x = x.reshape(x.shape[0], *([1] * lead), *x.shape[1:])
    return x.expand(x.shape[0], *target)


def resize(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Nearest-neighbour upsampling by integer ``scales`` (each element repeated)."""
    if node.attr("mode", "nearest") != "nearest":
        raise ValueError(f"node {node.name!r}: Resize mode {node.attr('mode')!r} is not supported")
    x = inputs[0]
    for axis, scale in enumerate(node.attrs["scales"]):
        if scale != 1:
            x = x.repeat_interleave(int(scale), dim=axis + 1)
    return x


def _sign(x: Tensor) -> Tensor:
    return torch.sign(x)


BASIC_FORWARD: dict[str, ForwardFn] = {
    "Linear": linear,
    "MatMul": matmul,
    "Add": add,
    "Mul": mul,
    "Neg": _unary(torch.neg),
    "Reshape": reshape,
    "Transpose": transpose,
    "Concat": concat,
    "Slice": slice_,
    "Gather": gather,
    "Pad": pad,
    "Expand": expand,
    "Resize": resize,
    "Relu": _unary(torch.relu),
    "LeakyRelu": leaky_relu,
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Sin": _unary(torch.sin),
    "Cos": _unary(torch.cos),
    "Erf": _unary(torch.erf),
    "Gelu": gelu,
    "Exp": _unary(torch.exp),
    "Log": _unary(torch.log),
    "Reciprocal": _unary(torch.reciprocal),
    "Sqrt": _unary(torch.sqrt),
    "Pow": power,
    "Sign": _unary(_sign),
    "Floor": _unary(torch.floor),
    "Clip": clip,
}
