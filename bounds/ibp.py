"""Interval bound propagation (IBP) over a :class:`BoundGraph`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from models.evaluate import FORWARD

from .network import BoundGraph, NodeInfo
from .products import matmul_interval
from .relax.base import UnaryRelaxation
from .relax.bilinear import mul_interval
from .types import Bounds


def unary_interval(relax: UnaryRelaxation, b: Bounds) -> Bounds:
    """Interval of an elementwise op: exact map when declared, else its lines."""
    if relax.interval is not None:
        lo, hi = relax.interval(b.lower, b.upper)
        return Bounds(lo, hi)
    lines = relax.relax(b.lower, b.upper, None)
    lo = torch.minimum(lines.lw * b.lower, lines.lw * b.upper) + lines.lb
    hi = torch.maximum(lines.uw * b.lower, lines.uw * b.upper) + lines.ub
    return Bounds(lo, hi)


def _affine_interval(bg: BoundGraph, info: NodeInfo, ins: list[Bounds | None]) -> Bounds:
    node, rule = info.node, info.opdef.interval_rule
    like = next(b.lower for b in ins if b is not None)
    if rule == "negate":
        b = ins[0]
        assert b is not None
        return Bounds(-b.upper, -b.lower)
    if rule == "monotone":
        lo = bg.forward_node(node, [b.lower if b else None for b in ins], like)
        hi = bg.forward_node(node, [b.upper if b else None for b in ins], like)
        return Bounds(lo, hi)
    # weighted: centre/radius with |W| and no bias for the radius
    mid = bg.forward_node(node, [(b.lower + b.upper) / 2 if b else None for b in ins], like)
    if node.op == "Linear" and info.perturbed_slots == (0,):  # the common case, no bias
        b = ins[0]
        assert b is not None
        rad = ((b.upper - b.lower) / 2) @ bg.abs_const(node.inputs[1], like)
        return Bounds(mid - rad, mid + rad)
    args: list[Tensor] = []
    for slot, name in enumerate(node.inputs):
        b = ins[slot]
        if b is not None:
            args.append((b.upper - b.lower) / 2)
        else:
            c = bg.const(name, like)
            args.append(torch.zeros_like(c) if slot == info.opdef.bias_slot else c.abs())
    rad = FORWARD[node.op](node, args)
    return Bounds(mid - rad, mid + rad)


def node_interval(bg: BoundGraph, info: NodeInfo, bounds: Mapping[str, Bounds]) -> Bounds:
    """IBP interval of one node from the intervals of its perturbed inputs."""
    ins: list[Bounds | None] = [
        bounds[name] if slot in info.perturbed_slots else None
        for slot, name in enumerate(info.node.inputs)
    ]
    if info.kind == "unary":
        assert info.relaxation is not None and ins[0] is not None
        return unary_interval(info.relaxation, ins[0])
    if info.kind == "product":
        x, y = ins
        assert x is not None and y is not None
        if info.node.op == "MatMul":
            return matmul_interval(x, y)
        lo, hi = mul_interval(x.lower, x.upper, y.lower, y.upper)
        return Bounds(lo, hi)
    return _affine_interval(bg, info, ins)


def ibp(
    bg: BoundGraph,
    box: Bounds,
    *,
    known: Mapping[str, Bounds] | None = None,
) -> dict[str, Bounds]:
    """Interval bounds of every perturbed node.

    Args:
        bg: the prepared graph.
        box: input bounds, ``[B, *input_shape]`` each.
        known: bounds already established for some nodes (e.g. by CROWN or by
            branch-and-bound splits); they are intersected with the IBP result.

    Returns:
        name -> :class:`Bounds` for the input and every perturbed node.
    """
    out: dict[str, Bounds] = {bg.input_name: box}
    known = known or {}
    for name in bg.order:
        b = node_interval(bg, bg.infos[name], out)
        if name in known:
            b = b.intersect(known[name])
        out[name] = b
    return out
