"""Products of two perturbed tensors in bound propagation: ``Mul`` and ``MatMul``.

Both use the McCormick planes of :mod:`bounds.relax.bilinear` for every scalar
product ``x_i * y_j`` (weights ``r`` for the lower pair and ``r'`` for the upper
pair, REFERENCE §1.d). With finite operand bounds the planes are, written around
the ``r = 0`` planes,

* lower: ``(yu + r (yl - yu)) x + (xu + r (xl - xu)) y - xu yu - r (xl yl - xu yu)``;
* upper: ``(yl + r' (yu - yl)) x + (xu + r' (xl - xu)) y - xu yl - r' (xl yu - xu yl)``,

so a backward step is a handful of products with the coefficients' positive and
negative parts. For ``MatMul`` (``Z = X @ Y``, ``Z_ij = sum_t X_it Y_tj``) the sums
over the shared axis are contractions: without parameters the step is three matrix
products and never forms the ``[rows, ..., n, k, m]`` tensor of per-term planes;
with parameters (alpha-CROWN: ``[2, S, B, ..., n, k, m]``, one pair per scalar
product as in the elementwise form) it forms the two weighted tensors ``pos * r``
and ``neg * r'`` and contracts them. The planes are the same as those of the
elementwise rewrite ``ReduceSum(Mul(X[..., None], Y[..., None, :, :]))``, so the
bounds are identical up to float rounding. Operand bounds that are not all finite
take the elementwise path (:func:`bounds.relax.bilinear.relax_mul` handles them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ops.backward import sum_to
from .relax.bilinear import MUL_N_ALPHA, mul_interval, relax_mul
from .types import Bounds, BoundsError, all_finite, mul_guarded

Shape = tuple[int, ...]


def _flat_sum(t: Tensor) -> Tensor:
    return t.flatten(2).sum(-1) if t.dim() > 2 else t


def _weights(alpha: Tensor) -> tuple[Tensor, Tensor]:
    """``(r, r')`` clamped to ``[0, 1]`` (NaN counts as 0), as in ``relax_mul``."""
    if alpha.dim() < 1 or alpha.shape[0] < MUL_N_ALPHA:
        raise ValueError(f"alpha must have shape [{MUL_N_ALPHA}, *S], got {tuple(alpha.shape)}")
    with torch.no_grad():
        inside = bool(((alpha >= 0) & (alpha <= 1)).all())  # False for NaN
    w = alpha if inside else torch.nan_to_num(alpha).clamp(0.0, 1.0)
    r, rp = w[:MUL_N_ALPHA].unbind(0)  # one gradient copy, not one per selected row
    return r, rp


# ------------------------------------------------------------------ Mul (elementwise)
def mul_step(
    a: Tensor, x: Bounds, y: Bounds, alpha: Tensor | None, xshape: Shape, yshape: Shape
) -> tuple[Tensor, Tensor, Tensor]:
    """Backward step of ``z = x * y`` (broadcasting): coefficients for ``x``, ``y``, bias.

    Args:
        a: ``[S, B, *shape(z)]`` coefficients of the objective w.r.t. ``z``.
        x, y: operand bounds, ``[B, *xshape]`` and ``[B, *yshape]``.
        alpha: ``[2, S, B, *shape(z)]`` plane weights or None (``r = r' = 1``).
        xshape, yshape: per-sample operand shapes (the coefficients are summed back).

    Returns:
        ``(ax [S, B, *xshape], ay [S, B, *yshape], bias [S, B])``: for every ``x, y`` in
        their boxes, ``a·(x*y) >= ax·x + ay·y + bias``.
    """
    xl, xu, yl, yu = x.lower, x.upper, y.lower, y.upper
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if not all_finite(xl, xu, yl, yu):
        p = relax_mul(xl, xu, yl, yu, alpha)
        ax = sum_to(pos * p.lx + neg * p.ux, xshape)
        ay = sum_to(pos * p.ly + neg * p.uy, yshape)
        return ax, ay, _flat_sum(mul_guarded(pos, p.lc) + mul_guarded(neg, p.uc))
    if alpha is None:
        cx = pos * yl + neg * yu
        return sum_to(cx, xshape), sum_to(a * xl, yshape), -_flat_sum(cx * xl)
    r, rp = _weights(alpha.to(a.dtype))
    dy, dx = yl - yu, xl - xu
    pr, nr = pos * r, neg * rp
    cx = pos * yu + neg * yl + (pr - nr) * dy
    cy = a * xu + (pr + nr) * dx
    bias = pos * (xu * yu) + neg * (xu * yl) + pr * (xl * yl - xu * yu) + nr * (xl * yu - xu * yl)
    return sum_to(cx, xshape), sum_to(cy, yshape), -_flat_sum(bias)


# ------------------------------------------------------------------ MatMul
def _full_rank(t: Tensor, rank: int) -> Tensor:
    """``[B, *s]`` with singleton dims inserted after ``B`` up to ``1 + rank`` dims."""
    extra = rank - (t.dim() - 1)
    return t.reshape(t.shape[:1] + (1,) * extra + t.shape[1:]) if extra > 0 else t


def matmul_shapes(xshape: Shape, yshape: Shape) -> tuple[Shape, Shape]:
    """Output shape of ``X @ Y`` and the shape of its per-term tensor ``[..., n, k, m]``."""
    if len(xshape) < 2 or len(yshape) < 2:
        raise BoundsError("MatMul of two perturbed operands needs both to be at least 2-D")
    if xshape[-1] != yshape[-2]:
        raise BoundsError(f"MatMul shapes {xshape} and {yshape} do not match")
    batch = tuple(torch.broadcast_shapes(xshape[:-2], yshape[:-2]))
    n, k, m = xshape[-2], xshape[-1], yshape[-1]
    return batch + (n, m), batch + (n, k, m)


def matmul_interval(x: Bounds, y: Bounds) -> Bounds:
    """Interval of ``X @ Y``: the sum over the shared axis of each term's exact range."""
    rank = max(x.lower.dim(), y.lower.dim()) - 1
    xl, xu = (_full_rank(t, rank).unsqueeze(-1) for t in (x.lower, x.upper))
    yl, yu = (_full_rank(t, rank).unsqueeze(-3) for t in (y.lower, y.upper))
    lo, hi = mul_interval(xl, xu, yl, yu)
    return Bounds(lo.sum(-2), hi.sum(-2))


def product_alpha_init(op: str, x: Bounds, y: Bounds) -> Tensor:
    """Default weights ``r = r' = 1``: ``[2, B, *per-term shape]`` (``[..., n, k, m]`` for
    ``MatMul``, the broadcast shape for ``Mul``)."""
    xl, yl = x.lower, y.lower
    if op == "MatMul":
        _, terms = matmul_shapes(tuple(xl.shape[1:]), tuple(yl.shape[1:]))
        shape = (max(xl.shape[0], yl.shape[0]),) + terms
    else:
        shape = tuple(torch.broadcast_shapes(xl.shape, yl.shape))
    return torch.ones((MUL_N_ALPHA,) + shape, dtype=xl.dtype, device=xl.device)


def _t(m: Tensor) -> Tensor:
    return m.transpose(-1, -2)


def matmul_step(
    a: Tensor, x: Bounds, y: Bounds, alpha: Tensor | None, xshape: Shape, yshape: Shape
) -> tuple[Tensor, Tensor, Tensor]:
    """Backward step of ``Z = X @ Y`` with McCormick planes per term ``X_it Y_tj``.

    Args:
        a: ``[S, B, *batch, n, m]`` coefficients of the objective w.r.t. ``Z``.
        x, y: operand bounds ``[B, *xshape]`` (``[..., n, k]``), ``[B, *yshape]``
            (``[..., k, m]``); batch dimensions broadcast as in ``torch.matmul``.
        alpha: ``[2, S, B, *batch, n, k, m]`` plane weights per term, or None
            (``r = r' = 1``); any value is sound.
        xshape, yshape: per-sample operand shapes.

    Returns:
        ``(ax [S, B, *xshape], ay [S, B, *yshape], bias [S, B])`` with
        ``a·(X @ Y) >= ax·X + ay·Y + bias`` for all ``X, Y`` in their boxes.
    """
    rank = a.dim() - 2
    xl, xu = (_full_rank(t, rank) for t in (x.lower, x.upper))
    yl, yu = (_full_rank(t, rank) for t in (y.lower, y.upper))
    if not all_finite(xl, xu, yl, yu):
        return _matmul_elementwise(a, Bounds(xl, xu), Bounds(yl, yu), alpha, xshape, yshape)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if alpha is None:
        ax = pos @ _t(yl) + neg @ _t(yu)
        ay = _t(xl) @ a
        bias = -(pos * (xl @ yl) + neg * (xl @ yu))
        return sum_to(ax, xshape), sum_to(ay, yshape), _flat_sum(bias)
    r, rp = _weights(alpha.to(a.dtype))
    r1 = pos.unsqueeze(-2) * r  # [S, B, ..., n, k, m]
    r2 = neg.unsqueeze(-2) * rp
    # Sums over one axis of the per-term tensors as products with broadcast operand
    # bounds: a contraction over ``i`` alone is a batch of tiny matrix products.
    ax = pos @ _t(yu) + neg @ _t(yl) + ((r1 - r2) * (yl - yu).unsqueeze(-3)).sum(-1)
    ay = _t(xu) @ a + ((r1 + r2) * (xl - xu).unsqueeze(-1)).sum(-3)
    xl3, xu3, yl3, yu3 = xl.unsqueeze(-1), xu.unsqueeze(-1), yl.unsqueeze(-3), yu.unsqueeze(-3)
    bias = _flat_sum(pos * (xu @ yu) + neg * (xu @ yl))
    extra = _flat_sum(r1 * (xl3 * yl3 - xu3 * yu3)) + _flat_sum(r2 * (xl3 * yu3 - xu3 * yl3))
    return sum_to(ax, xshape), sum_to(ay, yshape), -(bias + extra)


def _matmul_elementwise(
    a: Tensor, x: Bounds, y: Bounds, alpha: Tensor | None, xshape: Shape, yshape: Shape
) -> tuple[Tensor, Tensor, Tensor]:
    """The per-term form (forms ``[S, B, ..., n, k, m]``); handles infinite bounds."""
    xl, xu = x.lower.unsqueeze(-1), x.upper.unsqueeze(-1)
    yl, yu = y.lower.unsqueeze(-3), y.upper.unsqueeze(-3)
    p = relax_mul(xl, xu, yl, yu, alpha)
    pos, neg = a.unsqueeze(-2).clamp(min=0), a.unsqueeze(-2).clamp(max=0)
    ax = (pos * p.lx + neg * p.ux).sum(-1)
    ay = (pos * p.ly + neg * p.uy).sum(-3)
    bias = _flat_sum(mul_guarded(pos, p.lc) + mul_guarded(neg, p.uc))
    return sum_to(ax, xshape), sum_to(ay, yshape), bias
