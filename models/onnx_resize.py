"""Resize / Upsample converters, resolved statically per axis.

Nearest mode: the ONNX coordinate transform and rounding give a constant index
map per axis; when every map is "repeat each element k times" the result is a
canonical ``Resize`` node (integer scales), otherwise one ``Gather`` per resized
axis. Linear mode: a constant interpolation matrix per axis, applied as a
``Linear`` over that axis (moved last by ``Transpose`` when needed). Both are
exact for every coordinate transformation mode supported below.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .onnx_context import Attrs, ConvertContext, Converter

_COORD_MODES = {
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
}
_NEAREST_MODES = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple"}


def _source_coords(mode: str, scale: float, in_len: int, out_len: int) -> np.ndarray:
    """Input coordinate of every output position along one axis."""
    i = np.arange(out_len, dtype=np.float64)
    if mode == "asymmetric":
        return i / scale
    if mode == "align_corners":
        return np.zeros(out_len) if out_len == 1 else i * (in_len - 1) / (out_len - 1)
    if mode == "pytorch_half_pixel" and out_len == 1:
        return np.zeros(out_len)
    x = (i + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        x = x + in_len / 2 * (1 - adjustment)
    return x


def _nearest_index(x: np.ndarray, mode: str, scale: float, in_len: int) -> np.ndarray:
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    rounded = {
        "round_prefer_floor": np.ceil(x - 0.5),
        "round_prefer_ceil": np.floor(x + 0.5),
        "floor": np.floor(x),
        "ceil": np.ceil(x),
    }[mode]
    return np.clip(rounded, 0, in_len - 1).astype(np.int64)


def _linear_matrix(x: np.ndarray, in_len: int) -> np.ndarray:
    """``[in_len, out_len]`` interpolation weights (edge values beyond the borders)."""
    x = np.clip(x, 0, in_len - 1)
    x0 = np.floor(x).astype(np.int64)
    x1 = np.minimum(x0 + 1, in_len - 1)
    frac = x - x0
    m = np.zeros((in_len, len(x)))
    cols = np.arange(len(x))
    np.add.at(m, (x0, cols), 1.0 - frac)
    np.add.at(m, (x1, cols), frac)
    return m


def _output_geometry(
    ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs, shape: tuple[int, ...]
) -> tuple[list[float], list[int]]:
    """Per-axis scales and output lengths (from scales or sizes, opset-aware)."""
    rank = len(shape)
    axes = [int(a) % rank for a in attrs.get("axes", range(rank))]
    if node.op_type == "Upsample" and ctx.opset < 9:
        raw, sizes = [float(s) for s in attrs.get("scales", [])], None
    else:
        scales_idx = 1 if node.op_type == "Upsample" or ctx.opset < 11 else 2
        c = ctx.const(node, scales_idx)
        raw = None if c is None or c.size == 0 else [float(v) for v in c.reshape(-1)]
        s = ctx.const(node, 3) if node.op_type == "Resize" and ctx.opset >= 11 else None
        sizes = None if s is None or s.size == 0 else [int(v) for v in s.reshape(-1)]
        for i in range(1, len(node.input)):
            if node.input[i] and ctx.const(node, i) is None:
                raise ctx.unsupported(node, f"input {i} must be a constant")
    scales, lengths = [1.0] * rank, list(shape)
    if sizes is not None:
        for a, n in zip(axes, sizes, strict=True):
            scales[a], lengths[a] = n / shape[a], n
    elif raw is not None:
        for a, sc in zip(axes, raw, strict=True):
            scales[a], lengths[a] = sc, int(math.floor(shape[a] * sc))
    else:
        raise ctx.error(node, "needs scales or sizes")
    return scales, lengths


def _modes(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> tuple[str, str, str]:
    mode = str(attrs.get("mode", "nearest"))
    mode = "linear" if mode == "bilinear" else mode
    legacy = node.op_type == "Upsample" or ctx.opset < 11
    coord = (
        "asymmetric" if legacy else str(attrs.get("coordinate_transformation_mode", "half_pixel"))
    )
    nearest = "simple" if legacy else str(attrs.get("nearest_mode", "round_prefer_floor"))
    if mode not in ("nearest", "linear"):
        raise ctx.unsupported(node, f"mode={mode!r} (only 'nearest' and 'linear')")
    if coord not in _COORD_MODES or nearest not in _NEAREST_MODES:
        raise ctx.unsupported(
            node, f"coordinate_transformation_mode={coord!r}, nearest_mode={nearest!r}"
        )
    if (
        int(attrs.get("antialias", 0))
        or attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch"
    ):
        raise ctx.unsupported(node, "antialias or keep_aspect_ratio_policy other than 'stretch'")
    return mode, coord, nearest


def convert_resize(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Resize (opset 10+) and Upsample, nearest or linear."""
    x = ctx.var(node, 0)
    shape = ctx.shape(x)
    mode, coord, nearest = _modes(ctx, node, attrs)
    scales, lengths = _output_geometry(ctx, node, attrs, shape)
    coords = [_source_coords(coord, scales[a], shape[a], lengths[a]) for a in range(len(shape))]
    if mode == "nearest":
        maps = [_nearest_index(coords[a], nearest, scales[a], shape[a]) for a in range(len(shape))]
        _emit_nearest(ctx, node, x, maps)
    else:
        mats = [_linear_matrix(coords[a], shape[a]) for a in range(len(shape))]
        _emit_linear(ctx, node, x, mats)


def _repeat_factors(maps: list[np.ndarray], shape: tuple[int, ...]) -> list[int] | None:
    """Integer ``k`` per axis when every map repeats each element ``k`` times, else None."""
    factors = []
    for size, m in zip(shape, maps, strict=True):
        k = len(m) // size
        if k < 1 or len(m) != k * size or not np.array_equal(m, np.arange(len(m)) // k):
            return None
        factors.append(k)
    return factors


def _emit_nearest(
    ctx: ConvertContext, node: onnx.NodeProto, x: str, maps: list[np.ndarray]
) -> None:
    shape = ctx.shape(x)
    changed = [a for a, m in enumerate(maps) if not np.array_equal(m, np.arange(shape[a]))]
    if not changed:
        ctx.bind(node.output[0], x)
        return
    factors = _repeat_factors(maps, shape)
    if factors is not None:
        scales = [float(f) for f in factors]
        ctx.emit(node, "Resize", [x], {"scales": scales, "mode": "nearest"}, output=0)
        return
    for k, a in enumerate(changed):
        idx = ctx.constant(node, maps[a], f"index{a}")
        last = k == len(changed) - 1
        x = ctx.emit(node, "Gather", [x, idx], {"axis": a}, output=0 if last else None)


def _emit_linear(ctx: ConvertContext, node: onnx.NodeProto, x: str, mats: list[np.ndarray]) -> None:
    shape = ctx.shape(x)
    changed = [a for a, m in enumerate(mats) if not np.array_equal(m, np.eye(shape[a]))]
    if not changed:
        ctx.bind(node.output[0], x)
        return
    rank = len(shape)
    for k, a in enumerate(changed):
        w = ctx.constant(node, mats[a], f"interp{a}")
        last = k == len(changed) - 1
        if a == rank - 1:
            x = ctx.emit(node, "Linear", [x, w], output=0 if last else None)
            continue
        perm = list(range(rank))
        perm[a], perm[-1] = perm[-1], perm[a]
        moved = ctx.emit(node, "Transpose", [x], {"perm": perm})
        y = ctx.emit(node, "Linear", [moved, w])
        x = ctx.emit(node, "Transpose", [y], {"perm": perm}, output=0 if last else None)


_RESIZE_ATTRS = frozenset(
    {
        "mode",
        "coordinate_transformation_mode",
        "nearest_mode",
        "cubic_coeff_a",
        "exclude_outside",
        "extrapolation_value",
        "antialias",
        "axes",
        "keep_aspect_ratio_policy",
        "scales",
    }
)

RESIZE_CONVERTERS: dict[str, Converter] = {
    "Resize": Converter(convert_resize, _RESIZE_ATTRS),
    "Upsample": Converter(convert_resize, frozenset({"mode", "scales"})),
}
