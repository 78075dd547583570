"""GELU pattern fusion: exported Erf/tanh subgraphs -> one ``Gelu`` node.

Recognised (after Div-by-constant became Mul-by-reciprocal at import), with
either operand order in every Mul/Add and any grouping of the final product:

* exact: ``0.5 * x * (1 + erf(x * (1/sqrt 2)))``;
* tanh: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` with
  ``x^3`` as ``Pow(x, 3)`` or ``x * (x * x)``.

Groupings of the product: ``(x * a) * 0.5``, ``(x * 0.5) * a``, ``(a * 0.5) * x``
where ``a`` is the ``1 + erf/tanh`` node. Every removed node must be read only
inside the pattern and must not be a graph output.
"""

from __future__ import annotations

import math

from .graph import Graph, Node, freeze_attrs
from .rewrite import Rewriter, close, const_scalar

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715


def _binary(rw: Rewriter, name: str, op: str) -> Node | None:
    node = rw.node(name)
    return node if node is not None and node.op == op and len(node.inputs) == 2 else None


def _scaled(rw: Rewriter, name: str, factor: float) -> str | None:
    """``v`` when node ``name`` is ``Mul(v, c)`` with ``c`` close to ``factor``."""
    node = _binary(rw, name, "Mul")
    if node is None:
        return None
    for k in (0, 1):
        if close(const_scalar(rw.graph, node.inputs[k]), factor):
            return node.inputs[1 - k]
    return None


def _other(node: Node, name: str) -> str | None:
    """The operand of a binary ``node`` that is not ``name``."""
    a, b = node.inputs
    return b if a == name else a if b == name else None


def _cube_of(rw: Rewriter, name: str) -> tuple[str, list[str]] | None:
    """``(x, nodes)`` when ``name`` computes ``x**3`` (Pow or two Muls)."""
    node = rw.node(name)
    if node is None:
        return None
    if node.op == "Pow" and float(node.attr("exponent", 0.0)) == 3.0:
        return node.inputs[0], [name]
    if node.op != "Mul" or len(node.inputs) != 2:
        return None
    for k in (0, 1):
        sq = _binary(rw, node.inputs[k], "Mul")
        x = node.inputs[1 - k]
        if sq is not None and sq.inputs == (x, x):
            return x, [name, sq.name]
    return None


def _tanh_core(rw: Rewriter, act: Node) -> tuple[str, list[str]] | None:
    """``(x, nodes)`` for ``tanh(sqrt(2/pi) * (x + 0.044715 * x^3))``."""
    inner = _scaled(rw, act.inputs[0], _SQRT_2_OVER_PI)
    add = _binary(rw, inner, "Add") if inner is not None else None
    if add is None:
        return None
    for k in (0, 1):
        x, cubic = add.inputs[k], add.inputs[1 - k]
        cube = _scaled(rw, cubic, _CUBIC)
        found = _cube_of(rw, cube) if cube is not None else None
        if found is not None and found[0] == x:
            return x, [act.inputs[0], add.name, cubic, *found[1]]
    return None


def _erf_core(rw: Rewriter, act: Node) -> tuple[str, list[str]] | None:
    """``(x, nodes)`` for ``erf(x / sqrt 2)``."""
    x = _scaled(rw, act.inputs[0], _INV_SQRT2)
    return None if x is None else (x, [act.inputs[0]])


def _product(rw: Rewriter, a: str, x: str) -> tuple[Node, list[str]] | None:
    """The node computing ``0.5 * x * a`` and the intermediate Muls it needs."""
    u = rw.sole_consumer(a)
    if u is None or u.op != "Mul" or len(u.inputs) != 2:
        return None
    other = _other(u, a)
    if other == x:
        final = rw.sole_consumer(u.name)
        if final is not None and _scaled(rw, final.name, 0.5) == u.name:
            return final, [u.name]
        return None
    if other is not None and _scaled(rw, other, 0.5) == x:
        return u, [other]
    if close(const_scalar(rw.graph, other or ""), 0.5):
        final = rw.sole_consumer(u.name)
        if final is not None and final.op == "Mul" and _other(final, u.name) == x:
            return final, [u.name]
    return None


def _fuse(rw: Rewriter) -> None:
    for act in rw.graph.nodes:
        if act.op not in ("Erf", "Tanh"):
            continue
        core = _erf_core(rw, act) if act.op == "Erf" else _tanh_core(rw, act)
        add = rw.sole_consumer(act.name)
        if core is None or add is None or add.op != "Add" or len(add.inputs) != 2:
            continue
        if not close(const_scalar(rw.graph, _other(add, act.name) or ""), 1.0):
            continue
        x, inner = core
        found = _product(rw, add.name, x)
        if found is None:
            continue
        final, outer = found
        removed = (*inner, act.name, add.name, *outer)
        if final.shape != rw.graph.shape_of(x) or not rw.private(*removed):
            continue
        if not rw.free(*removed, final.name):
            continue
        approx = "none" if act.op == "Erf" else "tanh"
        new = Node(final.name, "Gelu", (x,), freeze_attrs({"approximate": approx}), final.shape)
        rw.claim(removed, final.name, new)


def fuse_gelu(graph: Graph) -> Graph:
    """Replace every recognised GELU subgraph by one ``Gelu`` node (named as its output)."""
    while True:
        rw = Rewriter(graph)
        _fuse(rw)
        if not rw.changed:
            return graph
        graph = rw.apply()
