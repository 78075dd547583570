"""Rewrite passes that remove Transposes (re-exported by ``models.passes``).

* :func:`matmul_transposed_to_linear`: ``Transpose(MatMul(C, Transpose(x)))`` with
  both transposes swapping the last two axes and ``C`` a constant matrix is
  ``x @ C^T``: one ``Linear`` (the ml4acopf models export ``C x^T`` this way).
* :func:`sink_transposes`: ``Op(Transpose(x, p), c)`` for ``Op`` in Add/Mul and a
  constant ``c`` becomes ``Transpose(Op(x, c'), p)`` with ``c'`` the permuted
  constant, and two consecutive Transposes merge (or vanish when they cancel).
  A BatchNorm applied between a Transpose and its inverse (vit) becomes a
  per-feature Mul/Add on the untransposed tensor.
"""

from __future__ import annotations

import numpy as np

from .graph import Graph, Node, freeze_attrs
from .rewrite import Rewriter


def _swaps_last_two(node: Node | None) -> bool:
    if node is None or node.op != "Transpose":
        return False
    perm = tuple(node.attrs["perm"])
    n = len(perm)
    return n >= 2 and perm == tuple(range(n - 2)) + (n - 1, n - 2)


def _matmul_sweep(rw: Rewriter) -> None:
    g = rw.graph
    for outer in g.nodes:
        if not _swaps_last_two(outer) or not rw.free(outer.name):
            continue
        mm = rw.node(outer.inputs[0])
        if mm is None or mm.op != "MatMul" or not rw.private(mm.name):
            continue
        c = g.constants.get(mm.inputs[0])
        inner = rw.node(mm.inputs[1])
        if c is None or c.ndim != 2 or not _swaps_last_two(inner) or inner is None:
            continue
        if not rw.private(inner.name) or not rw.free(mm.name, inner.name):
            continue
        x = inner.inputs[0]
        if g.shape_of(x)[:-1] + (c.shape[0],) != outer.shape:
            continue
        w = rw.add_constant(f"{outer.name}.W", np.ascontiguousarray(c.T))
        new = Node(outer.name, "Linear", (x, w), freeze_attrs({}), outer.shape)
        rw.claim((mm.name, inner.name), outer.name, new)


def matmul_transposed_to_linear(graph: Graph) -> Graph:
    """``(C @ x^T)^T`` (transposes of the last two axes) -> ``Linear(x, C^T)``."""
    while True:
        rw = Rewriter(graph)
        _matmul_sweep(rw)
        if not rw.changed:
            return graph
        graph = rw.apply()


def _sink_one(rw: Rewriter, node: Node) -> bool:
    """Swap ``Add/Mul(Transpose(x), c)`` into ``Transpose(Add/Mul(x, c'))``."""
    g = rw.graph
    if node.op not in ("Add", "Mul") or len(node.inputs) != 2:
        return False
    for k in (0, 1):
        t = rw.node(node.inputs[k])
        c = g.constants.get(node.inputs[1 - k])
        if t is None or t.op != "Transpose" or c is None or t.shape != node.shape:
            continue
        if not rw.private(t.name) or not rw.free(t.name, node.name):
            continue
        perm = tuple(t.attrs["perm"])
        full = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
        moved = np.ascontiguousarray(np.transpose(full, np.argsort(perm)))
        const = rw.add_constant(f"{node.name}.c", moved)
        pre = rw.fresh_name(node.name)
        x = t.inputs[0]
        pre_node = Node(pre, node.op, (x, const), node.attrs, g.shape_of(x))
        rw.claim((), t.name, pre_node)
        rw.claim((), node.name, Node(node.name, "Transpose", (pre,), t.attrs, node.shape))
        return True
    return False


def _merge_one(rw: Rewriter, node: Node) -> bool:
    """``Transpose(Transpose(y, p), q)`` -> one Transpose, or nothing if it cancels."""
    if node.op != "Transpose" or not rw.free(node.name):
        return False
    inner = rw.node(node.inputs[0])
    if inner is None or inner.op != "Transpose" or not rw.private(inner.name):
        return False
    if not rw.free(inner.name):
        return False
    p, q = tuple(inner.attrs["perm"]), tuple(node.attrs["perm"])
    combined = tuple(p[i] for i in q)
    if combined == tuple(range(len(combined))) and node.name not in rw.outputs:
        rw.bypass(inner.name, inner.inputs[0])
        rw.bypass(node.name, inner.inputs[0])
        return True
    attrs = freeze_attrs({"perm": combined})
    rw.claim(
        (inner.name,), node.name, Node(node.name, "Transpose", inner.inputs, attrs, node.shape)
    )
    return True


def sink_transposes(graph: Graph) -> Graph:
    """Move Transposes below constant Add/Mul and merge or cancel consecutive ones."""
    while True:
        rw = Rewriter(graph)
        for node in graph.nodes:
            if not _merge_one(rw, node):
                _sink_one(rw, node)
        if not rw.changed:
            return graph
        graph = rw.apply()
