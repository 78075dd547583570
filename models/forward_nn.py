"""Batched torch semantics of convolutions, pooling, reductions and normalisations.

Same calling convention as ``models.forward``: ``(node, inputs)`` with batched
values ``[B, *shape]`` and unbatched constants. Convolution-like ops see the
per-sample ONNX layout ``[N, C, *spatial]`` (``N`` is the ONNX batch, usually 1);
it is merged with the leading batch dimension for the torch call and split off
again afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .forward import ForwardFn
from .graph import Node

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _ints(node: Node, key: str, default: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in node.attr(key, default))


def _torch_pads(pads: Sequence[int]) -> list[int]:
    """ONNX spatial pads ``[b1..bn, e1..en]`` -> ``F.pad`` order (last axis first)."""
    n = len(pads) // 2
    out: list[int] = []
    for axis in reversed(range(n)):
        out += [int(pads[axis]), int(pads[axis + n])]
    return out


def _merge_batch(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``[B, N, C, *sp]`` -> ``[B * N, C, *sp]`` plus the split sizes."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), (x.shape[0], x.shape[1])


def _split_batch(y: Tensor, sizes: tuple[int, int]) -> Tensor:
    return y.reshape(sizes[0], sizes[1], *y.shape[1:])


def _symmetric(pads: Sequence[int]) -> tuple[int, ...] | None:
    n = len(pads) // 2
    begin, end = tuple(pads[:n]), tuple(pads[n:])
    return begin if begin == end else None


def conv(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """N-d convolution (1-3 spatial dims) with constant weights ``[M, C/group, *k]``."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    nsp = w.dim() - 2
    pads = _ints(node, "pads", [0] * (2 * nsp))
    xs, sizes = _merge_batch(x)
    padding = _symmetric(pads)
    if padding is None:
        xs = F.pad(xs, _torch_pads(pads))
        padding = (0,) * nsp
    y = _CONV[nsp](
        xs,
        w,
        bias,
        stride=_ints(node, "strides", [1] * nsp),
        padding=padding,
        dilation=_ints(node, "dilations", [1] * nsp),
        groups=int(node.attr("group", 1)),
    )
    return _split_batch(y, sizes)


def conv_transpose(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """N-d transposed convolution; pads and output_padding applied by explicit cropping."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    nsp = w.dim() - 2
    pads = _ints(node, "pads", [0] * (2 * nsp))
    out_pad = _ints(node, "output_padding", [0] * nsp)
    xs, sizes = _merge_batch(x)
    y = _CONV_T[nsp](
        xs,
        w,
        None,
        stride=_ints(node, "strides", [1] * nsp),
        groups=int(node.attr("group", 1)),
        dilation=_ints(node, "dilations", [1] * nsp),
    )
    crop = [-p for p in pads[:nsp]] + [o - p for o, p in zip(out_pad, pads[nsp:], strict=True)]
    if any(crop):
        y = F.pad(y, _torch_pads(crop))
    if bias is not None:
        y = y + bias.reshape(-1, *([1] * nsp))
    return _split_batch(y, sizes)


def _pool_out_size(size: int, k: int, s: int, d: int, pads: tuple[int, int], ceil: bool) -> int:
    """ONNX pool output length; in ceil mode a window may not start in the end padding."""
    num = size + pads[0] + pads[1] - ((k - 1) * d + 1)
    if not ceil:
        return num // s + 1
    out = -(-num // s) + 1
    if (out - 1) * s >= size + pads[0]:
        out -= 1
    return out


def _pool_geometry(node: Node, spatial: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Kernel, strides, dilations and full pads (with ceil-mode overhang) of a pool."""
    k = _ints(node, "kernel_shape", [])
    nsp = len(k)
    strides = _ints(node, "strides", [1] * nsp)
    dil = _ints(node, "dilations", [1] * nsp)
    pads = list(_ints(node, "pads", [0] * (2 * nsp)))
    ceil = bool(node.attr("ceil_mode", 0))
    extra = []
    for i in range(nsp):
        begin_end = (pads[i], pads[i + nsp])
        out = _pool_out_size(spatial[i], k[i], strides[i], dil[i], begin_end, ceil)
        need = (out - 1) * strides[i] + (k[i] - 1) * dil[i] + 1
        extra.append(max(0, need - (spatial[i] + sum(begin_end))))
    return k, strides, dil, tuple(pads), tuple(extra)


def max_pool(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Max pooling; padded positions never win (padding with ``-inf``)."""
    xs, sizes = _merge_batch(inputs[0])
    k, strides, dil, pads, extra = _pool_geometry(node, xs.shape[2:])
    nsp = len(k)
    full = list(pads[:nsp]) + [p + e for p, e in zip(pads[nsp:], extra, strict=True)]
    if any(full):
        xs = F.pad(xs, _torch_pads(full), value=float("-inf"))
    y = _MAXPOOL[nsp](xs, k, strides, 0, dil)
    return _split_batch(y, sizes)


def average_pool(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Average pooling with ONNX ``count_include_pad`` and ``ceil_mode`` semantics."""
    xs, sizes = _merge_batch(inputs[0])
    k, strides, _, pads, extra = _pool_geometry(node, xs.shape[2:])
    nsp = len(k)
    pool = _AVGPOOL[nsp]
    full = list(pads[:nsp]) + [p + e for p, e in zip(pads[nsp:], extra, strict=True)]
    if not any(full):
        return _split_batch(pool(xs, k, strides), sizes)
    window = math.prod(k)
    total = pool(F.pad(xs, _torch_pads(full)), k, strides) * window
    ones = torch.ones((1, 1, *xs.shape[2:]), dtype=xs.dtype, device=xs.device)
    if int(node.attr("count_include_pad", 0)):
        ones = F.pad(ones, _torch_pads(pads), value=1.0)
        full = [0] * nsp + list(extra)
    count = pool(F.pad(ones, _torch_pads(full)), k, strides) * window
    return _split_batch(total / count, sizes)


def global_average_pool(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Mean over all spatial axes (kept as size-1 axes)."""
    x = inputs[0]
    return x.mean(dim=tuple(range(3, x.dim())), keepdim=True)


def _reduce(fn: Callable[..., Tensor]) -> Callable[[Node, Sequence[Tensor]], Tensor]:
    def forward(node: Node, inputs: Sequence[Tensor]) -> Tensor:
        axes = tuple(int(a) + 1 for a in node.attrs["axes"])
        return fn(inputs[0], dim=axes, keepdim=bool(node.attr("keepdims", 1)))

    forward.__doc__ = f"``{fn.__name__}`` over the per-sample ``axes``."
    return forward


def softmax(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Softmax along one per-sample ``axis``."""
    return torch.softmax(inputs[0], dim=int(node.attrs["axis"]) + 1)


def layer_normalization(node: Node, inputs: Sequence[Tensor]) -> Tensor:
    """Normalise over the per-sample axes ``axis..`` then scale (and shift)."""
    x = inputs[0]
    dims = tuple(range(int(node.attrs["axis"]) + 1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=dims, keepdim=True)
    y = centred / torch.sqrt(var + float(node.attr("epsilon", 1e-5))) * inputs[1]
    if len(inputs) > 2:
        y = y + inputs[2]
    return y


NN_FORWARD: dict[str, ForwardFn] = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "GlobalAveragePool": global_average_pool,
    "ReduceMean": _reduce(torch.mean),
    "ReduceSum": _reduce(torch.sum),
    "Softmax": softmax,
    "LayerNormalization": layer_normalization,
}
