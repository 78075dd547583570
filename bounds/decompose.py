"""Rewrite composite ops into primitives that bound propagation relaxes.

Every rewrite is exact (same values, tested against ``models.evaluate``):

* ``Softmax(x)_i = 1 / (1 + sum_{j != i} exp(x_j - x_i))``: the differences are
  linear and the diagonal term ``exp(0) = 1`` is a constant, so the sum is
  ``>= 1`` under any sound bounds and the reciprocal is always defined; bounds
  stay inside ``(0, 1]``.
* ``LayerNormalization``: mean, centre, square, mean, ``+eps``, sqrt,
  reciprocal, product of the two perturbed tensors, scale and shift.
* ``MatMul(a, b)`` with both operands perturbed stays one node: a product whose
  McCormick planes are applied by contraction (:mod:`bounds.products`).
* ``Mul(x, x)``: ``Pow(x, 2)`` (a tighter relaxation than McCormick).
* ``MaxPool`` (no padding): ``max(a, b) = a + Relu(b - a)`` over the window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from models.graph import Graph, Node, freeze_attrs

from .types import BoundsError


def perturbed_names(graph: Graph) -> set[str]:
    """Names of all values that depend on a graph input."""
    out = {i.name for i in graph.inputs}
    for n in graph.nodes:
        if any(i in out for i in n.inputs):
            out.add(n.name)
    return out


class _Builder:
    """Collects replacement nodes and new constants with unique names."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = dict(graph.constants)
        self._names = {n.name for n in graph.nodes} | set(graph.constants)
        self._names |= {i.name for i in graph.inputs}

    def fresh(self, base: str) -> str:
        for k in itertools.count():
            name = f"{base}::{k}"
            if name not in self._names:
                self._names.add(name)
                return name
        raise AssertionError("unreachable")

    def add(
        self,
        base: str,
        op: str,
        inputs: tuple[str, ...],
        out_shape: tuple[int, ...],
        final: str | None = None,
        **attrs: object,
    ) -> str:
        name = final if final is not None else self.fresh(base)
        self.nodes.append(Node(name, op, inputs, freeze_attrs(attrs), tuple(out_shape)))
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.constants[name] = value
        return name


def _softmax(b: _Builder, node: Node, shapes: dict[str, tuple[int, ...]]) -> None:
    x = node.inputs[0]
    shape = shapes[x]
    axis = node.attr("axis", len(shape) - 1) % len(shape)
    last = len(shape) - 1
    perm = list(range(len(shape)))
    perm[axis], perm[last] = perm[last], perm[axis]
    t_shape = tuple(shape[p] for p in perm)
    if axis != last:
        x = b.add(node.name, "Transpose", (x,), t_shape, perm=tuple(perm))
    n = t_shape[-1]
    lead = t_shape[:-1]
    if n == 1:  # softmax over one element is the constant 1
        zero = b.const(node.name + "::zero", np.zeros((), dtype=np.float64))
        one = b.const(node.name + "::one", np.ones((), dtype=np.float64))
        z = b.add(node.name, "Mul", (node.inputs[0], zero), shape)
        b.add(node.name, "Add", (z, one), shape, final=node.name)
        return
    # x_j for j != i as [..., n, n-1]: the diagonal exp(0) = 1 is added as a constant,
    # so the denominator is >= 1 even under loose (IBP) bounds.
    others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64)
    idx = b.const(node.name + "::others", others)
    xj = b.add(node.name, "Gather", (x, idx), lead + (n, n - 1), axis=len(t_shape) - 1)
    col = b.add(node.name, "Reshape", (x,), lead + (n, 1), shape=lead + (n, 1))
    neg = b.add(node.name, "Neg", (col,), lead + (n, 1))
    diff = b.add(node.name, "Add", (xj, neg), lead + (n, n - 1))
    ex = b.add(node.name, "Exp", (diff,), lead + (n, n - 1))
    part = b.add(node.name, "ReduceSum", (ex,), t_shape, axes=(len(t_shape),), keepdims=0)
    one = b.const(node.name + "::one", np.ones((), dtype=np.float64))
    total = b.add(node.name, "Add", (part, one), t_shape)
    if axis == last:
        b.add(node.name, "Reciprocal", (total,), shape, final=node.name)
    else:
        rec = b.add(node.name, "Reciprocal", (total,), t_shape)
        b.add(node.name, "Transpose", (rec,), shape, final=node.name, perm=tuple(perm))


def _layernorm(b: _Builder, node: Node, shapes: dict[str, tuple[int, ...]]) -> None:
    x = node.inputs[0]
    shape = shapes[x]
    axis = node.attr("axis", -1) % len(shape)
    axes = tuple(range(axis, len(shape)))
    red = tuple(1 if i in axes else d for i, d in enumerate(shape))
    mean = b.add(node.name, "ReduceMean", (x,), red, axes=axes, keepdims=1)
    neg = b.add(node.name, "Neg", (mean,), red)
    cen = b.add(node.name, "Add", (x, neg), shape)
    sq = b.add(node.name, "Pow", (cen,), shape, exponent=2.0)
    var = b.add(node.name, "ReduceMean", (sq,), red, axes=axes, keepdims=1)
    eps = b.const(node.name + "::eps", np.array(node.attr("epsilon", 1e-5), dtype=np.float64))
    ve = b.add(node.name, "Add", (var, eps), red)
    sd = b.add(node.name, "Sqrt", (ve,), red)
    inv = b.add(node.name, "Reciprocal", (sd,), red)
    has_scale = len(node.inputs) > 1 and node.inputs[1]
    has_bias = len(node.inputs) > 2 and node.inputs[2]
    y = b.add(
        node.name, "Mul", (cen, inv), shape, final=None if (has_scale or has_bias) else node.name
    )
    if has_scale:
        y = b.add(
            node.name, "Mul", (y, node.inputs[1]), shape, final=None if has_bias else node.name
        )
    if has_bias:
        b.add(node.name, "Add", (y, node.inputs[2]), shape, final=node.name)


def _maxpool(b: _Builder, node: Node, shapes: dict[str, tuple[int, ...]]) -> None:
    x = node.inputs[0]
    shape = shapes[x]
    kernel = tuple(node.attr("kernel_shape"))
    nsp = len(kernel)
    strides = tuple(node.attr("strides") or (1,) * nsp)
    dil = tuple(node.attr("dilations") or (1,) * nsp)
    if any(node.attr("pads") or ()) or node.attr("ceil_mode", 0):
        raise BoundsError(f"MaxPool {node.name!r}: padding/ceil_mode are not supported in bounds")
    out_sp = node.shape[-nsp:]
    axes = tuple(range(len(shape) - nsp, len(shape)))
    current: str | None = None
    offsets = list(itertools.product(*[range(k) for k in kernel]))
    for idx, off in enumerate(offsets):
        starts = tuple(o * d for o, d in zip(off, dil))
        ends = tuple(s + (n - 1) * st + 1 for s, n, st in zip(starts, out_sp, strides))
        win = b.add(
            node.name, "Slice", (x,), node.shape, starts=starts, ends=ends, axes=axes, steps=strides
        )
        if current is None:
            current = win
            continue
        last = idx == len(offsets) - 1
        neg = b.add(node.name, "Neg", (current,), node.shape)
        diff = b.add(node.name, "Add", (win, neg), node.shape)
        relu = b.add(node.name, "Relu", (diff,), node.shape)
        current = b.add(
            node.name, "Add", (current, relu), node.shape, final=node.name if last else None
        )
    if len(offsets) == 1:
        b.add(node.name, "Reshape", (current,), node.shape, final=node.name, shape=node.shape)


_Rewrite = Callable[[_Builder, Node, dict[str, tuple[int, ...]]], None]
_REWRITES: dict[str, _Rewrite] = {
    "Softmax": _softmax,
    "LayerNormalization": _layernorm,
    "MaxPool": _maxpool,
}


def decompose(graph: Graph) -> Graph:
    """Rewrite composite ops into primitives (exact; see module docstring)."""
    perturbed = perturbed_names(graph)
    b = _Builder(graph)
    shapes = {i.name: i.shape for i in graph.inputs}
    shapes.update({k: tuple(v.shape) for k, v in graph.constants.items()})
    changed = False
    for node in graph.nodes:
        shapes[node.name] = node.shape
        both = sum(i in perturbed for i in node.inputs) == 2
        if node.op in _REWRITES and node.inputs[0] in perturbed:
            _REWRITES[node.op](b, node, shapes)
            changed = True
        elif node.op == "Mul" and both and node.inputs[0] == node.inputs[1]:
            b.add(node.name, "Pow", (node.inputs[0],), node.shape, final=node.name, exponent=2.0)
            changed = True
        else:
            b.nodes.append(node)
    if not changed:
        return graph
    return graph.replace(nodes=tuple(b.nodes), constants=b.constants)
