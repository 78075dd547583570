"""Converters for ONNX arithmetic, activations and value-preserving ops.

Canonical forms produced here (see ``models.ops``): Gemm and MatMul with a
constant 2-D right operand -> Linear (W as ``[K, N]``); Sub -> Add of a negation;
Div -> Mul by a reciprocal; Pow/Clip constants -> attributes; Identity, Dropout
and float->float Cast disappear; Shape/Size of a variable become constants.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .onnx_context import Attrs, ConvertContext, Converter

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}


def _rank(ctx: ConvertContext, *values: str) -> int:
    return max(len(ctx.shape(v)) for v in values)


def _binary(ctx: ConvertContext, node: onnx.NodeProto, op: str, a: str, b: str) -> None:
    rank = _rank(ctx, a, b)
    a, b = ctx.align_rank(node, a, rank), ctx.align_rank(node, b, rank)
    ctx.emit(node, op, [a, b], output=0)


def convert_add(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Add (broadcasting)."""
    b = ctx.var(node, 1)
    _binary(ctx, node, "Add", ctx.var(node, 0), b)


def convert_mul(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Mul (broadcasting; constants or two variables)."""
    b = ctx.var(node, 1)
    _binary(ctx, node, "Mul", ctx.var(node, 0), b)


def convert_sub(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """``a - b`` -> ``Add(a, -b)`` (negated constant) or ``Add(a, Neg(b))``."""
    a, b = ctx.var(node, 0), ctx.var(node, 1)
    if ctx.is_constant(b):
        neg = ctx.constant(node, -ctx.b.constant(b), "neg")
    else:
        neg = ctx.emit(node, "Neg", [b])
    _binary(ctx, node, "Add", a, neg)


def convert_div(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """``a / c`` -> ``Mul(a, 1/c)``; ``a / b`` -> ``Mul(a, Reciprocal(b))``."""
    a, b = ctx.var(node, 0), ctx.var(node, 1)
    if ctx.is_constant(b):
        c = ctx.b.constant(b)
        if c.dtype.kind != "f":
            raise ctx.unsupported(node, "integer division of a variable")
        _binary(ctx, node, "Mul", a, ctx.constant(node, 1.0 / c.astype(np.float64), "recip"))
        return
    ones = ctx.const(node, 0)
    if ones is not None and ones.size == 1 and ones.ndim <= len(ctx.shape(b)) and ones.item() == 1:
        ctx.emit(node, "Reciprocal", [b], output=0)
        return
    _binary(ctx, node, "Mul", a, ctx.emit(node, "Reciprocal", [b]))


def _linear_bias(c: np.ndarray | None, beta: float, n: int) -> np.ndarray | None:
    """Gemm's ``beta * C`` as a ``[N]`` bias when it is constant along rows."""
    if c is None or beta == 0.0 or c.size == 0:
        return None
    if c.ndim == 2 and c.shape[0] != 1:
        return None
    scaled = c if beta == 1.0 else beta * c.astype(np.float64)
    return np.array(np.broadcast_to(scaled.reshape(-1), (n,)))


def convert_gemm(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """``alpha * A' @ B' + beta * C`` -> Linear (B constant) or MatMul + Mul + Add."""
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    a = ctx.var(node, 0)
    if attrs.get("transA"):
        a = _transpose2d(ctx, node, a)
    bmat = ctx.const(node, 1)
    if bmat is None:
        _gemm_variable_b(ctx, node, attrs, a, alpha, beta)
        return
    w = bmat.T if attrs.get("transB") else bmat
    w = w if alpha == 1.0 else w * np.float64(alpha)
    w_name = ctx.constant(node, w, "W")
    c = ctx.const(node, 2)
    bias = _linear_bias(c, beta, w.shape[1])
    if bias is not None:
        ctx.emit(node, "Linear", [a, w_name, ctx.constant(node, bias, "b")], output=0)
        return
    c_name = ctx.input(node, 2)
    if c_name is None or beta == 0.0:
        ctx.emit(node, "Linear", [a, w_name], output=0)
        return
    y = ctx.emit(node, "Linear", [a, w_name])
    _binary(ctx, node, "Add", y, _scaled(ctx, node, c_name, beta))


def _transpose2d(ctx: ConvertContext, node: onnx.NodeProto, value: str) -> str:
    if ctx.is_constant(value):
        return ctx.constant(node, ctx.b.constant(value).T, "T")
    return ctx.emit(node, "Transpose", [value], {"perm": (1, 0)})


def _scaled(ctx: ConvertContext, node: onnx.NodeProto, value: str, factor: float) -> str:
    if factor == 1.0:
        return value
    if ctx.is_constant(value):
        c = ctx.b.constant(value)
        return ctx.constant(node, c * np.float64(factor), "scaled")
    return ctx.emit(node, "Mul", [value, ctx.constant(node, np.float32(factor), "factor")])


def _gemm_variable_b(
    ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs, a: str, alpha: float, beta: float
) -> None:
    b = ctx.var(node, 1)
    if attrs.get("transB"):
        b = _transpose2d(ctx, node, b)
    y = _scaled(ctx, node, ctx.emit(node, "MatMul", [a, b]), alpha)
    c = ctx.input(node, 2)
    if c is None or beta == 0.0:
        ctx.bind(node.output[0], y)
        return
    _binary(ctx, node, "Add", y, _scaled(ctx, node, c, beta))


def convert_matmul(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """MatMul: Linear for a constant 2-D right operand, else MatMul (ranks aligned)."""
    a, b = ctx.var(node, 0), ctx.var(node, 1)
    sa, sb = ctx.shape(a), ctx.shape(b)
    if ctx.is_constant(b) and len(sb) == 2 and not ctx.is_constant(a):
        ctx.emit(node, "Linear", [a, b], output=0)
        return
    out_shape = _matmul_shape(sa, sb)
    if len(sa) == 1:
        a = ctx.reshape(node, a, (1, sa[0]), "row")
    if len(sb) == 1:
        b = ctx.reshape(node, b, (sb[0], 1), "col")
    rank = _rank(ctx, a, b)
    a, b = ctx.align_rank(node, a, rank), ctx.align_rank(node, b, rank)
    if len(sa) > 1 and len(sb) > 1:
        ctx.emit(node, "MatMul", [a, b], output=0)
        return
    y = ctx.emit(node, "MatMul", [a, b])
    ctx.emit(node, "Reshape", [y], {"shape": out_shape}, output=0)


def _matmul_shape(sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple[int, ...]:
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    rows = sa[-2:-1]
    cols = sb[-1:] if len(sb) > 1 else ()
    return tuple(batch) + rows + cols


def _unary(op: str) -> Converter:
    def convert(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
        ctx.emit(node, op, [ctx.var(node, 0)], output=0)

    return Converter(convert, frozenset({"consumed_inputs"}))


def convert_leaky_relu(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """LeakyRelu (alpha default 0.01)."""
    alpha = float(attrs.get("alpha", 0.01))
    ctx.emit(node, "LeakyRelu", [ctx.var(node, 0)], {"alpha": alpha}, output=0)


def convert_gelu(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Gelu (opset 20), exact or tanh approximation."""
    approx = str(attrs.get("approximate", "none"))
    if approx not in ("none", "tanh"):
        raise ctx.unsupported(node, f"approximate={approx!r}")
    ctx.emit(node, "Gelu", [ctx.var(node, 0)], {"approximate": approx}, output=0)


def convert_pow(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """``x ** c`` with a constant scalar exponent; ``c ** x`` as ``Exp(x * log c)``."""
    x, e = ctx.var(node, 0), ctx.var(node, 1)
    if ctx.is_constant(e):
        ev = ctx.b.constant(e)
        if ev.size == 0 or np.any(ev != ev.flat[0]):
            raise ctx.unsupported(node, "the exponent must be one constant value")
        out_shape = tuple(np.broadcast_shapes(ctx.shape(x), ev.shape))
        if out_shape != ctx.shape(x):
            x = ctx.emit(node, "Expand", [x], {"shape": out_shape})
        ctx.emit(node, "Pow", [x], {"exponent": float(ev.flat[0])}, output=0)
        return
    base = ctx.const(node, 0)
    if base is None or np.any(base <= 0):
        raise ctx.unsupported(node, "a variable exponent needs a constant positive base")
    log_base = ctx.constant(node, np.log(base.astype(np.float64)), "logbase")
    rank = _rank(ctx, e, log_base)
    scaled = ctx.emit(node, "Mul", [ctx.align_rank(node, e, rank), log_base])
    ctx.emit(node, "Exp", [scaled], output=0)


def convert_clip(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Clip with constant bounds (attributes before opset 11, inputs after)."""
    lo, hi = float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))
    if ctx.opset >= 11:
        lo_c, hi_c = ctx.const(node, 1), ctx.const(node, 2)
        for i, what in ((1, "min"), (2, "max")):
            if ctx.input(node, i) is not None and ctx.const(node, i) is None:
                raise ctx.unsupported(node, f"{what} (input {i}) must be a constant")
        lo = float(lo_c) if lo_c is not None else -math.inf
        hi = float(hi_c) if hi_c is not None else math.inf
    ctx.emit(node, "Clip", [ctx.var(node, 0)], {"min": lo, "max": hi}, output=0)


def convert_identity(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Identity: the output is the input."""
    ctx.bind(node.output[0], ctx.var(node, 0))


def convert_dropout(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Dropout in inference mode is the identity (the mask output is unsupported)."""
    training = ctx.input(node, 2)
    if training is not None:
        flag = ctx.const(node, 2)
        if flag is None or bool(np.any(flag)):
            raise ctx.unsupported(node, "training_mode must be a constant false")
    ctx.bind(node.output[0], ctx.var(node, 0))


def convert_cast(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Cast of a variable: float/double targets are the identity; others unsupported."""
    to = int(attrs["to"])
    if to not in _FLOAT_TYPES:
        name = onnx.TensorProto.DataType.Name(to)
        raise ctx.unsupported(node, f"Cast of a variable to {name} (only FLOAT/DOUBLE)")
    ctx.bind(node.output[0], ctx.var(node, 0))


def convert_shape(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Shape of a variable: its static (batch-fixed) shape as an int64 constant."""
    shape = np.array(ctx.shape(ctx.var(node, 0)), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    shape = shape[start:end]
    ctx.bind(node.output[0], ctx.b.add_constant(shape, name=node.output[0]))


def convert_size(ctx: ConvertContext, node: onnx.NodeProto, attrs: Attrs) -> None:
    """Size of a variable: its static element count."""
    size = np.array(math.prod(ctx.shape(ctx.var(node, 0))), dtype=np.int64)
    ctx.bind(node.output[0], ctx.b.add_constant(size, name=node.output[0]))


_LEGACY = frozenset({"consumed_inputs"})

MATH_CONVERTERS: dict[str, Converter] = {
    "Add": Converter(convert_add, _LEGACY),
    "Sub": Converter(convert_sub, _LEGACY),
    "Mul": Converter(convert_mul, _LEGACY),
    "Div": Converter(convert_div, _LEGACY),
    "Gemm": Converter(convert_gemm, frozenset({"alpha", "beta", "transA", "transB", "broadcast"})),
    "MatMul": Converter(convert_matmul),
    "LeakyRelu": Converter(convert_leaky_relu, frozenset({"alpha", "consumed_inputs"})),
    "Gelu": Converter(convert_gelu, frozenset({"approximate"})),
    "Pow": Converter(convert_pow),
    "Clip": Converter(convert_clip, frozenset({"min", "max", "consumed_inputs"})),
    "Identity": Converter(convert_identity),
    "Dropout": Converter(convert_dropout, frozenset({"ratio", "seed", "is_test"})),
    "Cast": Converter(convert_cast, frozenset({"to", "saturate", "round_mode"})),
    "Shape": Converter(convert_shape, frozenset({"start", "end"})),
    "Size": Converter(convert_size),
    **{
        op: _unary(op)
        for op in (
            "Neg",
            "Relu",
            "Sigmoid",
            "Tanh",
            "Sin",
            "Cos",
            "Erf",
            "Exp",
            "Log",
            "Reciprocal",
            "Sqrt",
            "Sign",
            "Floor",
        )
    },
}
