"""Numba kernels of :mod:`bounds.relax.compiled` (imported on first use: numba's import
and first dispatch cost about half a second, which models without Sigmoid/Tanh/Erf skip).

S-shape function codes: 0 Sigmoid, 1 Tanh, 2 Erf.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_TINY = 1e-300
_SQRT_PI = math.sqrt(math.pi)
_ABS_MARGIN = 2.0**-40
_SLOPE_ROUNDING = 2.0**-49
_FMAX = float(np.finfo(np.float64).max)
_STEPS_BRACKET = 14
_NEWTON_STEPS = 3
CAPS = (750.0, 375.0, 30.0)  # |d_L| search limits (as SFunction.cap)
_TAB_SCALE = 128.0  # d_L table: u = 0, 1/128, ..., 64
TAB_SIZE = 8193
LIMITS = ((0.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))


@numba.njit(cache=True, error_model="numpy")
def _f(kind, x):
    if kind == 0:
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    if kind == 1:
        return math.tanh(x)
    return math.erf(x)


@numba.njit(cache=True, error_model="numpy")
def _dfx(kind, x, fx):
    """``f'(x)`` from ``x`` and ``f(x)``."""
    if kind == 0:
        return fx * (1.0 - fx)
    if kind == 1:
        return (1.0 - fx) * (1.0 + fx)
    return (2.0 / _SQRT_PI) * math.exp(-x * x)


@numba.njit(cache=True, error_model="numpy")
def _d2fx(kind, x, fx, d1):
    if kind == 0:
        return d1 * (1.0 - 2.0 * fx)
    if kind == 1:
        return -2.0 * fx * d1
    return -2.0 * x * d1


@numba.njit(cache=True, error_model="numpy")
def _root(kind, a):
    """``x >= 0`` with ``f'(x) = a`` (``a`` clamped into ``(0, f'(0)]``); one log, one sqrt.

    Only tightness depends on its accuracy: the bias is rigorous at any point.
    """
    if kind == 0:  # 2 log((1 + r) / (2 sqrt a)), r = sqrt(1 - 4a)
        a = min(max(a, _TINY), 0.25)
        r = 1.0 + math.sqrt(1.0 - 4.0 * a)
        return math.log(r * r / (4.0 * a))
    if kind == 1:  # log((1 + t) / sqrt(a)), t = sqrt(1 - a)
        a = min(max(a, _TINY), 1.0)
        t = 1.0 + math.sqrt(1.0 - a)
        return 0.5 * math.log(t * t / a)
    a = min(max(a, _TINY), 2.0 / _SQRT_PI)
    return math.sqrt(max(math.log(2.0 / (_SQRT_PI * a)), 0.0))


@numba.njit(cache=True, error_model="numpy")
def _f_at(kind, x, l, u, fl, fu):
    """``f(x)`` reusing ``f(l)``, ``f(u)`` and ``f(0)`` where ``x`` is one of those points."""
    if x == l:
        return fl
    if x == u:
        return fu
    if x == 0.0:
        return 0.5 if kind == 0 else 0.0
    return _f(kind, x)


@numba.njit(cache=True, error_model="numpy")
def _d_lower(kind, cap, u, fu, tab):
    """Tangent point ``t <= 0`` whose tangent passes through ``(u, f(u) = fu)`` (``u > 0``).

    ``d_L`` decreases with ``u``, so the table of ``d_L`` at ``u = i / _TAB_SCALE`` brackets
    it between two neighbours (beyond the table: 14 bisection steps, as
    ``s_shaped.d_lower``); 3 Newton steps inside the bracket finish. Only tightness depends
    on the result: every slope gets its rigorous bias.
    """
    lo = max(-u, -cap)
    hi = 0.0
    x = u * _TAB_SCALE
    if x < tab.shape[0] - 1:
        i = int(x)
        lo = max(lo, tab[i + 1] - 1e-12 * (1.0 - tab[i + 1]))
        hi = min(hi, tab[i] + 1e-12 * (1.0 - tab[i]))
        if lo > hi:
            lo = hi
    else:
        lo, hi = _bisect_d_lower(kind, u, fu, lo, hi, _STEPS_BRACKET)
    t = lo
    for _ in range(_NEWTON_STEPS):
        ft = _f(kind, t)
        d1 = _dfx(kind, t, ft)
        step = (ft + d1 * (u - t) - fu) / (_d2fx(kind, t, ft, d1) * (u - t))
        if not math.isfinite(step):
            step = 0.0
        t = min(max(t - step, lo), hi)
    return t


@numba.njit(cache=True, error_model="numpy")
def _bisect_d_lower(kind, u, fu, lo, hi, steps):
    """Bisection bracket ``(lo, hi)`` of ``d_L(u)`` (``G(lo) <= 0 < G(hi)``)."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        fm = _f(kind, mid)
        v = fm + _dfa(kind, mid, fm) * (u - mid) - fu
        if v <= 0.0:  # NaN counts as positive, as in tangents.bisect
            lo = mid
        else:
            hi = mid
    return lo, hi


@numba.njit(cache=True, error_model="numpy")
def d_lower_table(kind, cap, n):
    """``d_L(i / _TAB_SCALE)`` for ``i < n`` (60 bisection steps: float64 resolution)."""
    out = np.zeros(n)
    for i in range(1, n):
        u = i / _TAB_SCALE
        lo, hi = _bisect_d_lower(kind, u, _f(kind, u), max(-u, -cap), 0.0, 60)
        out[i] = lo
    return out


@numba.njit(cache=True, error_model="numpy")
def _dfa(kind, x, fx):
    """``f'(x)`` to full relative accuracy in the tails (``_dfx`` cancels to 0 there).

    The default slopes and tangent points need it; the biases do not (their slack covers
    the absolute error of ``_dfx``).
    """
    if kind == 0:
        if x <= 0.0:
            return fx * (1.0 - fx)
        return fx / (1.0 + math.exp(x))
    if kind == 1:
        if abs(x) < 0.5:
            return (1.0 - fx) * (1.0 + fx)
        e = math.exp(-2.0 * abs(x))
        return 4.0 * e / ((1.0 + e) * (1.0 + e))
    return _dfx(kind, x, fx)


@numba.njit(cache=True, error_model="numpy")
def _df_at(kind, x):
    return _dfa(kind, x, _f(kind, x))


@numba.njit(cache=True, error_model="numpy")
def _default_slopes(kind, cap, l, u, fl, fu, tab):
    """Default (lower, upper) slopes of the S-shape rules (as ``_s_default``)."""
    m = 0.5 * (l + u)
    w = u - l
    if w > 1e-9 * (1.0 + max(abs(l), abs(u))):
        k = (fu - fl) / w
    else:
        k = _df_at(kind, m)
    if u <= 0.0:
        return _df_at(kind, m), k
    if l >= 0.0:
        return k, _df_at(kind, m)
    if k <= _dfa(kind, l, fl):
        low = k
    else:
        low = _df_at(kind, min(_d_lower(kind, cap, u, fu, tab), m))
    if k <= _dfa(kind, u, fu):
        up = k
    else:
        up = _df_at(kind, max(-_d_lower(kind, cap, -l, _f(kind, -l), tab), m))
    return low, up


@numba.njit(cache=True, error_model="numpy")
def _relative(s, smin, smax):
    span = smax - smin
    if span > 0.0:
        return min(max((s - smin) / span, 0.0), 1.0)
    return 0.5


@numba.njit(cache=True, error_model="numpy")
def _bias(kind, a, l, u, fl, fu, gl, gu, lower):
    """Rigorous min (``lower``) / max of ``f - a x`` on ``[l, u]`` and where it is attained.

    ``gl``, ``gu``: ``f'(l)``, ``f'(u)``. The stationary point on the convex (concave) part
    needs the root (a log) only when it lies inside the part: ``f'`` is monotone there, so
    comparing ``a`` with ``f'`` at the part's ends tells, and an end's ``f`` is known.
    """
    if lower:  # convex part [l, s1], f' increasing
        s0 = l
        s1 = max(min(u, 0.0), l)
        if a <= gl:
            xc = s0
        elif a >= _g_at(kind, s1, l, u, gl, gu):
            xc = s1
        else:
            xc = min(max(-_root(kind, a), s0), s1)
    else:  # concave part [s0, u], f' decreasing
        s0 = min(max(l, 0.0), u)
        s1 = u
        if a <= gu:
            xc = s1
        elif a >= _g_at(kind, s0, l, u, gl, gu):
            xc = s0
        else:
            xc = min(max(_root(kind, a), s0), s1)
    fx = _f_at(kind, xc, l, u, fl, fu)
    d = _dfx(kind, xc, fx) - a
    hl = fl - a * l
    hu = fu - a * u
    slack = _SLOPE_ROUNDING * (1.0 + abs(a)) * (abs(l) + abs(u))
    if lower:
        bc = fx - a * xc + min(d * (s0 - xc), d * (s1 - xc))
        best, x = hl, l
        if hu < best:
            best, x = hu, u
        if bc < best:
            best, x = bc, xc
        return best - slack, x
    bc = fx - a * xc + max(d * (s0 - xc), d * (s1 - xc))
    best, x = hl, l
    if hu > best:
        best, x = hu, u
    if bc > best:
        best, x = bc, xc
    return best + slack, x


@numba.njit(cache=True, error_model="numpy")
def _g_at(kind, x, l, u, gl, gu):
    """``f'(x)`` for ``x`` one of ``l``, ``u``, ``0`` (``_dfx``'s value at ``0`` there)."""
    if x == l:
        return gl
    if x == u:
        return gu
    return _dfx(kind, 0.0, 0.5 if kind == 0 else 0.0)


@numba.njit(cache=True, error_model="numpy")
def lines(kind, cap, tab, lim_lo, lim_hi, e, l, u, p0, p1, has_p, lw, lb, uw, ub, dl, xl, du, xu):
    """One pass over the elements; writes lines (``lw``'s dtype) and gradient factors."""
    one = lw[:1].copy()  # dtype of the outputs, for the cast of the relative slopes
    for i in range(l.shape[0]):
        li = np.float64(l[i])
        ui = np.float64(u[i])
        m = max(abs(li), abs(ui))
        if not (m <= _FMAX):  # an infinite or NaN end: constant lines at the exact range
            lo = _f(kind, li) if li == li else lim_lo
            hi = _f(kind, ui) if ui == ui else lim_hi
            lo = lo - ((2.0 * e * (1.0 + abs(lo)) if math.isfinite(lo) else 0.0) + _ABS_MARGIN)
            hi = hi + ((2.0 * e * (1.0 + abs(hi)) if math.isfinite(hi) else 0.0) + _ABS_MARGIN)
            lw[i] = 0.0
            uw[i] = 0.0
            lb[i] = max(lo, lim_lo)
            ub[i] = min(hi, lim_hi)
            dl[i] = 0.0
            du[i] = 0.0
            xl[i] = 0.0
            xu[i] = 0.0
            continue
        fl = _f(kind, li)
        fu = _f(kind, ui)
        z = min(max(li, 0.0), ui)
        gl = _dfx(kind, li, fl)
        gu = _dfx(kind, ui, fu)
        smin = min(gl, gu)
        smax = _g_at(kind, z, li, ui, gl, gu)
        span = smax - smin
        if has_p:
            q0 = np.float64(p0[i])
            q1 = np.float64(p1[i])
        else:
            # as relax_lines(alpha=None): default_alpha's relative slopes, in the dtype
            s_lo, s_up = _default_slopes(kind, cap, li, ui, fl, fu, tab)
            one[0] = _relative(s_lo, smin, smax)
            q0 = np.float64(one[0])
            one[0] = _relative(s_up, smin, smax)
            q1 = np.float64(one[0])
        g0 = span
        g1 = span
        if q0 != q0:
            q0 = 0.5
            g0 = 0.0
        elif q0 < 0.0 or q0 > 1.0:
            q0 = min(max(q0, 0.0), 1.0)
            g0 = 0.0
        if q1 != q1:
            q1 = 0.5
            g1 = 0.0
        elif q1 < 0.0 or q1 > 1.0:
            q1 = min(max(q1, 0.0), 1.0)
            g1 = 0.0
        one[0] = smin + span * q0
        a_lo = np.float64(one[0])
        one[0] = smin + span * q1
        a_up = np.float64(one[0])
        b_lo, x_lo = _bias(kind, a_lo, li, ui, fl, fu, gl, gu, True)
        b_up, x_up = _bias(kind, a_up, li, ui, fl, fu, gl, gu, False)
        lw[i] = a_lo
        uw[i] = a_up
        lb[i] = b_lo - (2.0 * e * (1.0 + abs(b_lo) + abs(a_lo) * m) + _ABS_MARGIN)
        ub[i] = b_up + (2.0 * e * (1.0 + abs(b_up) + abs(a_up) * m) + _ABS_MARGIN)
        dl[i] = g0
        du[i] = g1
        xl[i] = x_lo
        xu[i] = x_up


@numba.njit(cache=True, error_model="numpy")
def default_p(kind, cap, tab, l, u, out0, out1):
    """Relative default slopes (as ``default_alpha``): 0 on non-finite boxes."""
    for i in range(l.shape[0]):
        li = np.float64(l[i])
        ui = np.float64(u[i])
        if not (max(abs(li), abs(ui)) <= _FMAX):
            li = 0.0
            ui = 0.0
        fl = _f(kind, li)
        fu = _f(kind, ui)
        s_lo, s_up = _default_slopes(kind, cap, li, ui, fl, fu, tab)
        gl = _dfx(kind, li, fl)
        gu = _dfx(kind, ui, fu)
        smin = min(gl, gu)
        smax = _g_at(kind, min(max(li, 0.0), ui), li, ui, gl, gu)
        out0[i] = _relative(s_lo, smin, smax)
        out1[i] = _relative(s_up, smin, smax)


@numba.njit(cache=True, error_model="numpy")
def leaky_lines(a, up, l, u, s, has_s, lw, uw, ub, g):
    """LeakyRelu (``a <= 1``) lines on finite ``[l, u]`` (as ``piecewise._leaky_finite``).

    Lower ``s x`` where the interval crosses 0 (``s`` clamped to ``[a, 1]``, NaN as 0, the
    adaptive default without ``s``), upper the chord there; the exact line elsewhere. ``g``
    is ``d lw / d s``. The chord's bias is computed in float64 for the slope as stored
    and moved up by ``up * |bias|`` before the store (``up``: the output dtype's relative
    spacing, 0 for float64), so the line stays above both ends after rounding.
    """
    for i in range(l.shape[0]):
        li = np.float64(l[i])
        ui = np.float64(u[i])
        if li < 0.0 and ui > 0.0:
            gi = 0.0
            if has_s:
                si = np.float64(s[i])
                if si != si:
                    si = 0.0
                if si < a:
                    si = a
                elif si > 1.0:
                    si = 1.0
                elif si == np.float64(s[i]):
                    gi = 1.0
            else:
                si = 1.0 if ui > -li else a
            fl = a * li
            uw[i] = (ui - fl) / (ui - li)
            k = np.float64(uw[i])
            cb = max(fl - k * li, ui - k * ui)
            ub[i] = cb + up * abs(cb)
            lw[i] = si
            g[i] = gi
        else:
            e = 1.0 if li >= 0.0 else a
            lw[i] = e
            uw[i] = e
            ub[i] = 0.0
            g[i] = 0.0
