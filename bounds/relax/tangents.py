"""Shared machinery of the smooth relaxations (S-shaped, Gelu, Sin/Cos).

Every line these relaxations return is built the same way:

1. choose a **slope** ``a`` (the default CROWN-style slope, or one picked by the optimiser);
2. compute the **exact bias** for that slope: ``min`` (lower line) or ``max`` (upper line) of
   ``h(x) = f(x) - a*x`` over ``[l, u]``, as a *rigorous* bound (:func:`offset_range`).

Step 2 makes every slope sound, so the optimisable parameter can be anything and tangent
points found numerically (bisection, :func:`bisect`) only affect tightness, never soundness.

How the extremum of ``h`` is bounded rigorously: ``R`` is cut into pieces on which ``f`` is
convex or concave (:class:`Piece`). On a convex piece ``h`` is convex, its minimum over the
piece's part of ``[l, u]`` is bracketed by a root finder and bounded from below with tangent
lines of ``h`` (:func:`convex_min_bound`, valid for *any* bracket, tight for a good one). On a
concave piece the minimum sits at an end of the piece's part of ``[l, u]``, i.e. at ``l``,
``u`` or a knot (piece boundary) clamped into ``[l, u]``, all of which are evaluated. Maxima are
symmetric. Regions outside every listed piece must be ones where ``h`` is monotone for every
float64 slope (function tails whose derivative is below the float64 resolution); their ends are
knots too.

Numbers: everything is computed in float64; :func:`finish_lines` then moves each bias outward
by ``2*eps(dtype)*(1 + |b| + |a|*M) + 2**-40*(1 + fscale*M)`` (``M = max(|l|, |u|)``) before
casting to the input dtype. The relative part absorbs the cast and the consumer's own
evaluation of ``a*x + b``; the absolute part absorbs float64 evaluation errors of ``f`` and of
``a*x`` (far below 1e-12 for the inputs these ops see).

The optimisable parameter of every op built by :func:`build_relaxation` is a pair
``alpha = [p_lower, p_upper]`` of *relative slopes*: the slope is
``smin + (smax - smin) * clamp(p, 0, 1)`` where ``[smin, smax]`` is the range of ``f'`` over
``[l, u]`` (which contains every useful slope: chord slopes by the mean value theorem, tangent
slopes trivially). Like a ReLU slope it lives in ``[0, 1]``; any value (NaN included) is sound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Lines, UnaryRelaxation, default_split_mask

WORK = torch.float64
ABS_MARGIN = 2.0**-40
INF = float("inf")
_FMAX = torch.finfo(WORK).max

Fn = Callable[[Tensor], Tensor]
Pair = tuple[Tensor, Tensor]
Quad = tuple[Tensor, Tensor, Tensor, Tensor]


# --------------------------------------------------------------------------- root finding
def bisect(fn: Fn, lo: Tensor, hi: Tensor, steps: int) -> Pair:
    """Vectorised bisection of an increasing ``fn`` on ``[lo, hi]`` (no gradient).

    Keeps the invariant ``fn(lo) <= 0 < fn(hi)`` whenever it holds initially; otherwise the
    bracket shrinks onto the end where the root would be. Callers that need a point on a
    particular side of the root take ``lo`` (``fn <= 0`` side) or ``hi`` (``fn > 0`` side),
    and re-check validity where it matters.

    Returns:
        ``(lo, hi)``, both of the broadcast shape of ``lo`` and ``hi``.
    """
    with torch.no_grad():
        lo, hi = torch.broadcast_tensors(lo.detach(), hi.detach())
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            # w = [fn(mid) <= 0] as 0/1 floats (NaN: 0) and exact selections by lerp:
            # boolean masks and torch.where cost ~15 multiplications each on a CPU.
            v = torch.nan_to_num(fn(mid), nan=1.0)
            w = (1.0 - torch.sign(v)).clamp(max=1.0)
            lo, hi = torch.lerp(lo, mid, w), torch.lerp(mid, hi, w)
    return lo, hi


# alpha-CROWN step scale for relative slopes: one unit spans the whole slope range, so
# steps of the engine's base rate (0.1, tuned for Relu's slope) overshoot. On the zoo
# Sin/Tanh/Gelu MLPs (8 boxes x 3 widths) a 5x smaller step gave the best bounds
# among 1, 1/2, 1/5, 1/10 and 1/20 of it.
SLOPE_LR_SCALE = 0.2


def touch_point(
    f: Fn, df: Fn, x0: Tensor, lo: Tensor, hi: Tensor, increasing: bool, steps: int
) -> Pair:
    """Bracket of the tangent point ``t`` whose tangent passes through ``(x0, f(x0))``.

    Solves ``G(t) = f(t) + f'(t) (x0 - t) - f(x0) = 0`` on ``[lo, hi]``, where ``G`` is
    monotone (increasing when ``increasing``). Returns the bisection bracket oriented so that
    ``G(first) <= G(second)``; which end is the valid tangent point depends on the caller.
    """
    fx0 = f(x0)
    sign = 1.0 if increasing else -1.0

    def g(t: Tensor) -> Tensor:
        """``G`` oriented to increase."""
        return sign * (f(t) + df(t) * (x0 - t) - fx0)

    return bisect(g, lo, hi, steps)


def tangent_gap(f: Fn, df: Fn, t: Tensor, x0: Tensor) -> Tensor:
    """``G(t) = f(t) + f'(t) (x0 - t) - f(x0)``: tangent at ``t`` minus ``f`` at ``x0``."""
    return f(t) + df(t) * (x0 - t) - f(x0)


# --------------------------------------------------------------------------- exact shifts
def convex_min_bound(h: Fn, dh: Fn, s0: Tensor, s1: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Rigorous lower bound of ``min h`` over ``[s0, s1]`` for ``h`` convex there.

    ``lo <= hi`` is any sub-bracket of ``[s0, s1]`` (ideally around the minimiser). Convexity
    gives ``h(y) >= h(x) + h'(x) (y - x)`` for every ``x, y``; this bounds ``[s0, lo]`` with
    the tangent at ``lo`` (exact when ``h'(lo) <= 0``), ``[hi, s1]`` with the tangent at ``hi``
    (exact when ``h'(hi) >= 0``) and ``[lo, hi]`` with the better of both. The result is
    always sound; it is tight (within ``|h'| * (hi - lo)``) when the bracket holds the root.
    """
    h_lo, d_lo = h(lo), dh(lo)
    h_hi, d_hi = h(hi), dh(hi)
    left = torch.where(d_lo <= 0, h_lo, h_lo - d_lo * (lo - s0))
    right = torch.where(d_hi >= 0, h_hi, h_hi + d_hi * (s1 - hi))
    w = hi - lo
    mid = torch.maximum(h_lo + d_lo.clamp(max=0) * w, h_hi - d_hi.clamp(min=0) * w)
    return torch.minimum(torch.minimum(left, right), mid)


@dataclass(frozen=True)
class Piece:
    """An interval ``[lo, hi]`` (ends may be infinite) on which ``f`` is convex or concave.

    Attributes:
        lo, hi: the piece (a finite bracket where ``root`` is None).
        convex: True for convex, False for concave.
        root: optional closed form of the point of the piece where ``f'(x) = a`` (any value
            is accepted: it is clamped into the piece and only used to place a bracket).
            None: the root is bracketed by bisection.
    """

    lo: float
    hi: float
    convex: bool
    root: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class SmoothShape:
    """Curvature description of one smooth function for :func:`offset_range`.

    Attributes:
        f, df: the function and its derivative, float64, finite on finite inputs.
        pieces: convex/concave pieces; everything outside them must be concave for the
            minimum, convex for the maximum, or a tail where ``h`` is monotone.
        knots: all piece ends (and tail starts); evaluated clamped into ``[l, u]``.
        steps: bisection steps for pieces without a closed-form root.
    """

    f: Fn
    df: Fn
    pieces: tuple[Piece, ...]
    knots: tuple[float, ...]
    steps: int = 22


def _bracket(shape: SmoothShape, piece: Piece, a: Tensor, s0: Tensor, s1: Tensor) -> Pair:
    """A small bracket around the stationary point of ``f - a x`` in ``[s0, s1]``."""
    with torch.no_grad():
        s0, s1, a = s0.detach(), s1.detach(), a.detach()
        if piece.root is not None:
            x = torch.minimum(torch.maximum(piece.root(a), s0), s1)
            delta = 1e-7 * (1.0 + x.abs())
            return torch.clamp(x - delta, min=s0), torch.clamp(x + delta, max=s1)
        sign = 1.0 if piece.convex else -1.0
        return bisect(lambda x: sign * (shape.df(x) - a), s0, s1, shape.steps)


def offset_range(shape: SmoothShape, a_lo: Tensor, a_up: Tensor, l: Tensor, u: Tensor) -> Pair:
    """Rigorous ``(min_x f(x) - a_lo x, max_x f(x) - a_up x)`` over ``[l, u]`` (finite).

    The first is a lower bound of the true minimum, the second an upper bound of the true
    maximum, so ``a_lo x + first <= f(x) <= a_up x + second`` on ``[l, u]``.

    The values are computed without autograd; their gradient (for alpha-CROWN) comes from
    the envelope theorem: ``d/da min_x h = -x*`` at the extreme point ``x*``, and
    ``d/dl = h'(l)`` when ``x* = l`` (likewise ``u``). That keeps the many bracketing
    temporaries out of the autograd graph (on eran's 6x200 Sigmoid net, alpha-CROWN with
    intermediate parameters needed twice the memory when they were in it).
    """
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (a_lo, a_up, l, u))
    out = []
    for a, lower in ((a_lo, True), (a_up, False)):
        with torch.no_grad():
            value, x = _extreme(shape, a.detach(), l.detach(), u.detach(), lower)
        if grad:
            a_b, l_b, u_b = torch.broadcast_tensors(a, l, u)
            x = torch.where(x == l_b, l_b, torch.where(x == u_b, u_b, x))  # d/dl, d/du
            h = shape.f(x) - a_b * x
            value = value + (h - h.detach())
        out.append(value)
    return out[0], out[1]


def _extreme(shape: SmoothShape, a: Tensor, l: Tensor, u: Tensor, lower: bool) -> Pair:
    """One side of :func:`offset_range` (``lower``: minimum of ``h``, else maximum).

    Returns the rigorous bound and (approximately) where it is attained: an end, a knot
    or the middle of a piece's stationary-point bracket.
    """
    sgn = 1.0 if lower else -1.0

    def h(x: Tensor) -> Tensor:
        """``f - a x`` (negated for the maximum)."""
        return sgn * (shape.f(x) - a * x)

    def dh(x: Tensor) -> Tensor:
        """Derivative of ``h``."""
        return sgn * (shape.df(x) - a)

    a, l, u = torch.broadcast_tensors(a, l, u)
    points = [l, u] + [torch.minimum(l.clamp(min=k), u) for k in shape.knots]
    values = [h(x) for x in points]
    for piece in shape.pieces:
        if piece.convex != lower:
            continue
        s0 = torch.minimum(l.clamp(min=piece.lo), u)
        s1 = torch.maximum(u.clamp(max=piece.hi), l)
        lo, hi = _bracket(shape, piece, a, s0, s1)
        values.append(convex_min_bound(h, dh, s0, s1, lo, hi))
        points.append(0.5 * (lo + hi))
    stacked = torch.stack(values)
    best, where = stacked.min(0, keepdim=True)
    x = torch.stack(points).gather(0, where)[0]
    return sgn * best[0], x


# --------------------------------------------------------------------------- numbers
def eps_of(dtype: torch.dtype) -> float:
    """Relative rounding unit used for outward margins of ``dtype``."""
    return max(torch.finfo(dtype).eps, 2.0**-52)


def finite_abs_max(l: Tensor, u: Tensor) -> Tensor:
    """``max(|l|, |u|)`` counting infinite ends as 0."""
    # nan_to_num instead of isfinite + where (same values, a fraction of the time on a CPU)
    al = torch.nan_to_num(l.abs(), nan=0.0, posinf=0.0)
    au = torch.nan_to_num(u.abs(), nan=0.0, posinf=0.0)
    return torch.maximum(al, au)


def round_outward(x: Tensor, dtype: torch.dtype, extra: Tensor | float, down: bool) -> Tensor:
    """Cast float64 ``x`` to ``dtype`` so that the result is ``<= x`` (``down``) or ``>= x``.

    Moves ``x`` by ``2*eps*(1 + |x|) + extra`` first (which dominates the cast's rounding);
    infinite values stay as they are.
    """
    # The relative part is 0 where x is not finite (nan_to_num: isfinite + where cost more).
    rel = torch.nan_to_num(2.0 * eps_of(dtype) * (1.0 + x.abs()), nan=0.0, posinf=0.0)
    margin = rel + extra
    return (x - margin if down else x + margin).to(dtype)


def chord_slope(f: Fn, df: Fn, l: Tensor, u: Tensor) -> Tensor:
    """``(f(u) - f(l)) / (u - l)``; the derivative at the midpoint for (near-)zero width."""
    w = u - l
    wide = w > 1e-9 * (1.0 + torch.maximum(l.abs(), u.abs()))
    k = (f(u) - f(l)) / torch.where(wide, w, 1.0)
    return torch.where(wide, k, df(0.5 * (l + u)))


def relative_slope(s: Tensor, smin: Tensor, smax: Tensor) -> Tensor:
    """Inverse of the slope map of :func:`build_relaxation`: ``(s - smin)/(smax - smin)``."""
    span = smax - smin
    p = (s - smin) / torch.where(span > 0, span, 1.0)
    return torch.where(span > 0, p.clamp(0.0, 1.0), 0.5)


def absolute_slope(p: Tensor, smin: Tensor, smax: Tensor) -> Tensor:
    """``smin + (smax - smin) * clamp(p, 0, 1)``; NaN ``p`` counts as 0.5."""
    p = torch.nan_to_num(p, nan=0.5).clamp(0.0, 1.0)
    return smin + (smax - smin) * p


# --------------------------------------------------------------------------- builder
@dataclass(frozen=True)
class SlopeFamily:
    """What :func:`build_relaxation` needs to know about one smooth op (all float64).

    Attributes:
        interval: exact ``(min, max)`` of ``f`` over ``[l, u]``; any (also infinite) bounds.
        slope_range: ``(min, max)`` of ``f'`` over finite ``[l, u]``.
        default_slopes: the default (lower, upper) slopes on finite ``[l, u]``.
        offsets: ``(a_lo, a_up, l, u) -> (b_lo, b_up)`` rigorous exact biases.
        fscale: ``|f(x)| <= 1 + fscale*|x|`` (sizes the float64 error margin).
        limits: the range of ``f`` (intervals are clamped into it).
        max_abs: entries with ``max(|l|, |u|)`` above this get constant lines.
        lines64: optional fused form of ``slope_range``, the slope map and ``offsets``:
            ``(p, l, u, dtype) -> (a_lo, a_up, b_lo, b_up)`` on finite float64 ``l, u`` with
            relative slopes ``p`` (``[2, ...]``), slopes rounded to ``dtype``, rigorous biases
            (before :func:`relax_lines`' outward margins). Lets an op share ``f(l), f(u)``
            between the slope range and the biases.
        compiled: optional compiled form of the whole of :func:`relax_lines`:
            ``(l, u, alpha, eps) -> Lines``, or None where it does not apply (then the torch
            path runs); ``eps`` is :func:`eps_of` the dtype.
        compiled_default: likewise for :func:`default_alpha`.
    """

    interval: Callable[[Tensor, Tensor], Pair]
    slope_range: Callable[[Tensor, Tensor], Pair]
    default_slopes: Callable[[Tensor, Tensor], Pair]
    offsets: Callable[[Tensor, Tensor, Tensor, Tensor], Pair]
    fscale: float = 0.0
    limits: tuple[float, float] = (-INF, INF)
    max_abs: float = INF
    lines64: Callable[[Tensor, Tensor, Tensor, torch.dtype], Quad] | None = None
    compiled: Callable[[Tensor, Tensor, Tensor | None, float], Lines | None] | None = None
    compiled_default: Callable[[Tensor, Tensor], Tensor | None] | None = None


def exact_interval(family: SlopeFamily, l: Tensor, u: Tensor) -> Pair:
    """``family.interval`` rounded outward to the dtype of ``l`` and clamped to the range."""
    l64, u64 = l.to(WORK), u.to(WORK)
    lo, hi = family.interval(l64, u64)
    extra = ABS_MARGIN * (1.0 + family.fscale * finite_abs_max(l64, u64))
    lo = round_outward(lo, l.dtype, extra, down=True).clamp(min=family.limits[0])
    hi = round_outward(hi, l.dtype, extra, down=False).clamp(max=family.limits[1])
    return lo, hi


def default_alpha(family: SlopeFamily, l: Tensor, u: Tensor) -> Tensor:
    """``[2, *l.shape]`` relative slopes of the default relaxation (dtype of ``l``)."""
    if family.compiled_default is not None:
        p = family.compiled_default(l, u)
        if p is not None:
            return p
    l64, u64, _, _ = finite_box(l, u, family.max_abs)
    return _default_p(family, l64, u64).to(l.dtype)


def _default_p(family: SlopeFamily, l64: Tensor, u64: Tensor) -> Tensor:
    """:func:`default_alpha` on the float64 box of :func:`finite_box` (float64)."""
    with torch.no_grad():
        smin, smax = family.slope_range(l64, u64)
        s_lo, s_up = family.default_slopes(l64, u64)
        return torch.stack([relative_slope(s_lo, smin, smax), relative_slope(s_up, smin, smax)])


def finite_box(l: Tensor, u: Tensor, max_abs: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Float64 ``l``, ``u``, the mask of entries relaxed by constant lines, ``max(|l|, |u|)``.

    Entries with an infinite or NaN end or ``max(|l|, |u|) > max_abs`` are flagged and
    replaced by ``0`` (so the line computations stay finite and NaN-free, also in the
    gradient); their ``max(|l|, |u|)`` is 0 too.
    """
    l64, u64 = l.to(WORK), u.to(WORK)
    m = torch.maximum(l64.abs(), u64.abs())
    const = ~(m <= min(max_abs, _FMAX))  # infinite or NaN ends too
    if bool(const.any()):
        l64, u64 = torch.where(const, 0.0, l64), torch.where(const, 0.0, u64)
        m = torch.where(const, 0.0, m)
    return l64, u64, const, m


def relax_lines(family: SlopeFamily, l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Sound lines of ``f`` on ``[l, u]`` for relative slopes ``alpha`` (default if None)."""
    if family.compiled is not None:
        lines = family.compiled(l, u, alpha, eps_of(l.dtype))
        if lines is not None:
            return lines
    dtype = l.dtype
    l64, u64, const, m = finite_box(l, u, family.max_abs)
    if alpha is None:  # as :func:`default_alpha` returns them (in ``dtype``)
        p = _default_p(family, l64, u64).to(dtype).to(WORK)
    else:
        p = alpha.to(WORK)
    if family.lines64 is not None:
        a_lo, a_up, b_lo, b_up = family.lines64(p, l64, u64, dtype)
    else:
        smin, smax = family.slope_range(l64, u64)
        a_lo = absolute_slope(p[0], smin, smax).to(dtype).to(WORK)
        a_up = absolute_slope(p[1], smin, smax).to(dtype).to(WORK)
        b_lo, b_up = family.offsets(a_lo, a_up, l64, u64)
    # Outward margins (the biases are finite: finite box, finite slopes, finite f).
    e = 2.0 * eps_of(dtype)
    base = ABS_MARGIN * (1.0 + family.fscale * m) if family.fscale else ABS_MARGIN
    lb = (b_lo - (e * (1.0 + b_lo.abs() + a_lo.abs() * m) + base)).to(dtype)
    ub = (b_up + (e * (1.0 + b_up.abs() + a_up.abs() * m) + base)).to(dtype)
    lw, uw = a_lo.to(dtype), a_up.to(dtype)
    if bool(const.any()):
        c_lo, c_hi = exact_interval(family, l, u)
        lw, uw = torch.where(const, 0.0, lw).to(dtype), torch.where(const, 0.0, uw).to(dtype)
        lb, ub = torch.where(const, c_lo, lb), torch.where(const, c_hi, ub)
    return Lines(lw=lw, lb=lb, uw=uw, ub=ub)


def build_relaxation(op: str, fn: Fn, family: SlopeFamily) -> UnaryRelaxation:
    """The :class:`UnaryRelaxation` of ``op`` from its :class:`SlopeFamily` (``n_alpha=2``)."""

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        """Sound lines on ``[l, u]`` (see :func:`relax_lines`)."""
        return relax_lines(family, l, u, alpha)

    def alpha_init(l: Tensor, u: Tensor) -> Tensor:
        """Relative slopes of the default relaxation."""
        return default_alpha(family, l, u)

    def interval(l: Tensor, u: Tensor) -> Pair:
        """Exact interval, rounded outward."""
        return exact_interval(family, l, u)

    return UnaryRelaxation(
        op=op,
        fn=fn,
        relax=relax,
        n_alpha=2,
        alpha_init=alpha_init,
        splittable=True,
        split_mask=default_split_mask,
        interval=interval,
        alpha_range=(0.0, 1.0),
        alpha_lr_scale=SLOPE_LR_SCALE,
    )
