"""The branching-point objective and a vectorised optimiser for it.

Objective (REFERENCE §1.c): splitting the branched input's interval ``[l, u]`` at
``p`` gives two boxes; on each, the op's default linear relaxation leaves a gap
between its upper and lower line (plane for ``x*y``). The objective is the total
area (volume) of both gaps. Because a gap is linear in the inputs, its integral
over a box is the box measure times the gap at the box centre, which is the
closed form used here.

Relaxations are passed in as functions (lut/ never imports bounds/):

* :data:`Relax1D`: ``(l, u) -> (lw, lb, uw, ub)`` elementwise tensors with
  ``lw*x + lb <= f(x) <= uw*x + ub`` on ``[l, u]``;
* :data:`RelaxMul`: ``(xl, xu, yl, yu) -> (lx, ly, lc, ux, uy, uc)``, planes
  bounding ``x*y`` on the box.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Relax1D = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]
RelaxMul = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, ...]]
Objective = Callable[[Tensor], Tensor]

INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def gap_area(relax: Relax1D, a: Tensor, b: Tensor) -> Tensor:
    """Area between the upper and lower relaxation lines on ``[a, b]`` (0 when a == b)."""
    lw, lb, uw, ub = relax(a, b)
    width = b - a
    gap_mid = (uw - lw) * (a + b) * 0.5 + (ub - lb)
    return torch.where(width > 0, width * gap_mid, torch.zeros_like(width))


def gap_volume(relax_mul: RelaxMul, xa: Tensor, xb: Tensor, yl: Tensor, yu: Tensor) -> Tensor:
    """Volume between the upper and lower planes of ``x*y`` over ``[xa, xb] x [yl, yu]``."""
    lx, ly, lc, ux, uy, uc = relax_mul(xa, xb, yl, yu)
    measure = (xb - xa) * (yu - yl)
    gap_mid = (ux - lx) * (xa + xb) * 0.5 + (uy - ly) * (yl + yu) * 0.5 + (uc - lc)
    return torch.where(measure > 0, measure * gap_mid, torch.zeros_like(measure))


def split_point(l: Tensor, u: Tensor, t: Tensor) -> Tensor:
    """``l + t*(u - l)``, kept within ``[l, u]``."""
    return torch.minimum(torch.maximum(l + t * (u - l), l), u)


def split_objective_1d(relax: Relax1D, l: Tensor, u: Tensor) -> Objective:
    """``t -> total gap area`` when ``[l, u]`` is split at fraction ``t``."""

    def objective(t: Tensor) -> Tensor:
        p = split_point(l, u, t)
        return gap_area(relax, l, p) + gap_area(relax, p, u)

    return objective


def split_objective_mul(
    relax_mul: RelaxMul, xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor
) -> Objective:
    """``t -> total gap volume`` when ``x``'s interval is split at fraction ``t``."""

    def objective(t: Tensor) -> Tensor:
        p = split_point(xl, xu, t)
        return gap_volume(relax_mul, xl, p, yl, yu) + gap_volume(relax_mul, p, xu, yl, yu)

    return objective


def _finite_or_inf(v: Tensor) -> Tensor:
    return torch.where(torch.isnan(v), torch.full_like(v, math.inf), v)


def optimise_fraction(
    objective: Objective, like: Tensor, coarse: int = 32, golden: int = 24
) -> tuple[Tensor, Tensor]:
    """Minimise ``objective(t)`` over ``t`` in ``(0, 1)``, elementwise and vectorised.

    A scan of ``coarse - 1`` equally spaced fractions (the midpoint included when
    ``coarse`` is even) brackets the best candidate; ``golden`` golden-section
    steps refine it inside the bracket. The result is never worse than the best
    scanned fraction, hence never worse than the midpoint for even ``coarse``.

    Args:
        objective: ``t -> values``; ``t`` and the result have the shape of ``like``.
        like: tensor giving shape, dtype and device of the problem batch.
        coarse: number of scan cells (>= 2).
        golden: number of golden-section steps (one objective call each).

    Returns:
        ``(t, value)``: best fraction and its objective value (NaN counted as +inf).
    """
    if coarse < 2:
        raise ValueError("coarse must be >= 2")
    best_t = torch.full_like(like, 0.5)
    best_v = torch.full_like(like, math.inf)
    # Central fractions first: ties (e.g. a zero objective) resolve towards the midpoint.
    for k in sorted(range(1, coarse), key=lambda k: (abs(2 * k - coarse), k)):
        t = torch.full_like(like, k / coarse)
        v = _finite_or_inf(objective(t))
        better = v < best_v
        best_t, best_v = torch.where(better, t, best_t), torch.where(better, v, best_v)
    a = (best_t - 1.0 / coarse).clamp(min=0.0)
    b = (best_t + 1.0 / coarse).clamp(max=1.0)
    c, d = b - INV_PHI * (b - a), a + INV_PHI * (b - a)
    fc, fd = _finite_or_inf(objective(c)), _finite_or_inf(objective(d))
    for _ in range(golden):
        left = fc <= fd
        a = torch.where(left, a, c)
        b = torch.where(left, d, b)
        d_new = torch.where(left, c, a + INV_PHI * (b - a))
        c_new = torch.where(left, b - INV_PHI * (b - a), d)
        x = torch.where(left, c_new, d_new)
        fx = _finite_or_inf(objective(x))
        fd, fc = torch.where(left, fc, fx), torch.where(left, fx, fd)
        c, d = c_new, d_new
    for t, v in ((c, fc), (d, fd)):
        better = v < best_v
        best_t, best_v = torch.where(better, t, best_t), torch.where(better, v, best_v)
    return best_t, best_v
