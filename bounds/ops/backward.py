"""Hand-written backward steps of cheap affine ops.

The generic step (``bounds.crown``) derives an affine op's transpose with
``torch.func.vjp`` vmapped over the objective rows; for pure data movement and
sums the functorch overhead dominates (about 0.4 of 0.6 s of CROWN on the vit
benchmark model). These functions do the same in one tensor operation each.
Every one is checked against the derived step on the registry's examples
(``test_hand_written_backward_equals_the_derived_step`` in
``tests/bounds/test_ops_soundness.py``).

A step maps the coefficients ``a`` (``[S, B, *out]``) of the objective with respect
to the op's output to coefficients with respect to each *perturbed* input (in slot
order) and the bias contributed by constant inputs (``[S, B]``, or None for none).
``shapes[i]`` is input ``i``'s per-sample shape; ``consts[i]`` its constant tensor
(unbatched) or None when it is perturbed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from models.graph import Node

from ..types import BoundsError

Shape = tuple[int, ...]
BackwardFn = Callable[
    [Node, Tensor, Sequence[Shape], Sequence["Tensor | None"]], tuple[list[Tensor], "Tensor | None"]
]


def sum_to(a: Tensor, shape: Shape) -> Tensor:
    """Sum ``a`` (``[S, B, *out]``) down to ``[S, B, *shape]`` (undo broadcasting)."""
    lead = a.dim() - 2 - len(shape)
    if lead > 0:
        a = a.sum(dim=tuple(range(2, 2 + lead)))
    dims = tuple(2 + i for i, d in enumerate(shape) if d == 1 and a.shape[2 + i] != 1)
    if dims:
        a = a.sum(dim=dims, keepdim=True)
    return a


def _reshape(node: Node, a: Tensor, shapes: Sequence[Shape], consts) -> tuple[list[Tensor], None]:
    return [a.reshape(a.shape[:2] + tuple(shapes[0]))], None


def _transpose(node: Node, a: Tensor, shapes: Sequence[Shape], consts) -> tuple[list[Tensor], None]:
    perm = [int(p) for p in node.attrs["perm"]]
    inverse = sorted(range(len(perm)), key=perm.__getitem__)
    return [a.permute(0, 1, *(2 + i for i in inverse))], None


def _neg(node: Node, a: Tensor, shapes: Sequence[Shape], consts) -> tuple[list[Tensor], None]:
    return [-a], None


def _spread(node: Node, a: Tensor, shape: Shape) -> Tensor:
    """``a`` broadcast back over the reduced ``axes`` of an input of ``shape``."""
    if not node.attr("keepdims", 1):
        for ax in sorted(int(x) for x in node.attrs["axes"]):
            a = a.unsqueeze(2 + ax)
    return a.expand(a.shape[:2] + tuple(shape))


def _reduce_sum(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts
) -> tuple[list[Tensor], None]:
    return [_spread(node, a, shapes[0])], None


def _reduce_mean(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts
) -> tuple[list[Tensor], None]:
    count = math.prod(shapes[0][int(x)] for x in node.attrs["axes"])
    return [_spread(node, a, shapes[0]) / count], None


def _route(
    parts: Sequence[Tensor], consts: Sequence[Tensor | None]
) -> tuple[list[Tensor], Tensor | None]:
    """Per input slot, the coefficients ``parts[i]``: kept for perturbed inputs, turned
    into the bias ``sum(parts[i] * const)`` for constant ones."""
    grads, bias = [], None
    for part, const in zip(parts, consts):
        if const is None:
            grads.append(part)
        else:
            term = (part * const).flatten(2).sum(-1)
            bias = term if bias is None else bias + term
    return grads, bias


def _add(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts: Sequence[Tensor | None]
) -> tuple[list[Tensor], Tensor | None]:
    parts = [a if c is not None else sum_to(a, tuple(s)) for s, c in zip(shapes, consts)]
    return _route(parts, consts)


def _gather(node: Node, a: Tensor, shapes: Sequence[Shape], consts) -> tuple[list[Tensor], None]:
    index = consts[1]
    dim = 2 + int(node.attrs["axis"])
    flat = a.reshape(a.shape[:dim] + (-1,) + a.shape[dim + index.dim() :])
    full = a.new_zeros(a.shape[:2] + tuple(shapes[0]))
    return [full.index_add(dim, index.reshape(-1).to(a.device, torch.long), flat)], None


def _concat(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts: Sequence[Tensor | None]
) -> tuple[list[Tensor], Tensor | None]:
    axis = int(node.attrs["axis"])
    return _route(a.split([int(shape[axis]) for shape in shapes], dim=2 + axis), consts)


def _slice(node: Node, a: Tensor, shapes: Sequence[Shape], consts) -> tuple[list[Tensor], None]:
    starts = node.attrs["starts"]
    axes = node.attr("axes", range(len(starts)))
    steps = node.attr("steps", (1,) * len(starts))
    # shapes before each of the (sequentially applied) slices, and the kept indices
    shape, done = list(shapes[0]), []
    for start, end, axis, step in zip(starts, node.attrs["ends"], axes, steps, strict=True):
        kept = torch.arange(int(start), int(end), int(step), device=a.device)
        done.append((2 + int(axis), kept, tuple(shape)))
        shape[int(axis)] = kept.numel()
    for dim, kept, before in reversed(done):
        a = a.new_zeros(a.shape[:2] + before).index_add(dim, kept, a)
    return [a], None


def _mul(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts: Sequence[Tensor | None]
) -> tuple[list[Tensor], None]:
    """``x * c`` with one constant operand (a product of two perturbed ones is not affine)."""
    (c,) = [t for t in consts if t is not None]
    (shape,) = [s for s, t in zip(shapes, consts) if t is None]
    return [sum_to(a * c, tuple(shape))], None


_CONV_INPUT = {
    1: torch.nn.grad.conv1d_input,
    2: torch.nn.grad.conv2d_input,
    3: torch.nn.grad.conv3d_input,
}


def _patch_transpose(a: Tensor, w: Tensor, size: Shape) -> Tensor:
    """Transpose of a 2-d convolution whose stride equals its kernel (non-overlapping
    patches, e.g. a ViT patch embedding): one matrix product, ``[R, M, Ho, Wo]`` ->
    ``[R, C, *size]`` (positions no patch covers get 0)."""
    R, _, Ho, Wo = a.shape
    C, kh, kw = w.shape[1:]
    g = torch.einsum("rmhw,mcij->rchiwj", a, w).reshape(R, C, Ho * kh, Wo * kw)
    if (Ho * kh, Wo * kw) == tuple(size):
        return g
    return torch.nn.functional.pad(g, (0, size[1] - Wo * kw, 0, size[0] - Ho * kh))


def _conv(
    node: Node, a: Tensor, shapes: Sequence[Shape], consts: Sequence[Tensor | None]
) -> tuple[list[Tensor], Tensor | None]:
    """Transpose of ``Conv`` (constant weight, optional constant bias): one transposed
    convolution over all rows at once instead of a vmapped vjp (about 1.5 s of 1.8 s of
    CROWN on the vit benchmark model)."""
    w = consts[1]
    if w is None:
        raise BoundsError(f"Conv {node.name!r}: a perturbed weight is not affine")
    nsp = w.dim() - 2
    in_shape = tuple(shapes[0])
    pads = [int(p) for p in node.attr("pads", None) or (0,) * (2 * nsp)]
    padded = tuple(s + pads[i] + pads[i + nsp] for i, s in enumerate(in_shape[-nsp:]))
    flat = a.reshape((-1,) + tuple(a.shape[-(nsp + 1) :]))
    stride = tuple(int(s) for s in node.attr("strides", None) or (1,) * nsp)
    dilation = tuple(int(d) for d in node.attr("dilations", None) or (1,) * nsp)
    groups = int(node.attr("group", 1))
    if nsp == 2 and groups == 1 and stride == tuple(w.shape[2:]) and dilation == (1, 1):
        g = _patch_transpose(flat, w, padded)
    else:
        g = _CONV_INPUT[nsp](
            (flat.shape[0], in_shape[-nsp - 1]) + padded,
            w,
            flat,
            stride=stride,
            dilation=dilation,
            groups=groups,
        )
    for i in range(nsp):
        g = g.narrow(2 + i, pads[i], in_shape[-nsp + i])
    grads = [g.reshape(a.shape[:2] + in_shape)]
    bias = None
    if len(consts) > 2 and consts[2] is not None:
        per_channel = a.flatten(-nsp).sum(-1)  # [S, B, *lead, M]
        bias = (per_channel * consts[2]).flatten(2).sum(-1)
    return grads, bias


BACKWARD: dict[str, BackwardFn] = {
    "Conv": _conv,
    "Mul": _mul,
    "Gather": _gather,
    "Concat": _concat,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Neg": _neg,
    "ReduceSum": _reduce_sum,
    "ReduceMean": _reduce_mean,
    "Add": _add,
}
