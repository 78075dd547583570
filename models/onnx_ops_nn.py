"""Converters for ONNX convolutions, pooling, normalisations, Softmax and reductions.

``auto_pad`` is resolved into explicit pads, BatchNormalization becomes ``Mul``
and ``Add`` by per-channel constants (folded into a preceding Linear/Conv by
``models.passes``), and opset < 13 Softmax gets its axis-flattening semantics
through Reshapes around a single-axis Softmax.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .onnx_context import Attrs, ConvertContext, Converter

_POOL_ATTRS = {"auto_pad", "ceil_mode", "kernel_shape", "pads", "strides", "dilations"}


def _same_pads(
    ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs, kernel: list[int], spatial: list[int]
) -> list[int]:
    """Explicit ONNX pads ``[b1..bn, e1..en]`` (``auto_pad`` resolved)."""
    n = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attrs.get("pads", [0] * (2 * n))]
        if len(pads) != 2 * n:
            raise ctx.error(node, f"pads {pads} do not match {n} spatial dims")
        return pads
    if auto == "VALID":
        return [0] * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.unsupported(node, f"auto_pad={auto!r}")
    strides = [int(s) for s in attrs.get("strides", [1] * n)]
    dil = [int(d) for d in attrs.get("dilations", [1] * n)]
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dil, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else large)
        end.append(large if auto == "SAME_UPPER" else small)
    return begin + end


def _conv_common(
    ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs
) -> tuple[str, np.ndarray, list[str], dict[str, object]]:
    x = ctx.var(node, 0)
    w = ctx.require_const(node, 1, "weights")
    nsp = w.ndim - 2
    if nsp not in (1, 2, 3) or len(ctx.shape(x)) != nsp + 2:
        raise ctx.unsupported(node, f"{nsp}-d convolution of a rank-{len(ctx.shape(x))} input")
    kernel = [int(k) for k in attrs.get("kernel_shape", w.shape[2:])]
    if tuple(kernel) != tuple(w.shape[2:]):
        raise ctx.error(node, f"kernel_shape {kernel} does not match weights {list(w.shape)}")
    inputs = [x, ctx.var(node, 1)]
    if ctx.input(node, 2) is not None:
        ctx.require_const(node, 2, "bias")
        inputs.append(ctx.var(node, 2))
    out = {
        "strides": [int(s) for s in attrs.get("strides", [1] * nsp)],
        "dilations": [int(d) for d in attrs.get("dilations", [1] * nsp)],
        "group": int(attrs.get("group", 1)),
    }
    return x, w, inputs, out


def convert_conv(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Conv with constant weights (and bias)."""
    x, w, inputs, out = _conv_common(ctx, node, attrs)
    spatial = list(ctx.shape(x)[2:])
    out["pads"] = _same_pads(ctx, node, attrs, list(w.shape[2:]), spatial)
    ctx.emit(node, "Conv", inputs, out, output=0)


def convert_conv_transpose(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """ConvTranspose with constant weights; ``output_shape``/``auto_pad`` -> explicit pads."""
    x, w, inputs, out = _conv_common(ctx, node, attrs)
    nsp = w.ndim - 2
    spatial = list(ctx.shape(x)[2:])
    out_pad = [int(p) for p in attrs.get("output_padding", [0] * nsp)]
    auto = attrs.get("auto_pad", "NOTSET")
    target = (
        [int(d) for d in attrs.get("output_shape", [])][-nsp:] if "output_shape" in attrs else None
    )
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [size * s for size, s in zip(spatial, out["strides"], strict=True)]
    if target is None:
        pads = _same_pads(ctx, node, {**attrs, "auto_pad": "NOTSET"}, list(w.shape[2:]), spatial)
    else:
        begin, end = [], []
        for i in range(nsp):
            span = (w.shape[2 + i] - 1) * out["dilations"][i] + 1
            total = out["strides"][i] * (spatial[i] - 1) + out_pad[i] + span - target[i]
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        pads = begin + end
    out["pads"], out["output_padding"] = pads, out_pad
    ctx.emit(node, "ConvTranspose", inputs, out, output=0)


def _pool_attrs(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> dict[str, object]:
    x = ctx.var(node, 0)
    kernel = [int(k) for k in attrs["kernel_shape"]]
    n = len(kernel)
    if len(ctx.shape(x)) != n + 2 or n not in (1, 2, 3):
        raise ctx.unsupported(node, f"{n}-d pooling of a rank-{len(ctx.shape(x))} input")
    spatial = list(ctx.shape(x)[2:])
    return {
        "kernel_shape": kernel,
        "strides": [int(s) for s in attrs.get("strides", [1] * n)],
        "pads": _same_pads(ctx, node, attrs, kernel, spatial),
        "ceil_mode": int(attrs.get("ceil_mode", 0)),
    }


def convert_max_pool(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """MaxPool (the Indices output is unsupported)."""
    out = _pool_attrs(ctx, node, attrs)
    out["dilations"] = [int(d) for d in attrs.get("dilations", [1] * len(out["kernel_shape"]))]
    ctx.emit(node, "MaxPool", [ctx.var(node, 0)], out, output=0)


def convert_average_pool(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """AveragePool (dilations other than 1 are unsupported)."""
    if any(int(d) != 1 for d in attrs.get("dilations", [])):
        raise ctx.unsupported(node, "dilations other than 1")
    out = _pool_attrs(ctx, node, attrs)
    out["count_include_pad"] = int(attrs.get("count_include_pad", 0))
    ctx.emit(node, "AveragePool", [ctx.var(node, 0)], out, output=0)


def convert_global_average_pool(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """GlobalAveragePool."""
    x = ctx.var(node, 0)
    if len(ctx.shape(x)) < 3:
        raise ctx.error(node, f"input of rank {len(ctx.shape(x))} has no spatial axes")
    ctx.emit(node, "GlobalAveragePool", [x], output=0)


def convert_batch_norm(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Inference BatchNormalization -> ``Mul`` and ``Add`` by per-channel constants."""
    if int(attrs.get("training_mode", 0)) or not int(attrs.get("spatial", 1)):
        raise ctx.unsupported(node, "training_mode=1 or spatial=0")
    x = ctx.var(node, 0)
    scale, bias, mean, var = (
        ctx.require_const(node, i, what).astype(np.float64)
        for i, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))
    )
    rank = len(ctx.shape(x))
    if rank < 2:
        raise ctx.error(node, "input needs a channel axis")
    a = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    c = bias - mean * a
    per_channel = (-1,) + (1,) * (rank - 2)
    a_name = ctx.constant(node, a.reshape(per_channel), "scale")
    c_name = ctx.constant(node, c.reshape(per_channel), "shift")
    y = ctx.emit(node, "Mul", [x, a_name])
    ctx.emit(node, "Add", [y, c_name], output=0)


def convert_layer_norm(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """LayerNormalization with constant scale/bias (Mean/InvStdDev outputs unsupported)."""
    x = ctx.var(node, 0)
    rank = len(ctx.shape(x))
    axis = int(attrs.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    inputs = [x, ctx.var(node, 1)]
    ctx.require_const(node, 1, "scale")
    if ctx.input(node, 2) is not None:
        ctx.require_const(node, 2, "bias")
        inputs.append(ctx.var(node, 2))
    out = {"axis": axis, "epsilon": float(attrs.get("epsilon", 1e-5))}
    ctx.emit(node, "LayerNormalization", inputs, out, output=0)


def convert_softmax(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Softmax; before opset 13 it normalises over all axes from ``axis`` on."""
    x = ctx.var(node, 0)
    s = ctx.shape(x)
    legacy = ctx.opset < 13
    axis = int(attrs.get("axis", 1 if legacy else -1))
    axis = axis + len(s) if axis < 0 else axis
    if not legacy or axis >= len(s) - 1:
        ctx.emit(node, "Softmax", [x], {"axis": axis}, output=0)
        return
    flat = ctx.emit(node, "Reshape", [x], {"shape": (*s[:axis], math.prod(s[axis:]))})
    y = ctx.emit(node, "Softmax", [flat], {"axis": axis})
    ctx.emit(node, "Reshape", [y], {"shape": s}, output=0)


def _reduce(op: str, axes_input_since: int) -> Converter:
    def convert(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
        x = ctx.var(node, 0)
        rank = len(ctx.shape(x))
        if ctx.opset < axes_input_since or "axes" in attrs:
            axes = [int(a) for a in attrs.get("axes", [])]
        elif ctx.input(node, 1) is not None:
            axes = [int(a) for a in ctx.require_const(node, 1, "axes").reshape(-1)]
        else:
            axes = []
        if not axes and int(attrs.get("noop_with_empty_axes", 0)):
            ctx.bind(node.output[0], x)
            return
        norm = sorted({a % rank for a in axes} if axes else set(range(rank)))
        keep = int(attrs.get("keepdims", 1))
        ctx.emit(node, op, [x], {"axes": norm, "keepdims": keep}, output=0)

    return Converter(convert, frozenset({"axes", "keepdims", "noop_with_empty_axes"}))


NN_CONVERTERS: dict[str, Converter] = {
    "Conv": Converter(
        convert_conv,
        frozenset({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    ),
    "ConvTranspose": Converter(
        convert_conv_transpose,
        frozenset(
            {
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "output_padding",
                "output_shape",
                "pads",
                "strides",
            }
        ),
    ),
    "MaxPool": Converter(convert_max_pool, frozenset(_POOL_ATTRS | {"storage_order"})),
    "AveragePool": Converter(convert_average_pool, frozenset(_POOL_ATTRS | {"count_include_pad"})),
    "GlobalAveragePool": Converter(convert_global_average_pool),
    "BatchNormalization": Converter(
        convert_batch_norm,
        frozenset(
            {"epsilon", "momentum", "spatial", "training_mode", "is_test", "consumed_inputs"}
        ),
    ),
    "LayerNormalization": Converter(
        convert_layer_norm, frozenset({"axis", "epsilon", "stash_type"})
    ),
    "Softmax": Converter(convert_softmax, frozenset({"axis"})),
    "ReduceMean": _reduce("ReduceMean", 18),
    "ReduceSum": _reduce("ReduceSum", 13),
}
