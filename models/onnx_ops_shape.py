"""Converters for ONNX shape and data-movement ops.

Everything is resolved statically (shapes are static once the batch is fixed to
1): Flatten/Squeeze/Unsqueeze/Reshape become Reshape with a fully resolved shape,
Split becomes one Slice per output, and Slice/Pad/Gather get resolved,
non-negative attributes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx

from .onnx_context import Attrs, ConvertContext, Converter


def _axis(ctx: ConvertContext, node: onnx.NodeProto, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(node, f"axis {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


def _ints_input(
    ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs, key: str, index: int, since: int
) -> list[int] | None:
    """An int list given as attribute (before opset ``since``) or constant input."""
    if ctx.opset < since or key in attrs:
        value = attrs.get(key)
        return None if value is None else [int(v) for v in value]
    if ctx.input(node, index) is None:
        return None
    return [int(v) for v in ctx.require_const(node, index, key).reshape(-1)]


def _resolve_reshape(
    ctx: ConvertContext, node: onnx.NodeProto, src: Sequence[int], target: Sequence[int], zero: bool
) -> tuple[int, ...]:
    dims = [int(d) for d in target]
    for i, d in enumerate(dims):
        if d == 0 and not zero:
            if i >= len(src):
                raise ctx.error(node, f"shape entry 0 at {i} has no input dim to copy")
            dims[i] = src[i]
    if dims.count(-1) > 1:
        raise ctx.error(node, f"shape {list(target)} has more than one -1")
    total = math.prod(src)
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or total % known:
            raise ctx.error(node, f"cannot reshape {list(src)} to {list(target)}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        raise ctx.error(node, f"cannot reshape {list(src)} to {list(target)}")
    return tuple(dims)


def convert_reshape(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Reshape with 0 and -1 entries resolved statically."""
    x = ctx.var(node, 0)
    if ctx.opset < 5:
        target = [int(v) for v in attrs.get("shape", [])]
    else:
        target = [int(v) for v in ctx.require_const(node, 1, "shape").reshape(-1)]
    zero = bool(attrs.get("allowzero", 0))
    shape = _resolve_reshape(ctx, node, ctx.shape(x), target, zero)
    ctx.emit(node, "Reshape", [x], {"shape": shape}, output=0)


def convert_flatten(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Flatten -> Reshape to ``[prod(s[:axis]), prod(s[axis:])]``."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    axis = int(attrs.get("axis", 1))
    axis = axis + len(s) if axis < 0 else axis
    shape = (math.prod(s[:axis]), math.prod(s[axis:]))
    ctx.emit(node, "Reshape", [x], {"shape": shape}, output=0)


def convert_squeeze(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Squeeze -> Reshape (all size-1 axes when no axes are given)."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    axes = _ints_input(ctx, node, attrs, "axes", 1, 13)
    if axes is None:
        drop = {i for i, d in enumerate(s) if d == 1}
    else:
        drop = {_axis(ctx, node, a, len(s)) for a in axes}
    if any(s[i] != 1 for i in drop):
        raise ctx.error(node, f"cannot squeeze axes {sorted(drop)} of shape {list(s)}")
    shape = tuple(d for i, d in enumerate(s) if i not in drop)
    ctx.emit(node, "Reshape", [x], {"shape": shape}, output=0)


def convert_unsqueeze(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Unsqueeze -> Reshape with size-1 axes inserted."""
    x = ctx.var(node, 0)
    s = list(ctx.shape(x))
    axes = _ints_input(ctx, node, attrs, "axes", 1, 13)
    if not axes:
        raise ctx.error(node, "Unsqueeze needs axes")
    rank = len(s) + len(axes)
    for a in sorted(_axis(ctx, node, a, rank) for a in axes):
        s.insert(a, 1)
    ctx.emit(node, "Reshape", [x], {"shape": tuple(s)}, output=0)


def convert_transpose(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Transpose (default: reverse the axes)."""
    x = ctx.var(node, 0)
    rank = len(ctx.shape(x))
    perm = tuple(int(p) % max(rank, 1) for p in attrs.get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise ctx.error(node, f"perm {list(perm)} is not a permutation of {rank} axes")
    if perm == tuple(range(rank)):
        ctx.bind(node.output[0], x)
        return
    ctx.emit(node, "Transpose", [x], {"perm": perm}, output=0)


def convert_concat(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Concat with a non-negative axis; empty constant pieces are dropped."""
    names = [ctx.var(node, i) for i in range(len(node.input)) if node.input[i]]
    rank = len(ctx.shape(names[0]))
    axis = _axis(ctx, node, int(attrs.get("axis", 1 if ctx.opset < 4 else 0)), rank)
    names = [n for n in names if not (ctx.is_constant(n) and ctx.b.constant(n).size == 0)]
    if len(names) == 1 and not ctx.is_constant(names[0]):
        ctx.bind(node.output[0], names[0])
        return
    ctx.emit(node, "Concat", names, {"axis": axis}, output=0)


def resolve_slice(
    dims: Sequence[int], starts: Sequence[int], ends: Sequence[int], steps: Sequence[int]
) -> tuple[list[int], list[int]]:
    """ONNX start/end clamping -> Python ``range`` bounds per sliced axis."""
    out_s, out_e = [], []
    for d, start, end, step in zip(dims, starts, ends, steps, strict=True):
        start = start + d if start < 0 else start
        end = end + d if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), d), min(max(end, 0), d)
            end = max(end, start)
        else:
            start, end = min(max(start, 0), d - 1), min(max(end, -1), d - 1)
            end = min(end, start)
        out_s.append(int(start))
        out_e.append(int(end))
    return out_s, out_e


def convert_slice(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Slice with constant starts/ends/axes/steps (attributes before opset 10)."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    starts = _ints_input(ctx, node, attrs, "starts", 1, 10) or []
    ends = _ints_input(ctx, node, attrs, "ends", 2, 10) or []
    axes = _ints_input(ctx, node, attrs, "axes", 3, 10)
    steps = _ints_input(ctx, node, attrs, "steps", 4, 10)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        raise ctx.error(node, "starts/ends/axes/steps are inconsistent")
    axes = [_axis(ctx, node, a, len(s)) for a in axes]
    st, en = resolve_slice([s[a] for a in axes], starts, ends, steps)
    if all(a == 0 and e == s[ax] and p == 1 for a, e, ax, p in zip(st, en, axes, steps)):
        ctx.bind(node.output[0], x)
        return
    attrs_out = {"starts": st, "ends": en, "axes": axes, "steps": [int(p) for p in steps]}
    ctx.emit(node, "Slice", [x], attrs_out, output=0)


def convert_gather(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Gather with constant indices (negative indices made non-negative)."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    axis = _axis(ctx, node, int(attrs.get("axis", 0)), len(s))
    idx = ctx.require_const(node, 1, "indices").astype(np.int64)
    if np.any(idx < -s[axis]) or np.any(idx >= s[axis]):
        raise ctx.error(node, f"indices out of range for axis {axis} of size {s[axis]}")
    idx = np.where(idx < 0, idx + s[axis], idx)
    ctx.emit(node, "Gather", [x, ctx.constant(node, idx, "indices")], {"axis": axis}, output=0)


def convert_split(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Split -> one Slice per output."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    axis = _axis(ctx, node, int(attrs.get("axis", 0)), len(s))
    sizes = _ints_input(ctx, node, attrs, "split", 1, 13)
    n = len(node.output)
    if sizes is None:
        chunk = -(-s[axis] // n)
        sizes = [min(chunk, s[axis] - i * chunk) for i in range(n)]
    if len(sizes) != n or sum(sizes) != s[axis] or min(sizes) < 0:
        raise ctx.error(node, f"split sizes {sizes} do not match axis {axis} of {list(s)}")
    start = 0
    for i, size in enumerate(sizes):
        if node.output[i]:
            slice_attrs = {"starts": [start], "ends": [start + size], "axes": [axis], "steps": [1]}
            ctx.emit(node, "Slice", [x], slice_attrs, output=i)
        start += size


def convert_pad(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Constant-mode Pad with constant pads (and value, and axes from opset 18)."""
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise ctx.unsupported(node, f"mode={mode!r} (only 'constant')")
    x = ctx.var(node, 0)
    rank = len(ctx.shape(x))
    pads = _ints_input(ctx, node, attrs, "pads", 1, 11) or [0] * (2 * rank)
    value = float(attrs.get("value", 0.0))
    if ctx.opset >= 11 and ctx.input(node, 2) is not None:
        value = float(ctx.require_const(node, 2, "constant_value").reshape(-1)[0])
    axes = _ints_input(ctx, node, attrs, "axes", 3, 18)
    if axes is not None:
        full = [0] * (2 * rank)
        for j, a in enumerate(_axis(ctx, node, a, rank) for a in axes):
            full[a], full[a + rank] = pads[j], pads[j + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise ctx.error(node, f"pads {pads} do not match rank {rank}")
    if not any(pads):
        ctx.bind(node.output[0], x)
        return
    ctx.emit(node, "Pad", [x], {"pads": pads, "value": value}, output=0)


def convert_expand(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Expand to the static broadcast of the input shape and the target shape."""
    x = ctx.var(node, 0)
    target = [int(v) for v in ctx.require_const(node, 1, "shape").reshape(-1)]
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(ctx.shape(x), tuple(target)))
    except ValueError as exc:
        raise ctx.error(node, f"cannot expand {list(ctx.shape(x))} to {target}") from exc
    if shape == ctx.shape(x):
        ctx.bind(node.output[0], x)
        return
    ctx.emit(node, "Expand", [x], {"shape": shape}, output=0)


SHAPE_CONVERTERS: dict[str, Converter] = {
    "Reshape": Converter(convert_reshape, frozenset({"allowzero", "shape"})),
    "Flatten": Converter(convert_flatten, frozenset({"axis"})),
    "Squeeze": Converter(convert_squeeze, frozenset({"axes"})),
    "Unsqueeze": Converter(convert_unsqueeze, frozenset({"axes"})),
    "Transpose": Converter(convert_transpose, frozenset({"perm"})),
    "Concat": Converter(convert_concat, frozenset({"axis"})),
    "Slice": Converter(convert_slice, frozenset({"starts", "ends", "axes"})),
    "Gather": Converter(convert_gather, frozenset({"axis"})),
    "Split": Converter(convert_split, frozenset({"axis", "split", "num_outputs"})),
    "Pad": Converter(convert_pad, frozenset({"mode", "pads", "value"})),
    "Expand": Converter(convert_expand),
}
