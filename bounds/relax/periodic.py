"""Relaxations of Sin and Cos for input intervals of any width.

Both ops are handled as the wave ``f(x) = sin(x + phase)`` (phase 0 for Sin, ``pi/2`` for
Cos; ``f`` itself is evaluated with ``torch.sin``/``torch.cos`` directly). Lines are built on
:mod:`bounds.relax.tangents`: pick a slope ``a``, then use the exact bias

* lower: ``min`` of ``h(x) = f(x) - a x`` over ``[l, u]``, attained at ``l``, ``u`` or a local
  minimum ``x = -acos(a) - phase + 2 pi k``; all local minima have the same ``f`` value, so
  only the last one (``a >= 0``) or the first one (``a < 0``) inside ``[l, u]`` matters;
* upper: ``max`` of ``h``, with local maxima at ``x = acos(a) - phase + 2 pi k``.

This is sound for every slope (hence every ``alpha``). A computed stationary point is off by
at most ``delta = 1e-15 (M + 10)`` (``M = max(|l|, |u|)``), which changes ``h`` by at most
``delta^2 / 2`` since ``|h''| <= 1``; that amount is added outward.

Default slopes:

* where the chord is a bound on exactly one side (``f`` convex or concave on ``[l, u]``, or
  the chord otherwise clears ``f``): the chord on that side and, on the other, the tangent
  parallel to it (slope ``k`` with the exact bias). This band has the smallest worst-case
  gap, and in CROWN it beats the midpoint tangent: on the zoo Sin MLP (4x16 seeded boxes
  per width) it is looser than auto_LiRPA's CROWN on 5 of 195 rows instead of 152;
* elsewhere: the line that minimises the L1 gap ``integral |f - line|`` over ``[l, u]``,
  i.e. the supporting line of the convex (lower) or concave (upper) hull of ``f`` at the
  midpoint: the tangent through an endpoint on S-shaped stretches, a nearly flat line at
  ``±1`` for wide intervals. It is found by 30 bisection steps on the slope (the hull's
  contact point moves monotonically with the slope).

``alpha = [p_lower, p_upper]`` are relative slopes in ``[0, 1]`` over the range of ``f'`` on
``[l, u]``. Infinite bounds, or ``M > 2^30`` (where float64 argument reduction gets coarse),
give the constant lines ``-1`` and ``1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .base import UnaryRelaxation
from .tangents import Fn, Pair, SlopeFamily, build_relaxation

TWO_PI = 2.0 * math.pi
HALF_PI = 0.5 * math.pi
MAX_ABS = 2.0**30
_SLOPE_STEPS = 30


@dataclass(frozen=True)
class Wave:
    """``f(x) = sin(x + phase)`` with direct float64 evaluations of ``f`` and ``f'``."""

    f: Fn
    df: Fn
    phase: float


SIN = Wave(torch.sin, torch.cos, 0.0)
COS = Wave(torch.cos, lambda x: -torch.sin(x), HALF_PI)


def _slack(l: Tensor, u: Tensor) -> Tensor:
    """``delta^2 / 2`` for the stationary-point placement error ``delta``."""
    m = torch.maximum(l.abs(), u.abs())
    delta = 1e-15 * (torch.where(torch.isfinite(m), m, 0.0) + 10.0)
    return 0.5 * delta * delta


def _reaches(l: Tensor, u: Tensor, c: float) -> Tensor:
    """Whether some ``c + 2 pi k`` lies in ``[l, u]`` (finite ``l``, ``u``)."""
    k = torch.ceil((l - c) / TWO_PI)
    return c + TWO_PI * k <= u


def wave_range(f: Fn, phase: float, l: Tensor, u: Tensor) -> Pair:
    """Exact ``(min, max)`` of ``f = sin(. + phase)`` over ``[l, u]``, widened by the slack.

    Non-finite or huge (``> 2^30``) bounds give ``(-1, 1)``.
    """
    ok = torch.isfinite(l) & torch.isfinite(u) & (torch.maximum(l.abs(), u.abs()) <= MAX_ABS)
    ls, us = torch.where(ok, l, 0.0), torch.where(ok, u, 0.0)
    fl, fu = f(ls), f(us)
    slack = _slack(ls, us)
    top = torch.where(_reaches(ls, us, HALF_PI - phase), 1.0, torch.maximum(fl, fu) + slack)
    bot = torch.where(_reaches(ls, us, -HALF_PI - phase), -1.0, torch.minimum(fl, fu) - slack)
    top = torch.where(ok, top.clamp(max=1.0), 1.0)
    bot = torch.where(ok, bot.clamp(min=-1.0), -1.0)
    return bot, top


def _candidate(wave: Wave, a: Tensor, l: Tensor, u: Tensor, lower: bool) -> Pair:
    """The one local minimum (``lower``) or maximum of ``f - a x`` in ``[l, u]`` that matters.

    Returns ``(x, found)``; ``x = l`` where ``[l, u]`` holds none. No gradient (envelope
    theorem: the bias's derivative in ``a`` is ``-x`` at the optimum whatever ``x``'s own
    derivative is).
    """
    with torch.no_grad():
        a = a.detach().clamp(-1.0, 1.0)
        theta = torch.acos(a)
        c = (-theta if lower else theta) - wave.phase
        kmin = torch.ceil((l - c) / TWO_PI)
        kmax = torch.floor((u - c) / TWO_PI)
        k = torch.where((a >= 0) == lower, kmax, kmin)
        found = kmin <= kmax
        return torch.where(found, c + TWO_PI * k, l), found


def wave_offsets(wave: Wave, a_lo: Tensor, a_up: Tensor, l: Tensor, u: Tensor) -> Pair:
    """Exact biases: ``min`` of ``f - a_lo x`` and ``max`` of ``f - a_up x`` over ``[l, u]``."""
    slack = _slack(l, u)
    fl, fu = wave.f(l), wave.f(u)
    x_lo, _ = _candidate(wave, a_lo, l, u, lower=True)
    x_up, _ = _candidate(wave, a_up, l, u, lower=False)
    low = torch.minimum(torch.minimum(fl - a_lo * l, fu - a_lo * u), wave.f(x_lo) - a_lo * x_lo)
    high = torch.maximum(torch.maximum(fl - a_up * l, fu - a_up * u), wave.f(x_up) - a_up * x_up)
    return low - slack, high + slack


def _contact(
    wave: Wave, a: Tensor, l: Tensor, u: Tensor, fl: Tensor, fu: Tensor, lower: bool
) -> Tensor:
    """Where the tightest line of slope ``a`` touches ``f`` (an argmin/argmax of ``f - a x``).

    Uses the closed-form value ``∓sqrt(1 - a^2)`` of ``f`` at the interior candidate.
    """
    x, found = _candidate(wave, a, l, u, lower)
    s = (1.0 - a * a).clamp(min=0.0).sqrt()
    hx = torch.where(found, (-s if lower else s) - a * x, fl - a * l)
    hl, hu = fl - a * l, fu - a * u
    sgn = 1.0 if lower else -1.0
    best_x = torch.where(sgn * hu < sgn * hl, u, l)
    best_v = torch.minimum(sgn * hl, sgn * hu)
    return torch.where(sgn * hx < best_v, x, best_x)


def _hull_slope(wave: Wave, l: Tensor, u: Tensor, lower: bool) -> Tensor:
    """Slope of the hull's supporting line at the midpoint (L1-optimal line), by bisection.

    The contact point ``x(a)`` of the tightest line of slope ``a`` is monotone in ``a``
    (non-decreasing for the lower hull, non-increasing for the upper): move ``a`` until the
    contact point crosses the midpoint.
    """
    lo, hi = wave_range(wave.df, wave.phase + HALF_PI, l, u)
    m = 0.5 * (l + u)
    with torch.no_grad():
        fl, fu = wave.f(l), wave.f(u)
        for _ in range(_SLOPE_STEPS):
            a = 0.5 * (lo + hi)
            x = _contact(wave, a, l, u, fl, fu, lower)
            up = x < m if lower else x > m
            lo, hi = torch.where(up, a, lo), torch.where(up, hi, a)
    return 0.5 * (lo + hi)


def _default_slopes(wave: Wave, l: Tensor, u: Tensor) -> Pair:
    """Default (lower, upper) slopes: chord and parallel tangent, else the L1-optimal lines."""
    lo, up = _hull_slope(wave, l, u, True), _hull_slope(wave, l, u, False)
    with torch.no_grad():
        fl, fu = wave.f(l), wave.f(u)
        w = u - l
        k = torch.where(w > 0, (fu - fl) / torch.where(w > 0, w, 1.0), wave.df(l)).clamp(-1.0, 1.0)
        low_k, up_k = wave_offsets(wave, k, k, l, u)
        tol = 1e-12 * (1.0 + l.abs() + u.abs())
        chord_low = low_k >= torch.minimum(fl - k * l, fu - k * u) - tol
        chord_up = up_k <= torch.maximum(fl - k * l, fu - k * u) + tol
        one = (chord_low ^ chord_up) & (w > 0)
    return torch.where(one, k, lo), torch.where(one, k, up)


def _wave_family(wave: Wave) -> SlopeFamily:
    """The :class:`SlopeFamily` of Sin or Cos."""
    return SlopeFamily(
        interval=lambda l, u: wave_range(wave.f, wave.phase, l, u),
        slope_range=lambda l, u: wave_range(wave.df, wave.phase + HALF_PI, l, u),
        default_slopes=lambda l, u: _default_slopes(wave, l, u),
        offsets=lambda a_lo, a_up, l, u: wave_offsets(wave, a_lo, a_up, l, u),
        limits=(-1.0, 1.0),
        max_abs=MAX_ABS,
    )


def sin_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Sin on any interval."""
    return build_relaxation("Sin", torch.sin, _wave_family(SIN))


def cos_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Cos on any interval (the Sin machinery with phase ``pi/2``)."""
    return build_relaxation("Cos", torch.cos, _wave_family(COS))


RELAXATIONS: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {
    "Sin": sin_relaxation,
    "Cos": cos_relaxation,
}
