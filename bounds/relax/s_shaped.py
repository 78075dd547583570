"""Relaxations of the S-shaped ops Sigmoid, Tanh, Erf and of Gelu (exact and tanh form).

All are built on :mod:`bounds.relax.tangents`: a slope is chosen, then the bias is the exact,
rigorously bounded extremum of ``f(x) - a x`` over ``[l, u]``, so every slope (hence every
``alpha``) is sound. ``alpha = [p_lower, p_upper]`` are relative slopes in ``[0, 1]`` over the
range of ``f'`` on ``[l, u]``.

Sigmoid / Tanh / Erf (convex on ``x <= 0``, concave on ``x >= 0``; REFERENCE §1.d S-shape
rules for the default):

* ``u <= 0``: lower = tangent at the midpoint, upper = chord;
* ``l >= 0``: lower = chord, upper = tangent at the midpoint;
* ``l < 0 < u``: lower = chord if it stays below ``f`` (``k <= f'(l)``), else the tangent at
  ``min(d_L(u), m)``, where ``d_L(u) <= 0`` is the tangent point whose tangent passes through
  ``(u, f(u))`` (the ``min`` with the midpoint ``m`` is auto_LiRPA's "smoothness enhancement":
  it makes the line continuous in ``(l, u)`` and is then the L1-tightest lower line); upper
  symmetric with ``max(d_U(l), m)``, ``d_U(l) = -d_L(-l)``. ``d_L`` comes from 40 bisection
  steps on ``[max(-u, -cap), 0]`` keeping the valid end (the tangent stays below ``f(u)``).

Stationary points of ``f(x) - a x`` have closed forms (``f'`` is even and decreasing in
``|x|``), so the exact bias costs a few elementwise operations.

Gelu (``x * Phi(x)``, or ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))``): concave on
``(-inf, -p]``, convex on ``[-p, p]``, concave on ``[p, inf)`` with ``p = sqrt(2)`` (exact form)
or ``p = 1.41850...`` (tanh form), minimum at ``x ~ -0.7518``. Default slopes are the supporting
lines of the convex/concave hull of ``f`` over ``[l, u]`` at the midpoint (tangent points found
by bisection; chord when no tangent touches); exact biases use bisection on the three pieces
(``|x| <= 40``; beyond, ``f'`` is within 1e-300 of 0 or 1, so ``f - a x`` is monotone there).

Infinite bounds give constant lines at the exact interval (``+inf`` upper bias for Gelu when
``u = +inf``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import compiled
from .base import UnaryRelaxation
from .tangents import (
    INF,
    WORK,
    Fn,
    Pair,
    Piece,
    Quad,
    SlopeFamily,
    SmoothShape,
    absolute_slope,
    build_relaxation,
    chord_slope,
    offset_range,
    tangent_gap,
    touch_point,
)

_TINY = 1e-300
_SQRT_PI = math.sqrt(math.pi)
_TANH_C = 2.0 * math.sqrt(2.0 / math.pi)
_TANH_A = 0.044715
_GELU_CAP = 40.0
_STEPS_DEFAULT = 40
_STEPS_BRACKET = 14
_NEWTON_STEPS = 3


# --------------------------------------------------------------------------- S-shaped
@dataclass(frozen=True)
class SFunction:
    """An S-shaped function with inflection at 0 and ``f(x) + f(-x) = 2 f(0)``.

    Attributes:
        f, df: function and derivative (float64).
        root: ``x >= 0`` with ``f'(x) = a`` for ``a`` in ``(0, f'(0)]`` (clamped inside).
        cap: ``|d_L|`` search limit; beyond it ``f'`` underflows in float64.
        dfx: ``f'(x)`` from ``x`` and ``f(x)`` (absolute error a few ulps of ``f'(0)``).
        d2fx: ``f''(x)`` from ``x``, ``f(x)`` and ``f'(x)``.
    """

    f: Fn
    df: Fn
    root: Fn
    cap: float
    dfx: Callable[[Tensor, Tensor], Tensor]
    d2fx: Callable[[Tensor, Tensor, Tensor], Tensor]


def _sigmoid_df(x: Tensor) -> Tensor:
    """Sigmoid derivative ``s(x) s(-x)`` (no cancellation for large ``|x|``)."""
    return torch.sigmoid(x) * torch.sigmoid(-x)


def _sigmoid_root(a: Tensor) -> Tensor:
    """``x >= 0`` with ``sigmoid'(x) = a``: ``x = 2 log((1 + r) / (2 sqrt(a)))``.

    (``r = sqrt(1 - 4a)``; ``sigmoid(x) = (1 + r) / 2`` solves ``s (1 - s) = a``, written
    without ``1 - s``.)
    """
    a = a.clamp(_TINY, 0.25)
    return 2.0 * torch.log((1.0 + (1.0 - 4.0 * a).sqrt()) / (2.0 * a.sqrt()))


def _tanh_df(x: Tensor) -> Tensor:
    """Tanh derivative ``1 / cosh(x)^2`` (underflows cleanly to 0)."""
    return torch.cosh(x).pow(-2)


def _tanh_root(a: Tensor) -> Tensor:
    """``x >= 0`` with ``tanh'(x) = a``: ``x = log((1 + t) / sqrt(a))``, ``t = sqrt(1 - a)``."""
    a = a.clamp(_TINY, 1.0)
    return torch.log((1.0 + (1.0 - a).sqrt()) / a.sqrt())


def _erf_df(x: Tensor) -> Tensor:
    """Erf derivative ``2 / sqrt(pi) exp(-x^2)``."""
    return (2.0 / _SQRT_PI) * torch.exp(-x * x)


def _erf_root(a: Tensor) -> Tensor:
    """``x >= 0`` with ``erf'(x) = a``: ``x^2 = log(2 / (sqrt(pi) a))``."""
    a = a.clamp(_TINY, 2.0 / _SQRT_PI)
    return torch.log(2.0 / (_SQRT_PI * a)).clamp(min=0.0).sqrt()


SIGMOID = SFunction(
    torch.sigmoid,
    _sigmoid_df,
    _sigmoid_root,
    750.0,
    lambda x, fx: fx * (1.0 - fx),
    lambda x, fx, d1: d1 * (1.0 - 2.0 * fx),
)
TANH = SFunction(
    torch.tanh,
    _tanh_df,
    _tanh_root,
    375.0,
    lambda x, fx: (1.0 - fx) * (1.0 + fx),
    lambda x, fx, d1: -2.0 * fx * d1,
)
ERF = SFunction(
    torch.erf, _erf_df, _erf_root, 30.0, lambda x, fx: _erf_df(x), lambda x, fx, d1: -2.0 * x * d1
)

# Rounding of ``h'(x_c) = f'(x_c) - a`` in float64 (a few ulps of ``max(f'(0), |a|) <= 1 + |a|``)
# times a distance ``<= |l| + |u|``: subtracted from (added to) the fused biases.
_SLOPE_ROUNDING = 2.0**-49


def _s_shape(fun: SFunction) -> SmoothShape:
    """Curvature pieces of an S-shaped function (closed-form stationary points)."""
    return SmoothShape(
        f=fun.f,
        df=fun.df,
        pieces=(
            Piece(-INF, 0.0, True, lambda a: -fun.root(a)),
            Piece(0.0, INF, False, fun.root),
        ),
        knots=(0.0,),
    )


def d_lower(fun: SFunction, u: Tensor) -> Tensor:
    """``d_L(u)``: the tangent point ``t <= 0`` whose tangent passes through ``(u, f(u))``.

    For ``u > 0``; tangents at ``t <= d_L`` stay below ``f`` on ``(-inf, u]``. The returned
    point is the bisection end on the valid side (``t <= d_L`` up to float64 rounding).
    """
    lo = torch.maximum(-u, torch.full_like(u, -fun.cap))
    lo, hi = touch_point(fun.f, fun.df, u, lo, torch.zeros_like(u), True, _STEPS_BRACKET)
    # Newton on G(t) = f(t) + f'(t) (u - t) - f(u), G'(t) = f''(t) (u - t) > 0, inside the
    # bracket: quadratic convergence from 2^-14 of the width to float64 resolution (40
    # bisection steps before). Only tightness depends on it: every slope gets its exact bias.
    fu = fun.f(u)
    t = lo
    for _ in range(_NEWTON_STEPS):
        ft = fun.f(t)
        d1 = fun.dfx(t, ft)
        step = (ft + d1 * (u - t) - fu) / (fun.d2fx(t, ft, d1) * (u - t))
        step = torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)  # f'' underflow
        t = torch.minimum(torch.maximum(t - step, lo), hi)
    return t


def _s_default(fun: SFunction, l: Tensor, u: Tensor) -> Pair:
    """Default (lower, upper) slopes of the S-shape rules."""
    m = 0.5 * (l + u)
    k = chord_slope(fun.f, fun.df, l, u)
    dfm = fun.df(m)
    cross = (l < 0) & (u > 0)
    # The tangent points matter only where the interval crosses 0 (a seventh of eran's
    # 6x200 Sigmoid neurons in branch-and-bound): bisect there alone.
    t_lo, t_up = torch.full_like(u, -1.0), torch.full_like(u, -1.0)
    if bool(cross.any()):
        t_lo[cross] = d_lower(fun, u[cross])
        t_up[cross] = d_lower(fun, -l[cross])
    low_cross = torch.where(k <= fun.df(l), k, fun.df(torch.minimum(t_lo, m)))
    up_cross = torch.where(k <= fun.df(u), k, fun.df(torch.maximum(-t_up, m)))
    low = torch.where(u <= 0, dfm, torch.where(l >= 0, k, low_cross))
    up = torch.where(u <= 0, k, torch.where(l >= 0, dfm, up_cross))
    return low, up


def _s_slope_range(fun: SFunction, l: Tensor, u: Tensor) -> Pair:
    """Range of ``f'`` on ``[l, u]``: largest at the point nearest 0."""
    top = fun.df(torch.minimum(l.clamp(min=0.0), u))
    return torch.minimum(fun.df(l), fun.df(u)), top


def _s_bias(
    fun: SFunction, a: Tensor, l: Tensor, u: Tensor, fl: Tensor, fu: Tensor, lower: bool
) -> Tensor:
    """Rigorous ``min`` (``lower``) or ``max`` of ``h = f - a x`` over finite ``[l, u]``.

    For the minimum: ``f`` is convex on ``[l, s1]`` (``s1 = max(min(u, 0), l)``) and concave
    on the rest, whose minimum sits at its ends (``u``, or a point of ``[l, s1]``). On the
    convex part, the tangent of ``h`` at any ``x_c`` is below ``h``, so
    ``min h >= h(x_c) + min(h'(x_c) (l - x_c), h'(x_c) (s1 - x_c))``, exact when ``x_c`` is
    the stationary point ``-root(a)`` clamped into the part. The maximum is symmetric on the
    concave part ``[s0, u]``. ``h(l)`` and ``h(u)`` are the other candidates.

    The gradient follows the envelope theorem: ``d/da`` is ``-x`` at the winning candidate
    (through ``torch.minimum``/``maximum`` when only ``a`` needs one), and ``d/dl = h'(l)``
    when ``l`` wins (likewise ``u``; the candidate is then re-evaluated with autograd).
    """
    ad, ld, ud = a.detach(), l.detach(), u.detach()
    pick = torch.minimum if lower else torch.maximum
    with torch.no_grad():
        if lower:
            s0, s1 = ld, torch.maximum(ud.clamp(max=0.0), ld)
            xc = torch.minimum(torch.maximum(-fun.root(ad), s0), s1)
        else:
            s0, s1 = torch.minimum(ld.clamp(min=0.0), ud), ud
            xc = torch.minimum(torch.maximum(fun.root(ad), s0), s1)
        fx = fun.f(xc)
        d = fun.dfx(xc, fx) - ad
        bc = fx - ad * xc + pick(d * (s0 - xc), d * (s1 - xc))
        slack = _SLOPE_ROUNDING * (1.0 + ad.abs()) * (ld.abs() + ud.abs())
        slack = -slack if lower else slack
    if not torch.is_grad_enabled() or not (a.requires_grad or l.requires_grad or u.requires_grad):
        with torch.no_grad():
            return pick(pick(fl - ad * ld, fu - ad * ud), bc) + slack
    if not (l.requires_grad or u.requires_grad):
        return pick(pick(fl - a * l, fu - a * u), bc - xc * (a - ad)) + slack
    with torch.no_grad():
        hl, hu = fl - ad * ld, fu - ad * ud
        best = pick(pick(hl, hu), bc)
        x = torch.where(hl == best, ld, torch.where(hu == best, ud, xc))
    l_b, u_b, a_b = torch.broadcast_tensors(l, u, a)
    x = torch.where(x == ld, l_b, torch.where(x == ud, u_b, x))
    h = fun.f(x) - a_b * x
    return best + (h - h.detach()) + slack


def _s_lines(fun: SFunction, p: Tensor, l: Tensor, u: Tensor, dtype: torch.dtype) -> Quad:
    """Fused slopes and rigorous biases (:attr:`SlopeFamily.lines64`) of an S-shaped ``f``.

    ``f(l)`` and ``f(u)`` serve both the slope range and the biases; no masks or bracketing
    loops (``torch.where`` and comparisons cost several multiplications each on a CPU).
    """
    fl, fu = fun.f(l), fun.f(u)
    z = torch.minimum(l.clamp(min=0.0), u)  # the point of [l, u] nearest 0: f' is largest
    smin = torch.minimum(fun.dfx(l, fl), fun.dfx(u, fu))
    smax = fun.dfx(z, fun.f(z))
    a_lo = absolute_slope(p[0], smin, smax).to(dtype).to(WORK)
    a_up = absolute_slope(p[1], smin, smax).to(dtype).to(WORK)
    b_lo = _s_bias(fun, a_lo, l, u, fl, fu, lower=True)
    b_up = _s_bias(fun, a_up, l, u, fl, fu, lower=False)
    return a_lo, a_up, b_lo, b_up


def _s_family(fun: SFunction, limits: tuple[float, float], kind: int | None = None) -> SlopeFamily:
    """The :class:`SlopeFamily` of an S-shaped function with range ``limits``.

    ``kind``: the function's code in :mod:`bounds.relax.compiled` (compiled lines on CPU).
    """
    shape = _s_shape(fun)

    def kernel_lines(l: Tensor, u: Tensor, alpha: Tensor | None, eps: float) -> Any:
        """The kernel's lines where it applies, else None."""
        if kind is None or not compiled.applicable(l, u, alpha):
            return None
        return compiled.kernel_lines(kind, l, u, alpha, eps)

    def kernel_default(l: Tensor, u: Tensor) -> Tensor | None:
        """The kernel's default relative slopes where it applies, else None."""
        if kind is None or not compiled.applicable(l, u, None):
            return None
        return compiled.kernel_default_p(kind, l, u)

    return SlopeFamily(
        interval=lambda l, u: (fun.f(l), fun.f(u)),
        slope_range=lambda l, u: _s_slope_range(fun, l, u),
        default_slopes=lambda l, u: _s_default(fun, l, u),
        offsets=lambda a_lo, a_up, l, u: offset_range(shape, a_lo, a_up, l, u),
        limits=limits,
        lines64=lambda p, l, u, dtype: _s_lines(fun, p, l, u, dtype),
        compiled=kernel_lines,
        compiled_default=kernel_default,
    )


# --------------------------------------------------------------------------- Gelu
@dataclass(frozen=True)
class GeluForm:
    """One Gelu variant: function, derivative, inflection ``±p``, minimum ``(xmin, fmin)``."""

    f: Fn
    df: Fn
    p: float
    xmin: float
    fmin: float


def _gelu_f(x: Tensor) -> Tensor:
    """Exact Gelu ``x Phi(x)`` (``erfc`` keeps the left tail accurate)."""
    return x * (0.5 * torch.special.erfc(-x / math.sqrt(2.0)))


def _gelu_df(x: Tensor) -> Tensor:
    """Exact Gelu derivative ``Phi(x) + x phi(x)``."""
    cdf = 0.5 * torch.special.erfc(-x / math.sqrt(2.0))
    return cdf + x * torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _tanh_gelu_f(x: Tensor) -> Tensor:
    """Tanh-form Gelu ``x sigmoid(2 c (x + 0.044715 x^3))`` (no ``1 + tanh`` cancellation)."""
    return x * torch.sigmoid(_TANH_C * (x + _TANH_A * x.pow(3)))


def _tanh_gelu_df(x: Tensor) -> Tensor:
    """Tanh-form Gelu derivative (``|x|`` clamped at 100, where it is exactly 0 or 1)."""
    xc = x.clamp(-100.0, 100.0)
    z = _TANH_C * (xc + _TANH_A * xc.pow(3))
    s = torch.sigmoid(z)
    return s + xc * s * torch.sigmoid(-z) * _TANH_C * (1.0 + 3.0 * _TANH_A * xc * xc)


GELU = GeluForm(_gelu_f, _gelu_df, math.sqrt(2.0), -0.7517915246935645, -0.16997120747990366)
GELU_TANH = GeluForm(
    _tanh_gelu_f, _tanh_gelu_df, 1.4185040087908284, -0.7524614220710163, -0.17004075057125405
)


def _gelu_shape(g: GeluForm) -> SmoothShape:
    """Gelu's three curvature pieces, capped at ``|x| = 40`` (monotone tails beyond)."""
    return SmoothShape(
        f=g.f,
        df=g.df,
        pieces=(
            Piece(-_GELU_CAP, -g.p, False),
            Piece(-g.p, g.p, True),
            Piece(g.p, _GELU_CAP, False),
        ),
        knots=(-_GELU_CAP, -g.p, g.p, _GELU_CAP),
    )


def _pin(c: float, l: Tensor, u: Tensor) -> Tensor:
    """The constant ``c`` clamped into ``[l, u]`` (``l <= u``)."""
    return torch.minimum(l.clamp(min=c), u)


def _gelu_lower_default(g: GeluForm, l: Tensor, u: Tensor, k: Tensor) -> Tensor:
    """Slope of the lower convex hull of Gelu on ``[l, u]`` at the midpoint.

    The hull follows ``f`` on ``[t1, t2]`` inside the convex piece and is straight outside:
    ``t1`` is where the tangent through ``(l, f(l))`` touches (``l`` itself if ``l >= -p``),
    ``t2`` where the one through ``(u, f(u))`` touches. Chord when no such tangent exists.
    """
    s0, s1 = _pin(-g.p, l, u), _pin(g.p, l, u)
    _, t1 = touch_point(g.f, g.df, l, s0, s1, False, _STEPS_DEFAULT)
    t1 = torch.where(l >= -g.p, s0, t1)
    t2, _ = touch_point(g.f, g.df, u, s0, s1, True, _STEPS_DEFAULT)
    t2 = torch.where(u <= g.p, s1, t2)
    ok = (u > -g.p) & (l < g.p) & (t1 <= t2)
    ok = ok & ((l >= -g.p) | (tangent_gap(g.f, g.df, t1, l) <= 0))
    ok = ok & ((u <= g.p) | (tangent_gap(g.f, g.df, t2, u) <= 0))
    m = 0.5 * (l + u)
    return torch.where(ok, g.df(torch.minimum(torch.maximum(m, t1), t2)), k)


def _gelu_upper_default(g: GeluForm, l: Tensor, u: Tensor, k: Tensor) -> Tensor:
    """Slope of the upper concave hull of Gelu on ``[l, u]`` at the midpoint.

    When ``u > p`` the hull touches only the right concave piece, from ``r1`` (tangent through
    ``(l, f(l))``) on; when ``l < -p`` and ``u <= p`` only the left one, up to ``r2`` (tangent
    through ``(u, f(u))``); inside ``[-p, p]`` it is the chord.
    """
    m = 0.5 * (l + u)
    c0 = _pin(g.p, l, u)
    c1 = _pin(_GELU_CAP, l, u).clamp(min=c0)
    _, r1 = touch_point(g.f, g.df, l, c0, c1, True, _STEPS_DEFAULT)
    r1 = torch.where(l >= g.p, l, r1)
    ok_c = (u > g.p) & ((l >= g.p) | (tangent_gap(g.f, g.df, r1, l) >= 0))
    a0, a1 = _pin(-_GELU_CAP, l, u), _pin(-g.p, l, u)
    r2, _ = touch_point(g.f, g.df, u, a0, a1, False, _STEPS_DEFAULT)
    r2 = torch.where(u <= -g.p, u, r2)
    ok_a = (l < -g.p) & (u <= g.p) & ((u <= -g.p) | (tangent_gap(g.f, g.df, r2, u) >= 0))
    right = g.df(torch.minimum(torch.maximum(m, r1), u))
    left = g.df(torch.minimum(torch.maximum(m, l), r2))
    return torch.where(ok_c, right, torch.where(ok_a, left, k))


def _gelu_default(g: GeluForm, l: Tensor, u: Tensor) -> Pair:
    """Default (lower, upper) Gelu slopes: hull supporting lines at the midpoint."""
    k = chord_slope(g.f, g.df, l, u)
    return _gelu_lower_default(g, l, u, k), _gelu_upper_default(g, l, u, k)


def _gelu_value(g: GeluForm, x: Tensor) -> Tensor:
    """``f(x)`` with the limits ``f(-inf) = 0`` and ``f(inf) = inf``."""
    fin = torch.isfinite(x)
    val = g.f(torch.where(fin, x, 0.0))
    return torch.where(fin, val, torch.where(x > 0, INF, 0.0))


def _gelu_interval(g: GeluForm, l: Tensor, u: Tensor) -> Pair:
    """Exact range: decreasing before ``xmin``, increasing after."""
    fl, fu = _gelu_value(g, l), _gelu_value(g, u)
    inside = (l <= g.xmin) & (u >= g.xmin)
    lo = torch.where(inside, torch.full_like(fl, g.fmin), torch.minimum(fl, fu))
    return lo, torch.maximum(fl, fu)


def _gelu_slope_range(g: GeluForm, l: Tensor, u: Tensor) -> Pair:
    """Range of ``f'`` on ``[l, u]``: ``f'`` has its minimum at ``-p`` and maximum at ``p``."""
    dl, du = g.df(l), g.df(u)
    lo = torch.minimum(torch.minimum(dl, du), g.df(_pin(-g.p, l, u)))
    hi = torch.maximum(torch.maximum(dl, du), g.df(_pin(g.p, l, u)))
    return lo, hi


def _gelu_family(g: GeluForm) -> SlopeFamily:
    """The :class:`SlopeFamily` of one Gelu variant."""
    shape = _gelu_shape(g)
    return SlopeFamily(
        interval=lambda l, u: _gelu_interval(g, l, u),
        slope_range=lambda l, u: _gelu_slope_range(g, l, u),
        default_slopes=lambda l, u: _gelu_default(g, l, u),
        offsets=lambda a_lo, a_up, l, u: offset_range(shape, a_lo, a_up, l, u),
        fscale=1.0,
    )


# --------------------------------------------------------------------------- factories
def _approximate(attrs: Mapping[str, Any]) -> str:
    """The Gelu ``approximate`` attribute as a lower-case string (``none`` by default)."""
    value = attrs.get("approximate", "none")
    if isinstance(value, bytes):
        value = value.decode()
    value = str(value).lower()
    if value not in ("none", "tanh"):
        raise ValueError(f"Gelu: unsupported approximate={value!r} (expected 'none' or 'tanh')")
    return value


def sigmoid_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Sigmoid: S-shape rules, range ``[0, 1]``."""
    family = _s_family(SIGMOID, (0.0, 1.0), compiled.SIGMOID)
    return build_relaxation("Sigmoid", torch.sigmoid, family)


def tanh_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Tanh: S-shape rules, range ``[-1, 1]``."""
    return build_relaxation("Tanh", torch.tanh, _s_family(TANH, (-1.0, 1.0), compiled.TANH))


def erf_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Erf: S-shape rules, range ``[-1, 1]``."""
    return build_relaxation("Erf", torch.erf, _s_family(ERF, (-1.0, 1.0), compiled.ERF))


def gelu_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Gelu, exact (``approximate='none'``) or tanh form (``approximate='tanh'``)."""
    approx = _approximate(attrs)
    form = GELU_TANH if approx == "tanh" else GELU

    def fn(x: Tensor) -> Tensor:
        """Gelu as evaluated by the network (torch semantics)."""
        return torch.nn.functional.gelu(x, approximate=approx)

    return build_relaxation("Gelu", fn, _gelu_family(form))


RELAXATIONS: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {
    "Sigmoid": sigmoid_relaxation,
    "Tanh": tanh_relaxation,
    "Erf": erf_relaxation,
    "Gelu": gelu_relaxation,
}
