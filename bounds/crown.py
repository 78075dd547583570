"""Backward linear bound propagation (CROWN) over a :class:`BoundGraph`.

One routine, :func:`backward_lower`, computes a sound lower bound of ``A0 · v``
for any node ``v`` and coefficients ``A0`` (``[S, B, *shape(v)]``); upper bounds
are lower bounds of ``-A0``. Affine steps are derived from the op's forward
with ``torch.func.vjp`` (a hand-written ``Linear`` path is tested against it);
nonlinear steps use the relaxation lines of ``bounds.relax``. Intermediate
bounds of every node that feeds a nonlinearity come from :func:`crown_bounds`,
which walks the graph once, forward, refining IBP bounds by CROWN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .deadline import Deadline
from .ibp import node_interval
from .network import BoundGraph, NodeInfo
from .products import matmul_step, mul_step
from .relax.base import Lines, default_split_mask
from .types import (
    CROWN_MAX_ELEMENTS,
    BallBounds,
    Bounds,
    LinearBounds,
    all_finite,
    mul_guarded,
)

# Elements of [rows, B, *node] handled per chunk when bounding intermediate nodes. Small
# chunks keep each coefficient tensor in cache: on the vit_2023 ibp_3_3_8 model (the
# 13872-element softmax terms) 1 << 19 bounds in about 0.65x the time of 1 << 24 and a
# tenth of the memory; smaller models see no difference.
_CHUNK_ELEMENTS = 1 << 19


@dataclass
class BackwardResult:
    """Lower bound of ``A0 · v`` and, when asked, linear coefficients.

    ``lower``: ``[S, B]``; ``input_A``: ``[S, B, *input_shape]`` or None;
    ``node_A``: name -> ``[S, B, *shape]`` coefficients of the objective with
    respect to the *output* of each recorded nonlinear node.
    """

    lower: Tensor
    input_A: Tensor | None = None
    node_A: dict[str, Tensor] | None = None
    bias: Tensor | None = None


def _flat_sum(t: Tensor) -> Tensor:
    return t.flatten(2).sum(-1) if t.dim() > 2 else t


def concretize_box(A: Tensor, box: Bounds) -> Tensor:
    """``min_{x in box} A·x`` for ``A`` ``[S, B, *in]`` and box ``[B, *in]`` -> ``[S, B]``.

    A finite box uses ``A·c - |A|·r`` (centre, radius): two contractions instead of
    splitting ``A`` by sign.
    """
    lo, up = box.lower, box.upper
    if A.dim() > 2 and all_finite(lo, up):
        flat = A.flatten(2)
        c, r = ((lo + up) / 2).flatten(1), ((up - lo) / 2).flatten(1)
        return torch.einsum("sbn,bn->sb", flat, c) - torch.einsum("sbn,bn->sb", flat.abs(), r)
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    return _flat_sum(mul_guarded(pos, box.lower) + mul_guarded(neg, box.upper))


def concretize(A: Tensor, box: Bounds) -> Tensor:
    """``min_x A·x`` over the input set: a box, or an Lp ball (:class:`BallBounds`).

    Over ``||x - c||_p <= eps`` the minimum is ``A·c - eps ||A||_q`` (``1/p + 1/q = 1``,
    Hölder); the ball's enclosing box gives a second sound value, and the larger of the
    two is returned (the set is ball ∩ box).
    """
    on_box = concretize_box(A, box)
    if not isinstance(box, BallBounds) or box.p == math.inf:
        return on_box
    q = math.inf if box.p == 1 else box.p / (box.p - 1.0)
    flat = A.flatten(2)
    dual = torch.linalg.vector_norm(flat, ord=q, dim=-1)
    on_ball = (flat * box.center.flatten(1)).sum(-1) - box.eps * dual
    return torch.maximum(on_ball, on_box)


def _affine_step(bg: BoundGraph, info: NodeInfo, a: Tensor) -> tuple[list[Tensor], Tensor]:
    """Coefficients for the perturbed inputs of an affine node and the bias term."""
    node = info.node
    S, B = a.shape[:2]
    if node.op == "Linear":
        w = bg.const(node.inputs[1], a)
        grads = [a @ w.T]
        if len(node.inputs) > 2 and node.inputs[2]:
            return grads, _flat_sum(a * bg.const(node.inputs[2], a))
        return grads, a.new_zeros(S, B)
    if info.opdef.backward is not None:
        consts = [
            None if slot in info.perturbed_slots else bg.const(name, a)
            for slot, name in enumerate(node.inputs)
        ]
        shapes = [
            bg.shape(name) if c is None else tuple(c.shape) for name, c in zip(node.inputs, consts)
        ]
        grads, bias = info.opdef.backward(node, a, shapes, consts)
        return grads, bias if bias is not None else a.new_zeros(S, B)
    out0, vjp_fn = bg.linearization(node, a)
    flat = a.reshape((S * B, 1) + tuple(a.shape[2:]))
    grads = torch.func.vmap(vjp_fn)(flat)
    grads = [g.reshape((S, B) + g.shape[2:]) for g in grads]
    bias = _flat_sum(a * out0) if out0 is not None else a.new_zeros(S, B)
    return grads, bias


class RelaxationCache:
    """Relaxation lines of unary nodes without parameters, kept while their input
    interval is the same object: bounding every intermediate node walks back through
    the same nonlinearities, and an S-shaped relaxation (tangent searches) costs far
    more than applying it (zoo LSTM: 8 of 9 s of CROWN went to recomputing them).

    Holds a reference to each interval it was computed from, so an entry is reused
    only for that very interval (a refined or split interval is a new object).
    """

    def __init__(self) -> None:
        self._lines: dict[str, tuple[Bounds, Lines]] = {}

    def lines(self, info: NodeInfo, b: Bounds) -> Lines:
        hit = self._lines.get(info.node.name)
        if hit is not None and hit[0] is b:
            return hit[1]
        assert info.relaxation is not None
        lines = info.relaxation.relax(b.lower, b.upper, None)
        self._lines[info.node.name] = (b, lines)
        return lines


def _compact(a: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``a`` with every broadcast (stride-0) node dimension narrowed to size 1, and those
    dimensions. A ``ReduceSum``'s backward hands its input an expanded tensor (e.g. the
    ``[.., n, n-1]`` terms of a decomposed softmax); working on the compact view skips
    materialising sign splits and biases that are constant along those dimensions."""
    dims = tuple(i for i in range(2, a.dim()) if a.stride(i) == 0 and a.shape[i] > 1)
    for i in dims:
        a = a.narrow(i, 0, 1)
    return a, dims


def _sum_dims(t: Tensor, a: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``t`` (trailing dimensions aligned with ``a``'s node dimensions) summed over ``a``'s
    dimensions ``dims``, kept as size 1."""
    lead = t.dim() - (a.dim() - 2)
    t = t.expand(t.shape[:lead] + a.shape[2:])
    return t.sum([d - (a.dim() - t.dim()) for d in dims], keepdim=True)


def _unary_step(
    info: NodeInfo,
    a: Tensor,
    b: Bounds,
    alpha: Tensor | None,
    cache: RelaxationCache | None = None,
) -> tuple[Tensor, Tensor]:
    assert info.relaxation is not None
    if alpha is None and cache is not None:
        lines = cache.lines(info, b)
    else:
        lines = info.relaxation.relax(b.lower, b.upper, alpha)
    c, dims = _compact(a)
    if dims and not all_finite(lines.lb, lines.ub):
        c, dims = a, ()
    pos = c.clamp(min=0)
    neg = c - pos
    new_a = torch.addcmul(pos * lines.lw, neg, lines.uw)
    shared = lines.lb.dim() == a.dim() - 1  # lines [B, *shape] shared by all rows
    if new_a.shape != a.shape:
        new_a = new_a.expand(a.shape)
    lb, ub = lines.lb, lines.ub
    if dims:  # biases summed over the broadcast dimensions first (finite here)
        lb, ub = _sum_dims(lb, a, dims), _sum_dims(ub, a, dims)
    if shared and a.dim() > 2 and all_finite(lb, ub):
        flat = c.shape[:2] + (-1,)
        bias = torch.einsum("sbn,bn->sb", pos.reshape(flat), lb.flatten(1))
        bias = bias + torch.einsum("sbn,bn->sb", neg.reshape(flat), ub.flatten(1))
        return new_a, bias
    bias = _flat_sum(mul_guarded(pos, lb) + mul_guarded(neg, ub))
    return new_a, bias


def _product_step(
    bg: BoundGraph, info: NodeInfo, a: Tensor, bounds: Mapping[str, Bounds], alpha: Tensor | None
) -> tuple[list[Tensor], Tensor]:
    xn, yn = info.node.inputs
    step = matmul_step if info.node.op == "MatMul" else mul_step
    ax, ay, bias = step(a, bounds[xn], bounds[yn], alpha, bg.shape(xn), bg.shape(yn))
    return [ax, ay], bias


def _accumulate(acc: dict[str, Tensor], name: str, a: Tensor) -> None:
    prev = acc.get(name)
    acc[name] = a if prev is None else prev + a


def backward_lower(
    bg: BoundGraph,
    start: str,
    A0: Tensor,
    bounds: Mapping[str, Bounds],
    *,
    alphas: Mapping[str, Tensor] | None = None,
    return_input_A: bool = False,
    record: frozenset[str] | set[str] = frozenset(),
    split_terms: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    relax_cache: RelaxationCache | None = None,
) -> BackwardResult:
    """Sound lower bound of ``A0 · start`` over the input box ``bounds[input]``.

    Args:
        bg: prepared graph.
        start: node whose linear function is bounded.
        A0: ``[S, B, *shape(start)]`` coefficients.
        bounds: intervals of every node feeding a nonlinearity (and the input).
        alphas: optional relaxation parameters per node, ``[n, S, B, *shape]``.
        return_input_A: also return the input coefficients (for BBPS shortcuts).
        record: nonlinear nodes whose output coefficients to return.
        split_terms: Lagrangian terms of split constraints (beta-CROWN with a bias):
            node -> ``(coef [S, B, *shape], bias [S, B])``, added to the objective's
            coefficients with respect to that node's output and to its bias. Built so that
            the added term ``coef·z + bias`` is ``<= 0`` on the subdomain (e.g.
            ``-beta·s·(z - p)`` for ``s·(z - p) >= 0``, ``beta >= 0``), which keeps the
            bound sound.
        relax_cache: reuse parameter-free relaxation lines across calls that share
            interval objects (see :class:`RelaxationCache`).
    """
    alphas = alphas or {}
    split_terms = split_terms or {}
    acc: dict[str, Tensor] = {start: A0}
    bias = A0.new_zeros(A0.shape[:2])
    node_A: dict[str, Tensor] = {}
    for name in reversed(bg.order[: bg.order.index(start) + 1]):
        a = acc.pop(name, None)
        term = split_terms.get(name)
        if term is not None:
            a = term[0] if a is None else a + term[0]
            bias = bias + term[1]
        if a is None:
            continue
        info = bg.infos[name]
        node = info.node
        if name in record:
            node_A[name] = a
        if info.kind == "unary":
            new_a, b = _unary_step(info, a, bounds[node.inputs[0]], alphas.get(name), relax_cache)
            _accumulate(acc, node.inputs[0], new_a)
        elif info.kind == "product":
            grads, b = _product_step(bg, info, a, bounds, alphas.get(name))
            for slot, g in zip(info.perturbed_slots, grads):
                _accumulate(acc, node.inputs[slot], g)
        else:
            grads, b = _affine_step(bg, info, a)
            for slot, g in zip(info.perturbed_slots, grads):
                _accumulate(acc, node.inputs[slot], g)
        bias = bias + b
    a_in = acc.get(bg.input_name)
    recorded = node_A if record else None
    if a_in is None:
        return BackwardResult(bias, None, recorded, bias)
    lower = concretize(a_in, bounds[bg.input_name]) + bias
    return BackwardResult(lower, a_in if return_input_A else None, recorded, bias)


def selector_rows(n: int, index: Tensor, B: int, like: Tensor) -> Tensor:
    """One-hot rows ``[k, B, n]`` picking the elements ``index`` (``[k]``) of a node."""
    rows = torch.zeros(index.numel(), n, dtype=like.dtype, device=like.device)
    rows[torch.arange(index.numel(), device=like.device), index.to(like.device)] = 1.0
    return rows.unsqueeze(1).expand(-1, B, -1)


def node_bounds(
    bg: BoundGraph,
    name: str,
    bounds: Mapping[str, Bounds],
    *,
    relax_cache: RelaxationCache | None = None,
    rows: Tensor | None = None,
    chunk_elements: int = 0,
) -> Bounds:
    """CROWN bounds of the elements ``rows`` (flat indices; all when None) of node ``name``,
    processed in chunks of about ``chunk_elements`` coefficients (0: the default); the
    other elements get infinite bounds."""
    shape = bg.shape(name)
    n = math.prod(shape)
    like = bounds[bg.input_name].lower
    B = like.shape[0]
    index = torch.arange(n) if rows is None else rows.cpu()
    k = index.numel()
    biggest = max((math.prod(bg.shape(m)) for m in bg.order[: bg.order.index(name) + 1]), default=n)
    per_chunk = chunk_elements or _CHUNK_ELEMENTS
    chunk = max(1, per_chunk // max(1, B * max(biggest, math.prod(bg.input_shape))))
    lows, ups = [], []
    for s in range(0, k, chunk):
        e = min(k, s + chunk)
        eye = selector_rows(n, index[s:e], B, like)
        A0 = torch.cat([eye, -eye]).reshape((2 * (e - s), B) + shape)
        lb = backward_lower(bg, name, A0, bounds, relax_cache=relax_cache).lower
        lows.append(lb[: e - s])
        ups.append(-lb[e - s :])
    if rows is None:
        lower = torch.cat(lows).T.reshape((B,) + shape)
        upper = torch.cat(ups).T.reshape((B,) + shape)
        return Bounds(lower, upper)
    lower = like.new_full((B, n), -math.inf)
    upper = like.new_full((B, n), math.inf)
    if k:
        idx = index.to(like.device)
        lower[:, idx] = torch.cat(lows).T
        upper[:, idx] = torch.cat(ups).T
    return Bounds(lower.reshape((B,) + shape), upper.reshape((B,) + shape))


def consumer_mask(info: NodeInfo) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The ``split_mask`` with which consumer ``info`` says where its relaxation still
    depends on its input's interval, or None when it may depend on it wherever ``l < u``
    (smooth ops, products, affine nodes)."""
    relax = info.relaxation if info.kind == "unary" else None
    if relax is None or relax.split_mask is None or relax.split_mask is default_split_mask:
        return None
    return relax.split_mask


def consumer_masks(bg: BoundGraph, name: str) -> list | None:
    """The ``split_mask`` of every consumer of ``name``, or None unless every consumer is
    elementwise with a mask of its own (ReLU, LeakyReLU, Clip, Sign, Floor, ...)."""
    masks = []
    for info in bg.infos.values():
        if name not in info.node.inputs:
            continue
        mask = consumer_mask(info)
        if mask is None:
            return None
        masks.append(mask)
    return masks or None


def shaping_mask(bg: BoundGraph, name: str, b: Bounds) -> Tensor | None:
    """``[B, n]``: where ``name``'s element's interval can still change a relaxation in
    each domain, or None when it can everywhere (some consumer is not of the masked kind).
    """
    masks = consumer_masks(bg, name)
    if masks is None:
        return None
    lo, up = b.lower.flatten(1), b.upper.flatten(1)
    keep = torch.zeros_like(lo, dtype=torch.bool)
    for mask in masks:
        keep |= mask(lo, up)
    return keep


def shaping_elements(bg: BoundGraph, name: str, b: Bounds) -> Tensor | None:
    """Flat indices of ``name``'s elements whose interval can still change a relaxation
    in some domain, or None when every element can (see :func:`shaping_mask`).

    Elements that every consumer relaxes exactly whatever the interval (a stable
    ReLU/Clip/Floor input: the consumer's ``split_mask`` is False in every domain) need no
    CROWN rows of their own.
    """
    keep = shaping_mask(bg, name, b)
    return None if keep is None else torch.nonzero(keep.any(0)).flatten()


def sparse_rows_apply(bg: BoundGraph, max_elements: int) -> bool:
    """Whether :func:`crown_bounds` may skip the rows of stable elements: only on graphs
    whose every bounded node feeds masked piecewise-linear consumers alone (ReLU networks)
    and none is left to the interval pass by the element cap.

    A skipped element keeps its interval-pass bounds, so later interval passes are looser;
    wherever a later node's interval shapes a smooth or product relaxation, the interval
    pass can be the tighter side of its ``CROWN ∩ interval`` (power-flow models), and the
    skip would loosen it. In ReLU networks the rows that shape a relaxation keep their
    CROWN bounds (``tests/bounds/test_crown_sparse.py``)."""
    need = bg.needs_bounds
    return all(
        math.prod(bg.shape(m)) <= max_elements and consumer_masks(bg, m) is not None for m in need
    )


def crown_bounds(
    bg: BoundGraph,
    box: Bounds,
    *,
    known: Mapping[str, Bounds] | None = None,
    use_crown: bool = True,
    max_elements: int = CROWN_MAX_ELEMENTS,
    deadline: Deadline | None = None,
    relax_cache: RelaxationCache | None = None,
) -> dict[str, Bounds]:
    """Intervals of all perturbed nodes: IBP, refined by CROWN where relaxations need them.

    Args:
        bg: prepared graph.
        box: input box, ``[B, *input_shape]``.
        known: externally fixed bounds (branch-and-bound splits); intersected in.
        use_crown: False gives plain IBP.
        max_elements: nodes with more elements keep their IBP bounds (one CROWN
            row per element would cost more than it tightens; e.g. the pairwise
            differences inside a decomposed softmax).
        deadline: the time budget (None: no limit); nodes reached after it expires keep
            their IBP bounds (sound, looser), so a time budget is never overrun by much.
        relax_cache: relaxation lines to share with later calls (a fresh one if None).
    """
    known = known or {}
    bounds: dict[str, Bounds] = {bg.input_name: box}
    need = set(bg.needs_bounds)
    cache = RelaxationCache() if relax_cache is None else relax_cache
    sparse = use_crown and sparse_rows_apply(bg, max_elements)
    for name in bg.order:
        b = node_interval(bg, bg.infos[name], bounds)
        if name in known:
            b = b.intersect(known[name])
        bounds[name] = b
        if use_crown and name in need and is_crown_refined(bg, name, max_elements):
            rows = shaping_elements(bg, name, b) if sparse else None
            if rows is not None and rows.numel() == 0:
                continue  # every consumer is exact on the interval pass's interval
            if deadline is not None and deadline.expired():
                use_crown = False  # this node and every later one keep their IBP bounds
                continue
            refined = node_bounds(bg, name, bounds, relax_cache=cache, rows=rows)
            bounds[name] = b.intersect(refined)
    return bounds


def is_crown_refined(bg: BoundGraph, name: str, max_elements: int) -> bool:
    """Whether :func:`crown_bounds` refines node ``name``'s interval by CROWN."""
    return (
        name in bg.infos
        and not _is_first_affine(bg, name)
        and not _is_image_of_refined(bg, name, max_elements)
        and math.prod(bg.shape(name)) <= max_elements
    )


def _is_image_of_refined(bg: BoundGraph, name: str, max_elements: int) -> bool:
    """A unary node whose input CROWN refines: its own CROWN bound cannot be tighter.

    Back-substitution from element ``y = f(z)`` takes the line ``w z + c`` and then
    bounds ``w z`` with the very relaxations ``z``'s own rows used, so it gives
    ``w l' + c`` (``w >= 0``; ``u'`` for ``w < 0``) with ``l' <= l``, the CROWN bound
    of ``z`` (``l``: the refined interval). The line is below ``f`` on ``[l, u]``
    and at least as low at ``l`` as anywhere there, so ``w l + c <= min f``: the
    interval from ``[l, u]`` is at least as tight (e.g. a softmax's Reciprocal).
    """
    info = bg.infos[name]
    if info.kind != "unary":
        return False
    z = info.node.inputs[0]
    return z in bg.infos and z in bg.needs_bounds and is_crown_refined(bg, z, max_elements)


def _is_first_affine(bg: BoundGraph, name: str) -> bool:
    """An affine node fed only by the input: its IBP interval is already exact."""
    info = bg.infos[name]
    return info.kind == "affine" and all(
        info.node.inputs[s] == bg.input_name for s in info.perturbed_slots
    )


def linear_bounds(bg: BoundGraph, name: str, bounds: Mapping[str, Bounds]) -> LinearBounds:
    """Linear bounds of every element of ``name`` w.r.t. the input (BBPS shortcuts).

    Returns a :class:`LinearBounds` with ``lA, uA``: ``[n, B, *input_shape]``
    and ``lbias, ubias``: ``[n, B]`` where ``n`` is the node's element count.
    """
    shape = bg.shape(name)
    n = math.prod(shape)
    like = bounds[bg.input_name].lower
    B = like.shape[0]
    eye = selector_rows(n, torch.arange(n), B, like)
    A0 = torch.cat([eye, -eye]).reshape((2 * n, B) + shape)
    res = backward_lower(bg, name, A0, bounds, return_input_A=True)
    assert res.bias is not None
    if res.input_A is None:
        zeros = like.new_zeros((n, B) + bg.input_shape)
        return LinearBounds(zeros, res.bias[:n], zeros, -res.bias[n:])
    return LinearBounds(res.input_A[:n], res.bias[:n], -res.input_A[n:], -res.bias[n:])
