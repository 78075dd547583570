"""The canonical op set of our IR: every ``Node.op`` is one of these.

The ONNX importer maps ONNX ops onto this set (see ``models.onnx_import``);
everything downstream (evaluation, bounds) only knows these names. Inputs named
"const" must be graph constants; the others may be variables or constants.
Shapes follow the per-sample convention of ``models.graph``; the batched torch
semantics of every op are ``models.evaluate.FORWARD``.

Invariants the importer and the passes maintain (rely on them, keep them when
building nodes yourself):

* a node never has only constant inputs (such nodes are evaluated at import);
* broadcasting ops (Add, Mul, MatMul): every operand that depends on the input
  has the rank of the node's output (lower-rank values get a Reshape first);
  constants may have any rank up to it. MatMul operands have rank >= 2;
* all attributes are static and resolved: non-negative axes, Slice bounds in
  Python ``range`` form, Gather indices non-negative int64 constants.
"""

from __future__ import annotations

# op -> (inputs, attributes) documentation. Keep in sync with models.evaluate.
SUPPORTED_OPS: dict[str, str] = {
    # affine / linear
    "Linear": "inputs (x, W:const [K,N], b:const [N] optional); y = x @ W + b over the last axis",
    "MatMul": "inputs (a, b), both rank >= 2; ONNX MatMul semantics; used when neither side"
    " folds to Linear (constant left operand or two perturbed operands)",
    "Add": "inputs (a, b); broadcasting",
    "Mul": "inputs (a, b); broadcasting (constant or both perturbed)",
    "Neg": "inputs (x)",
    "Conv": "inputs (x, W:const, b:const optional); attrs strides, pads, dilations, group",
    "ConvTranspose": "inputs (x, W:const, b:const optional); attrs strides, pads, dilations,"
    " group, output_padding",
    "AveragePool": "inputs (x); attrs kernel_shape, strides, pads, count_include_pad, ceil_mode",
    "GlobalAveragePool": "inputs (x)",
    "ReduceMean": "inputs (x); attrs axes (tuple), keepdims (0/1)",
    "ReduceSum": "inputs (x); attrs axes (tuple), keepdims (0/1)",
    # shape ops (all linear, monotone selections or permutations)
    "Reshape": "inputs (x); attrs shape (static, fully resolved)",
    "Transpose": "inputs (x); attrs perm",
    "Concat": "inputs (x1, x2, ...); attrs axis (non-negative)",
    "Slice": "inputs (x); attrs starts, ends, axes, steps (static; per axis the indices"
    " range(start, end, step), negative steps allowed, end may be -1)",
    "Gather": "inputs (x, indices:const int64); attrs axis",
    "Pad": "inputs (x); attrs pads (ONNX order), value (float); constant mode only",
    "Expand": "inputs (x); attrs shape (static target)",
    "Resize": "inputs (x); attrs scales (per axis, integers as floats), mode 'nearest':"
    " every element repeated scale times (other ONNX resizes become Gather or Linear)",
    # nonlinear, elementwise
    "Relu": "inputs (x)",
    "LeakyRelu": "inputs (x); attrs alpha",
    "Sigmoid": "inputs (x)",
    "Tanh": "inputs (x)",
    "Sin": "inputs (x)",
    "Cos": "inputs (x)",
    "Erf": "inputs (x)",
    "Gelu": "inputs (x); attrs approximate ('none' or 'tanh')",
    "Exp": "inputs (x)",
    "Log": "inputs (x)",
    "Reciprocal": "inputs (x)",
    "Sqrt": "inputs (x)",
    "Pow": "inputs (x); attrs exponent (float constant)",
    "Sign": "inputs (x)",
    "Floor": "inputs (x)",
    "Clip": "inputs (x); attrs min, max (floats, -inf/inf when absent)",
    # nonlinear, structured
    "Softmax": "inputs (x); attrs axis (non-negative)",
    "LayerNormalization": "inputs (x, scale:const, bias:const optional); attrs axis, epsilon",
    "MaxPool": "inputs (x); attrs kernel_shape, strides, pads, dilations, ceil_mode",
}

ELEMENTWISE_NONLINEAR = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Sin",
        "Cos",
        "Erf",
        "Gelu",
        "Exp",
        "Log",
        "Reciprocal",
        "Sqrt",
        "Pow",
        "Sign",
        "Floor",
        "Clip",
    }
)
