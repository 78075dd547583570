"""McCormick relaxation of the product ``x*y`` of two perturbed values.

On the box ``[xl, xu] x [yl, yu]`` the four McCormick planes come from the
products of non-negative factors:

* ``(x - xl)(y - yl) >= 0``: ``xy >= yl*x + xl*y - xl*yl`` (lower, ``r = 1``);
* ``(xu - x)(yu - y) >= 0``: ``xy >= yu*x + xu*y - xu*yu`` (lower, ``r = 0``);
* ``(x - xl)(yu - y) >= 0``: ``xy <= yu*x + xl*y - xl*yu`` (upper, ``r' = 1``);
* ``(xu - x)(y - yl) >= 0``: ``xy <= yl*x + xu*y - xu*yl`` (upper, ``r' = 0``).

The relaxation mixes each pair with weights ``r = alpha[0]`` (lower) and
``r' = alpha[1]`` (upper), clamped to ``[0, 1]``; coefficients are linear in the
weights (REFERENCE §1.d "Mul x·y"). A plane needs only two of the four bounds to be
finite; where one plane of a pair is unusable the other is used whatever the
weight, and where both are, the plane is the constant interval bound.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Planes

MUL_N_ALPHA = 2

Plane = tuple[Tensor, Tensor, Tensor]


def _product(a: Tensor, b: Tensor) -> Tensor:
    """``a*b`` with ``0 * inf = 0`` (the factors stand for finite real values)."""
    zero = (a == 0) | (b == 0)
    return torch.where(zero, 0.0, torch.where(zero, 1.0, a) * torch.where(zero, 1.0, b))


def mul_interval(xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor) -> tuple[Tensor, Tensor]:
    """Exact range ``(lo, hi)`` of ``x*y`` on the box (broadcast shapes)."""
    xl, xu, yl, yu = torch.broadcast_tensors(xl, xu, yl, yu)
    prods = torch.stack([_product(xl, yl), _product(xl, yu), _product(xu, yl), _product(xu, yu)])
    return prods.amin(0), prods.amax(0)


def mul_alpha_init(xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor) -> Tensor:
    """Default weights ``r = r' = 1``: shape ``[MUL_N_ALPHA, *broadcast shape]``."""
    shape = torch.broadcast_shapes(xl.shape, xu.shape, yl.shape, yu.shape)
    return torch.ones((MUL_N_ALPHA, *shape), dtype=xl.dtype, device=xl.device)


def _plane(cx: Tensor, cy: Tensor) -> tuple[Plane, Tensor]:
    """Plane ``cx*x + cy*y - cx*cy`` (``cx`` a y-bound, ``cy`` an x-bound) and its validity.

    The plane is usable iff both are finite. Unusable planes are returned as zeros so
    that mixing them never produces NaN.
    """
    ok = torch.isfinite(cx) & torch.isfinite(cy)
    ax, ay = torch.where(ok, cx, 0.0), torch.where(ok, cy, 0.0)
    return (ax, ay, -ax * ay), ok


def _mix(p1: tuple[Plane, Tensor], p0: tuple[Plane, Tensor], r: Tensor, const: Tensor) -> Plane:
    """``r*p1 + (1-r)*p0`` where both are usable; the usable one, or ``(0, 0, const)``."""
    (a1, ok1), (a0, ok0) = p1, p0
    w = torch.where(ok1 & ok0, r, torch.where(ok1, 1.0, 0.0))
    none = ~ok1 & ~ok0
    ax, ay, c = (w * c1 + (1 - w) * c0 for c1, c0 in zip(a1, a0, strict=True))
    return torch.where(none, 0.0, ax), torch.where(none, 0.0, ay), torch.where(none, const, c)


def relax_mul(
    xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor, alpha: Tensor | None = None
) -> Planes:
    """McCormick planes of ``x*y`` on ``[xl, xu] x [yl, yu]``.

    Args:
        xl, xu, yl, yu: bounds, mutually broadcastable (``xl <= xu``, ``yl <= yu``;
            infinite bounds allowed).
        alpha: ``[MUL_N_ALPHA, *S]`` weights ``(r, r')``, ``S`` broadcasting against the
            bounds; any real value is sound (clamped to ``[0, 1]``; NaN counts as 0).
            ``None`` means ``r = r' = 1``.

    Returns:
        :class:`Planes` with ``lx*x + ly*y + lc <= x*y <= ux*x + uy*y + uc`` on the box,
        all of the broadcast shape; never NaN.
    """
    if alpha is None:
        alpha = mul_alpha_init(xl, xu, yl, yu)
    if alpha.dim() < 1 or alpha.shape[0] < MUL_N_ALPHA:
        raise ValueError(f"alpha must have shape [{MUL_N_ALPHA}, *S], got {tuple(alpha.shape)}")
    shape = torch.broadcast_shapes(xl.shape, xu.shape, yl.shape, yu.shape, alpha.shape[1:])
    xl, xu, yl, yu = (t.expand(shape) for t in (xl, xu, yl, yu))
    weights = torch.nan_to_num(alpha.to(xl.dtype)).clamp(0.0, 1.0)
    r, rp = weights[0].expand(shape), weights[1].expand(shape)
    lo, hi = mul_interval(xl, xu, yl, yu)
    lx, ly, lc = _mix(_plane(yl, xl), _plane(yu, xu), r, lo)
    ux, uy, uc = _mix(_plane(yu, xl), _plane(yl, xu), rp, hi)
    return Planes(lx, ly, lc, ux, uy, uc)
