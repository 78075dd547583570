"""Which neurons branch-and-bound may split, and where (REFERENCE §1.a, §1.c).

A *split node* is a node whose interval feeds a splittable nonlinearity (a unary op whose
relaxation declares ``splittable``, or a product of two perturbed values). Its neurons are
candidates where some consumer's ``split_mask`` says the relaxation still has slack. The
split point is 0 for piecewise-linear consumers crossing their kink (ReLU, LeakyReLU,
Sign) and for product operands crossing 0, the breakpoint inside the interval for Clip
and Floor, and otherwise the pre-optimised table point (min-area rule) or the midpoint.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

import lut
from bounds.network import BoundGraph
from bounds.relax.base import default_split_mask

from .branch_points import table_name

log = logging.getLogger(__name__)

__all__ = ["Consumer", "SplitNode", "candidate_mask", "find_split_nodes", "split_points"]

# Consumers whose natural split point is 0 when the interval crosses it.
_KINK_AT_ZERO = frozenset({"Relu", "LeakyRelu", "Sign"})
# Intervals narrower than this are not split (relative to their magnitude).
_MIN_WIDTH = 1e-6


@dataclass(frozen=True, slots=True)
class Consumer:
    """A nonlinear node reading a split node.

    Attributes:
        name: the consumer node.
        kind: "unary" or "product".
        slot: which input of the consumer the split node is.
        op: the consumer's op name.
        other: for products, the other operand (None for unary ops).
    """

    name: str
    kind: str
    slot: int
    op: str
    other: str | None = None


@dataclass(frozen=True, slots=True)
class SplitNode:
    """A node whose neurons may be split, with the nonlinearities that read it."""

    name: str
    shape: tuple[int, ...]
    consumers: tuple[Consumer, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def find_split_nodes(bg: BoundGraph) -> tuple[SplitNode, ...]:
    """Every split node of ``bg`` in graph order (the network input is never one here)."""
    readers: dict[str, list[Consumer]] = {}
    for name, info in bg.infos.items():
        if info.kind == "unary":
            relax = info.relaxation
            if relax is None or not relax.splittable:
                continue
            src = info.node.inputs[0]
            readers.setdefault(src, []).append(Consumer(name, "unary", 0, info.node.op))
        elif info.kind == "product":
            a, b = (info.node.inputs[s] for s in info.perturbed_slots)
            if a == b:
                continue
            readers.setdefault(a, []).append(Consumer(name, "product", 0, "Mul", b))
            readers.setdefault(b, []).append(Consumer(name, "product", 1, "Mul", a))
    out = []
    for name in bg.needs_bounds:
        if name == bg.input_name or name not in readers:
            continue
        out.append(SplitNode(name, tuple(bg.shape(name)), tuple(readers[name])))
    return tuple(out)


def candidate_mask(bg: BoundGraph, node: SplitNode, lower: Tensor, upper: Tensor) -> Tensor:
    """``[B, n]`` neurons worth splitting: some consumer's relaxation has slack there."""
    lo, up = lower.flatten(1), upper.flatten(1)
    wide = (up - lo) > _MIN_WIDTH * (1.0 + lo.abs() + up.abs())
    mask = torch.zeros_like(lo, dtype=torch.bool)
    for c in node.consumers:
        if c.kind == "product":
            mask |= wide
            continue
        relax = bg.infos[c.name].relaxation
        fn = relax.split_mask if relax is not None and relax.split_mask else default_split_mask
        mask |= fn(lo, up)
    return mask & wide & torch.isfinite(lo) & torch.isfinite(up)


def _piecewise_point(bg: BoundGraph, c: Consumer, lo: Tensor, up: Tensor) -> Tensor | None:
    """Breakpoint inside ``(lo, up)`` of a piecewise-linear consumer, NaN where none."""
    nan = torch.full_like(lo, math.nan)
    if c.op in _KINK_AT_ZERO:
        return torch.where((lo < 0) & (up > 0), torch.zeros_like(lo), nan)
    if c.op == "Clip":
        attrs = bg.infos[c.name].node.attrs
        hi = float(attrs.get("max", math.inf))
        low = min(float(attrs.get("min", -math.inf)), hi)
        p = torch.where((lo < low) & (up > low), torch.full_like(lo, low), nan)
        return torch.where(torch.isnan(p) & (lo < hi) & (up > hi), torch.full_like(lo, hi), p)
    if c.op == "Floor":
        k = torch.floor(up)
        k = torch.where(k >= up, k - 1.0, k)
        return torch.where(k > lo, k, nan)
    return None


def split_points(
    bg: BoundGraph,
    node: SplitNode,
    lower: Tensor,
    upper: Tensor,
    intervals: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    *,
    method: str = "table",
    store: lut.TableStore | None = None,
) -> Tensor:
    """``[B, n]`` split points strictly inside ``(lower, upper)`` (flattened neurons).

    Args:
        bg: prepared graph.
        node: the split node.
        lower, upper: its intervals ``[B, *shape]``.
        intervals: flattened ``(lower, upper)`` of other nodes (product operands).
        method: "table" (pre-optimised points, REFERENCE §1.c) or "midpoint".
        store: the branching-point table store (the engine's when None).
    """
    lo, up = lower.flatten(1), upper.flatten(1)
    mid = 0.5 * (lo + up)
    p = torch.full_like(lo, math.nan)
    c = node.consumers[0]
    # Kinks first: any consumer crossing its kink (or a product operand crossing 0).
    for cons in node.consumers:
        if cons.kind == "product":
            q = torch.where(
                (lo < 0) & (up > 0), torch.zeros_like(lo), torch.full_like(lo, math.nan)
            )
        else:
            q = _piecewise_point(bg, cons, lo, up)
        if q is not None:
            p = torch.where(torch.isnan(p), q, p)
    if method == "table":
        q = _table_point(bg, c, lo, up, intervals, store)
        if q is not None:
            p = torch.where(torch.isnan(p), q, p)
    p = torch.where(torch.isnan(p), mid, p)
    inside = (p > lo) & (p < up)
    return torch.where(inside, p, mid)


def _table_point(
    bg: BoundGraph,
    c: Consumer,
    lo: Tensor,
    up: Tensor,
    intervals: Mapping[str, tuple[Tensor, Tensor]] | None,
    store: lut.TableStore | None,
) -> Tensor | None:
    """Table point for consumer ``c`` (None when no table applies)."""
    try:
        if c.kind == "unary":
            info = bg.infos[c.name]
            name = table_name(info.node.op, info.node.attrs)
            if name is None or name == lut.MUL:
                return None
            finite = torch.isfinite(lo) & torch.isfinite(up) & (up > lo)
            safe_lo = torch.where(finite, lo, torch.zeros_like(lo))
            safe_up = torch.where(finite, up, torch.ones_like(up))
            q = lut.branching_points(name, safe_lo, safe_up, store=store)
            return torch.where(finite, q.to(lo), torch.full_like(lo, math.nan))
        if intervals is None or c.other not in intervals:
            return None
        ol, ou = intervals[c.other]
        if ol.shape != lo.shape:
            return None  # broadcast operands (MatMul lowered to Mul): no per-neuron partner
        return lut.branching_points_mul(lo, up, ol, ou, store=store).to(lo)
    except (lut.LutError, KeyError, ValueError) as exc:
        log.debug("no table point for %s (%s): midpoint", c.name, exc)
        return None
