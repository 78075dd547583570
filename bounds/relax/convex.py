"""Relaxations of smooth convex/concave ops: Exp, Log, Reciprocal, Sqrt, Pow.

Convex pieces get a tangent lower line and a chord upper line; concave pieces the
reverse. The tangent point is the optimisable parameter (``alpha[0]``, a point in
``x``-space, clamped into ``[l, u]``). Integer powers, which are neither convex
nor concave when odd, choose a slope and then compute the *exact* bias over a
finite candidate set (endpoints and stationary points of ``x**n - a*x``), so
they are sound for every slope.

The generic helpers at the top (:func:`prepare`, :func:`finish`, :func:`chord`,
...) are shared with :mod:`bounds.relax.piecewise`.

Soundness notes:

* every returned line passes :func:`finish`, which replaces any non-finite or NaN
  coefficient by the constant line at the exact interval bound (so no NaN ever
  leaves this module, and overflow degrades to the interval bound);
* infinite ``l``/``u`` are handled by tail slopes in :func:`chord` (e.g. the chord
  of Exp on ``(-inf, u]`` is the constant ``exp(u)``);
* Sqrt and non-integer powers are defined for ``x >= 0``: a negative lower bound
  is clamped to 0 (the lines bound the op wherever it is defined; ONNX gives NaN
  below 0) and only ``u < 0`` raises :class:`DomainError`. Log, Reciprocal and
  negative powers are unbounded at 0 and raise when ``[l, u]`` reaches 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .base import Lines, UnaryRelaxation, default_split_mask
from .common import (
    INF,
    Pair,
    _fields,
    _tangent_point,
    check_positive,
    chord,
    clamp_nonneg,
    clamp_point,
    finish,
    finite_width,
    interior_point,
    point_init,
    pow0,
    prepare,
    reflect,
    safe,
    select,
)


# --------------------------------------------------------------------------- Exp
def _exp_default(l: Tensor, u: Tensor) -> Tensor:
    """REFERENCE default tangent point ``min(m, l + 0.99)``."""
    mid = interior_point(l, u)
    return torch.where(torch.isfinite(l), torch.minimum(mid, safe(l) + 0.99), mid)


def _exp_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Exp: tangent at t (lower), chord (upper).

    No ``exp`` in the graph overflows (an overflow would make gradients NaN): the
    tangent point is capped at ``cap`` (a tangent anywhere is a global under-estimator),
    bounds above ``cap`` are capped for the lower interval bound (``exp(cap) < exp(l)``),
    and an upper bound above ``cap`` gives the upper line ``(0, inf)``.
    """
    l, u, t = _tangent_point(alpha, l, u, point_init(_exp_default))
    big_log = math.log(torch.finfo(l.dtype).max)
    cap = big_log - math.log(big_log) - 1.0  # keeps exp(x) * |1 - x| finite
    t = t.clamp(max=cap)
    et = torch.exp(t)
    over = u > cap
    l, u = l.clamp(max=cap), u.clamp(max=cap)
    fl, fu = torch.exp(l), torch.exp(u)
    d = finite_width(l, u)
    d1 = d.clamp(max=1.0)
    ratio = torch.where(d1 > 0, torch.expm1(d1) / torch.where(d1 > 0, d1, 1.0), 1.0)
    small = torch.exp(safe(l)) * ratio
    big = (torch.exp(safe(u)) - torch.exp(safe(l))) / torch.where(d > 1, d, 1.0)
    uw, ub = chord(l, u, fl, fu, torch.where(d > 1, big, small), (0.0, INF), upper=True)
    uw, ub = torch.where(over, 0.0, uw), torch.where(over, INF, ub)
    return finish(et, et * (1 - t), uw, ub, fl, torch.where(over, INF, fu))


def exp_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Exp (not splittable, as in the reference engine; splitting would be sound)."""
    return UnaryRelaxation(
        op="Exp",
        fn=torch.exp,
        relax=_exp_relax,
        n_alpha=1,
        alpha_init=point_init(_exp_default),
        splittable=False,
        split_mask=default_split_mask,
        interval=lambda l, u: (torch.exp(l), torch.exp(u)),
    )


# --------------------------------------------------------------------------- Log
def _log_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Log (x > 0): chord (lower), tangent at t (upper)."""
    check_positive("Log", l, u, allow_negative=False)
    l, u, t = _tangent_point(alpha, l, u, point_init(interior_point))
    fl, fu = torch.log(l), torch.log(u)
    d = finite_width(l, u)
    ls = safe(l, 1.0)
    k_fin = torch.where(d > 0, torch.log1p(d / ls) / torch.where(d > 0, d, 1.0), 1.0 / ls)
    lw, lb = chord(l, u, fl, fu, k_fin, (INF, 0.0), upper=False)
    return finish(lw, lb, 1.0 / t, torch.log(t) - 1.0, fl, fu)


def log_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Log on x > 0."""
    return UnaryRelaxation(
        op="Log",
        fn=torch.log,
        relax=_log_relax,
        n_alpha=1,
        alpha_init=point_init(interior_point),
        domain=(0.0, INF),
        splittable=False,
        split_mask=default_split_mask,
        interval=lambda l, u: (torch.log(l), torch.log(u)),
    )


# --------------------------------------------------------------------------- Reciprocal
def _recip_positive(l: Tensor, u: Tensor, t: Tensor) -> Lines:
    """1/x on 0 < l <= u: tangent at t (lower), chord (upper)."""
    il, iu = 1.0 / l, 1.0 / u
    return Lines(-1.0 / (t * t), 2.0 / t, -(il * iu), il + iu)


def _recip_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Reciprocal on intervals that are entirely positive or entirely negative."""
    check_positive("Reciprocal", l, u)
    l, u, t = _tangent_point(alpha, l, u, point_init(interior_point))
    neg = u < 0
    g = _recip_positive(torch.where(neg, -u, l), torch.where(neg, -l, u), torch.where(neg, -t, t))
    lines = select(neg, reflect(g, odd=True), g)
    return finish(*_fields(lines), 1.0 / u, 1.0 / l)


def reciprocal_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """1/x; intervals containing 0 raise DomainError (``domain`` is all of R minus 0)."""
    return UnaryRelaxation(
        op="Reciprocal",
        fn=torch.reciprocal,
        relax=_recip_relax,
        n_alpha=1,
        alpha_init=point_init(interior_point),
        split_mask=default_split_mask,
        interval=lambda l, u: (1.0 / u, 1.0 / l),
    )


# --------------------------------------------------------------------------- Sqrt
def _sqrt_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Sqrt (x >= 0): chord (lower), tangent at t > 0 (upper)."""
    l, u = clamp_nonneg("Sqrt", l, u)
    l, u, t = _tangent_point(alpha, l, u, point_init(interior_point))
    st = torch.sqrt(t.clamp(min=torch.finfo(t.dtype).tiny))
    zero = u <= 0
    uw, ub = torch.where(zero, 0.0, 0.5 / st), torch.where(zero, 0.0, 0.5 * st)
    sl, su = pow0(l, 0.5), pow0(u, 0.5)
    fin_u = torch.isfinite(u)
    s = sl + safe(su)
    s_pos = torch.where(s > 0, s, 1.0)
    lw = torch.where(fin_u & (s > 0), 1.0 / s_pos, 0.0)
    lb = torch.where(fin_u, sl * safe(su) / s_pos, sl)
    return finish(lw, lb, uw, ub, sl, su)


def sqrt_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Sqrt on x >= 0 (a negative lower bound is clamped to 0)."""
    return UnaryRelaxation(
        op="Sqrt",
        fn=torch.sqrt,
        relax=_sqrt_relax,
        n_alpha=1,
        alpha_init=point_init(interior_point),
        domain=(0.0, INF),
        splittable=False,
        split_mask=default_split_mask,
        interval=lambda l, u: (torch.sqrt(l.clamp(min=0.0)), torch.sqrt(u.clamp(min=0.0))),
    )


# --------------------------------------------------------------------------- Pow
def _odd_tangent_ratio(n: int) -> float:
    """Root ``r`` in (0, 1) of ``(n-1) r^n + n r^(n-1) = 1`` (scalar bisection, once).

    For odd ``n`` and ``l < 0``, the tangent to ``x**n`` at ``r*|l|`` passes through
    ``(l, l**n)`` (``r = 1/2`` for ``n = 3``).
    """
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if (n - 1) * mid**n + n * mid ** (n - 1) > 1:
            hi = mid
        else:
            lo = mid
    return lo


def _pow_bias(l: Tensor, u: Tensor, n: int, a: Tensor, lower: bool) -> Tensor:
    """Exact ``min`` (lower) / ``max`` (upper) of ``x**n - a*x`` over ``[l, u]``.

    The extrema lie in ``{l, u, +-x1}`` with ``n*x1**(n-1) = a``; the stationary points
    are clamped into ``[l, u]`` (extra interior candidates never hurt) and detached
    (envelope theorem: the gradient of the extreme value w.r.t. ``a`` is ``-x*``).
    """
    even = n % 2 == 0
    x1 = ((a.abs() if even else a.clamp(min=0.0)) / n).pow(1.0 / (n - 1))
    x1 = (x1 * torch.sign(a) if even else x1).detach()
    cands = torch.stack([l, u, clamp_point(x1, l, u), clamp_point(-x1, l, u)])
    cs = safe(cands)
    limit = torch.full_like(cands, INF) if even else torch.where(cands > 0, INF, -INF)
    val = torch.where(torch.isfinite(cands), cs.pow(n) - a * cs, limit)
    return val.amin(0) if lower else val.amax(0)


def _int_pow_relax(n: int) -> Callable[[Tensor, Tensor, Tensor | None], Lines]:
    """Relaxation of ``x**n`` (integer n >= 2): slopes by case, biases exact."""
    ratio = _odd_tangent_ratio(n) if n % 2 else 0.0
    init = _int_pow_init(n, ratio)

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        l, u, rows = prepare(l, u, init(l, u) if alpha is None else alpha, 1 + n % 2)
        ls, us = safe(l), safe(u)
        fin = torch.isfinite(l) & torch.isfinite(u)
        k = torch.where(fin, sum(ls**i * us ** (n - 1 - i) for i in range(n)), 0.0)
        if n % 2 == 0:
            a_lo, a_up = n * clamp_point(rows[0], l, u) ** (n - 1), k
        else:
            cross = (l < 0) & (u > 0)
            dl, du = ratio * -l, ratio * u
            t_lo = clamp_point(rows[0], torch.where(cross, dl, l), u)
            t_up = clamp_point(rows[1], l, torch.where(cross, -du, u))
            a_lo = torch.where((u <= 0) | (cross & (dl >= u)), k, n * t_lo ** (n - 1))
            a_up = torch.where((l >= 0) | (cross & (du >= -l)), k, n * t_up ** (n - 1))
        lb, ub = _pow_bias(l, u, n, a_lo, True), _pow_bias(l, u, n, a_up, False)
        return finish(a_lo, lb, a_up, ub, *_int_pow_interval(n)(l, u))

    return relax


def _int_pow_init(n: int, ratio: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Tangent points: even n: the point of [l, u] nearest 0; odd n: midpoints, or
    the tangent through the far endpoint when crossing 0 (rows: lower, upper)."""

    def init(l: Tensor, u: Tensor) -> Tensor:
        if n % 2 == 0:
            return clamp_point(torch.zeros_like(l), l, u).unsqueeze(0)
        mid, cross = interior_point(l, u), (l < 0) & (u > 0)
        lo = safe(clamp_point(ratio * -l, l, u))
        hi = safe(clamp_point(ratio * -u, l, u))
        return torch.stack([torch.where(cross, lo, mid), torch.where(cross, hi, mid)])

    return init


def _int_pow_interval(n: int) -> Callable[[Tensor, Tensor], Pair]:
    """Exact range of ``x**n`` on ``[l, u]``."""

    def interval(l: Tensor, u: Tensor) -> Pair:
        fl, fu = l.pow(n), u.pow(n)
        if n % 2:
            return fl, fu
        return clamp_point(torch.zeros_like(l), l, u).pow(n), torch.maximum(fl, fu)

    return interval


def _half_pow(l: Tensor, u: Tensor, t: Tensor, p: float) -> Lines:
    """``x**p`` on ``0 <= l <= u`` (``l > 0`` if p < 0): tangent at t and chord."""
    tt = t.clamp(min=torch.finfo(t.dtype).tiny)
    tw, tb = p * tt.pow(p - 1), (1 - p) * tt.pow(p)
    fl, fu = pow0(l, p), pow0(u, p)
    d, ls = finite_width(l, u), safe(l)
    deriv = torch.where(ls > 0, p * torch.where(ls > 0, ls, 1.0).pow(p - 1), 0.0)
    k_fin = torch.where(d > 0, (safe(fu) - fl) / torch.where(d > 0, d, 1.0), deriv)
    convex = p > 1 or p < 0
    cw, cb = chord(l, u, fl, fu, k_fin, (0.0, INF if p > 1 else 0.0), upper=convex)
    if convex:
        return Lines(tw, tb, cw, cb)
    return Lines(cw, cb, tw, tb)


def _real_pow_relax(p: float) -> Callable[[Tensor, Tensor, Tensor | None], Lines]:
    """``x**p`` for non-integer p (x >= 0, or x > 0 if p < 0) and integer p <= -2
    (intervals not containing 0; negative ones by reflection)."""
    integer = p.is_integer()
    init = point_init(interior_point)

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        if p < 0:
            check_positive("Pow", l, u, allow_negative=integer)
        else:
            l, u = clamp_nonneg("Pow", l, u)
        l, u, t = _tangent_point(alpha, l, u, init)
        neg = u < 0
        g = _half_pow(torch.where(neg, -u, l), torch.where(neg, -l, u), torch.where(neg, -t, t), p)
        lines = select(neg, reflect(g, odd=integer and int(p) % 2 == 1), g)
        fl, fu = (l.pow(p), u.pow(p)) if integer else (pow0(l, p), pow0(u, p))
        return finish(*_fields(lines), torch.minimum(fl, fu), torch.maximum(fl, fu))

    return relax


def _linear(op: str, w: float, b: float, fn: Callable[[Tensor], Tensor]) -> UnaryRelaxation:
    """An op that is exactly ``w*x + b`` (Pow with exponent 0 or 1)."""

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        shape = l.shape if alpha is None else torch.broadcast_shapes(l.shape, alpha.shape[1:])
        wt = torch.full(shape, w, dtype=l.dtype, device=l.device)
        bt = torch.full(shape, b, dtype=l.dtype, device=l.device)
        return Lines(wt, bt, wt.clone(), bt.clone())

    return UnaryRelaxation(
        op=op,
        fn=fn,
        relax=relax,
        splittable=False,
        split_mask=lambda l, u: torch.zeros_like(l, dtype=torch.bool),
        interval=lambda l, u: (fn(l), fn(u)),
    )


def pow_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """``x**exponent``: 0 and 1 are linear, 0.5 is Sqrt, -1 is Reciprocal, integers
    >= 2 work on all of R, other exponents on x >= 0 (x > 0 when negative), and
    negative integers on intervals not containing 0."""
    if "exponent" not in attrs:
        raise ValueError("Pow: attribute 'exponent' is required (a float constant)")
    p = float(attrs["exponent"])
    if not math.isfinite(p):
        raise ValueError(f"Pow: exponent must be finite, got {p}")
    if p in (0.0, 1.0):
        return _linear("Pow", p, 1.0 - p, lambda x: torch.pow(x, p))
    if p in (0.5, -1.0):
        base = sqrt_relaxation(attrs) if p == 0.5 else reciprocal_relaxation(attrs)
        return dataclasses.replace(base, op="Pow")
    if p.is_integer() and p >= 2:
        n = int(p)
        return UnaryRelaxation(
            op="Pow",
            fn=lambda x: torch.pow(x, n),
            relax=_int_pow_relax(n),
            n_alpha=1 + n % 2,
            alpha_init=_int_pow_init(n, _odd_tangent_ratio(n) if n % 2 else 0.0),
            split_mask=default_split_mask,
            interval=_int_pow_interval(n),
        )
    q: float | int = int(p) if p.is_integer() else p

    def interval(l: Tensor, u: Tensor) -> Pair:
        if p > 0:
            l, u = l.clamp(min=0.0), u.clamp(min=0.0)
        fl, fu = l.pow(q), u.pow(q)
        return torch.minimum(fl, fu), torch.maximum(fl, fu)

    return UnaryRelaxation(
        op="Pow",
        fn=lambda x: torch.pow(x, q),
        relax=_real_pow_relax(p),
        n_alpha=1,
        alpha_init=point_init(interior_point),
        domain=(-INF if p.is_integer() else 0.0, INF),
        split_mask=default_split_mask,
        interval=interval,
    )


RELAXATIONS: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {
    "Exp": exp_relaxation,
    "Log": log_relaxation,
    "Reciprocal": reciprocal_relaxation,
    "Sqrt": sqrt_relaxation,
    "Pow": pow_relaxation,
}
