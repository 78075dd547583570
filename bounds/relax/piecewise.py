"""Relaxations of piecewise-linear and step ops: Relu, LeakyRelu, Clip, Sign, Floor.

Parameters (``alpha`` rows, all clamped inside ``relax``):

* Relu / LeakyRelu (slope ``a``): ``alpha[0]`` is the slope ``s`` of the line
  ``s*x`` through the origin, clamped to ``[min(a,1), max(a,1)]``; it is the lower
  line when ``a <= 1`` (convex op) and the upper line when ``a > 1`` (concave).
* Clip (HardTanh with kinks ``lo <= hi``): ``alpha[0]`` / ``alpha[1]`` are fractions in
  ``[0, 1]`` of the largest sound slope of the lower line pivoting at ``(lo, lo)`` /
  the upper line pivoting at ``(hi, hi)``.
* Sign: ``alpha[0]`` / ``alpha[1]`` are fractions in ``[0, 1]`` of the largest sound
  slope of the lower line through ``(0, -1)`` / upper line through ``(0, 1)``.
* Floor: ``alpha[0]`` / ``alpha[1]`` are the slopes of the lower / upper line, clamped
  to ``[0, max(1, 2/(u-l))]``; biases are exact over the step corners, so any slope is
  sound.

Defaults follow the "adaptive" rule (the slope minimising the area between line and
function), which for Relu is ``1 if u > -l else 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..types import all_finite
from . import compiled
from .base import Lines, UnaryRelaxation
from .common import (
    INF,
    chord,
    clamp_point,
    finish,
    finite_width,
    params_shape,
    prepare,
    safe,
)

Pair = tuple[Tensor, Tensor]


def _crossing(l: Tensor, u: Tensor) -> Tensor:
    """Split mask of ops with a kink at 0."""
    return (l < 0) & (u > 0)


# --------------------------------------------------------------------------- (Leaky)Relu
def _leaky_fn(a: float) -> Callable[[Tensor], Tensor]:
    """``x if x >= 0 else a*x`` (plain relu for ``a == 0``, so ``-inf`` maps to 0)."""
    if a == 0.0:
        return torch.relu
    return lambda x: torch.where(x >= 0, x, a * x)


def _leaky_interval(a: float) -> Callable[[Tensor, Tensor], Pair]:
    """Exact range: extremes are at ``l``, ``u`` or the kink 0."""
    fn = _leaky_fn(a)

    def interval(l: Tensor, u: Tensor) -> Pair:
        vals = torch.stack([fn(l), fn(u), fn(clamp_point(torch.zeros_like(l), l, u))])
        return vals.amin(0), vals.amax(0)

    return interval


def _leaky_init(l: Tensor, u: Tensor, a: float) -> Tensor:
    """Adaptive slope: 1 if ``u > -l`` else ``a``."""
    return torch.where(u > -l, torch.ones_like(l), a).unsqueeze(0)


def _leaky_relax(a: float) -> Callable[[Tensor, Tensor, Tensor | None], Lines]:
    """Lines of LeakyRelu with negative-side slope ``a`` (Relu: ``a = 0``)."""
    fn, interval = _leaky_fn(a), _leaky_interval(a)
    convex = a <= 1

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        if convex and all_finite(l, u):
            lines = compiled.leaky_lines(a, l, u, alpha)
            if lines is not None:
                return lines
            return _leaky_finite(a, fn, l, u, _leaky_init(l, u, a) if alpha is None else alpha)
        if alpha is None:
            alpha = _leaky_init(l, u, a)
        l, u, rows = prepare(l, u, alpha, 1)
        s = rows[0].clamp(min(a, 1.0), max(a, 1.0))
        fl, fu = fn(l), fn(u)
        d = finite_width(l, u)
        k_fin = (safe(fu) - safe(fl)) / torch.where(d > 0, d, 1.0)
        cw, cb = chord(l, u, fl, fu, k_fin, (a, 1.0), upper=convex)
        zero = torch.zeros_like(s)
        lw, lb, uw, ub = (s, zero, cw, cb) if convex else (cw, cb, s, zero)
        cross = _crossing(l, u)
        exact = torch.where(l >= 0, torch.ones_like(l), a)
        lw, uw = torch.where(cross, lw, exact), torch.where(cross, uw, exact)
        lb, ub = torch.where(cross, lb, 0.0), torch.where(cross, ub, 0.0)
        return finish(lw, lb, uw, ub, *interval(l, u))

    return relax


def _leaky_finite(
    a: float, fn: Callable[[Tensor], Tensor], l: Tensor, u: Tensor, alpha: Tensor
) -> Lines:
    """The lines of :func:`_leaky_relax` for finite bounds and ``a <= 1`` (the common case in
    every bound pass, a third of the operations): lower ``s*x``, upper the chord where the
    interval crosses 0, the exact line elsewhere."""
    shape = params_shape(l.shape, alpha.shape[1:])
    s = torch.nan_to_num(alpha[0].to(l.dtype)).clamp(a, 1.0)
    cross = _crossing(l, u)
    fl, fu = fn(l), fn(u)
    k = (fu - fl) / torch.where(cross, u - l, 1.0)
    # Bias exact at both ends of a convex function, whatever the rounding of k.
    cb = torch.maximum(fl - k * l, fu - k * u)
    exact = torch.full_like(l, a).masked_fill(l >= 0, 1.0)
    zero = l.new_zeros(())
    lw = torch.where(cross, s, exact)
    uw = torch.where(cross, k, exact)
    ub = torch.where(cross, cb, zero)
    return Lines(lw.expand(shape), zero.expand(shape), uw.expand(shape), ub.expand(shape))


def _leaky(op: str, a: float) -> UnaryRelaxation:
    """The relaxation record of LeakyRelu with slope ``a`` under the name ``op``."""
    return UnaryRelaxation(
        op=op,
        fn=_leaky_fn(a),
        relax=_leaky_relax(a),
        n_alpha=1,
        alpha_init=lambda l, u: _leaky_init(l, u, a),
        split_mask=_crossing,
        interval=_leaky_interval(a),
        alpha_range=(min(a, 1.0), max(a, 1.0)),
    )


def relu_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Relu: lower ``alpha*x`` (alpha in [0, 1]), upper chord; exact off the kink."""
    return _leaky("Relu", 0.0)


def leaky_relu_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """LeakyRelu with attribute ``alpha`` (ONNX default 0.01); any real slope works."""
    return _leaky("LeakyRelu", float(attrs.get("alpha", 0.01)))


# --------------------------------------------------------------------------- Clip
def _clip_lower(l: Tensor, u: Tensor, lo: float, hi: float, frac: Tensor) -> Pair:
    """Lower line of ``clip(x, lo, hi)`` (``lo <= hi``) on ``[l, u]``.

    Left of ``lo`` the line pivots at ``(lo, lo)`` with slope ``frac * smax``; on
    ``[lo, inf)`` the op is ``min(x, hi)`` (concave) and the lower line is its chord.
    """
    fl, fu = l.clamp(lo, hi), u.clamp(lo, hi)
    d = finite_width(l, u)
    k_fin = (safe(fu) - safe(fl)) / torch.where(d > 0, d, 1.0)
    cw, cb = chord(l, u, fl, fu, k_fin, (1.0, 0.0), upper=False)
    w = torch.where(u <= hi, 1.0, torch.where(l >= hi, 0.0, cw))
    b = torch.where(u <= hi, 0.0, torch.where(l >= hi, hi, cb))
    if lo == -INF:
        return w, b
    if hi == INF:
        smax = torch.where(u <= lo, 0.0, torch.ones_like(u))
    else:
        beyond = u > hi
        smax = (hi - lo) / torch.where(beyond, u - lo, 1.0)
        smax = torch.where(u <= lo, 0.0, torch.where(beyond, smax, 1.0))
    s = frac.clamp(0.0, 1.0) * smax
    return torch.where(l < lo, s, w), torch.where(l < lo, lo * (1.0 - s), b)


def _clip_init(l: Tensor, u: Tensor, lo: float, hi: float) -> Tensor:
    """Adaptive fractions: steep lower line if more of [l, u] lies right of ``lo``."""
    return torch.stack([u - lo > lo - l, hi - l > u - hi]).to(l.dtype)


def _clip_relax(lo: float, hi: float) -> Callable[[Tensor, Tensor, Tensor | None], Lines]:
    """Lines of Clip; the upper line is the lower line of ``-clip(-x, -hi, -lo)``."""

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
        l, u, rows = prepare(l, u, _clip_init(l, u, lo, hi) if alpha is None else alpha, 2)
        lw, lb = _clip_lower(l, u, lo, hi, rows[0])
        uw, ub = _clip_lower(-u, -l, -hi, -lo, rows[1])
        return finish(lw, lb, uw, -ub, l.clamp(lo, hi), u.clamp(lo, hi))

    return relax


def clip_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Clip with attributes ``min``/``max`` (absent: -inf/inf; min > max: constant max)."""
    hi = float(attrs.get("max", INF))
    lo = min(float(attrs.get("min", -INF)), hi)
    return UnaryRelaxation(
        op="Clip",
        fn=lambda x: x.clamp(lo, hi),
        relax=_clip_relax(lo, hi),
        n_alpha=2,
        alpha_init=lambda l, u: _clip_init(l, u, lo, hi),
        split_mask=lambda l, u: ((l < lo) & (u > lo)) | ((l < hi) & (u > hi)),
        interval=lambda l, u: (l.clamp(lo, hi), u.clamp(lo, hi)),
        alpha_range=(0.0, 1.0),
    )


# --------------------------------------------------------------------------- Sign
def _sign_init(l: Tensor, u: Tensor) -> Tensor:
    """Adaptive: tilt the lower line if ``u > -l``, the upper one if ``-l > u``."""
    return torch.stack([u > -l, -l > u]).to(l.dtype)


def _sign_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Sign (sign(0) = 0).

    Crossing 0: lower ``-1 + s*x`` with ``s in [0, 2/u]``, upper ``1 + s*x`` with
    ``s in [0, 2/|l|]``. On ``[0, u]`` the lower line is ``x/u``; on ``[l, 0]`` the
    upper line is ``x/|l|``; otherwise constants.
    """
    l, u, rows = prepare(l, u, _sign_init(l, u) if alpha is None else alpha, 2)
    cross = _crossing(l, u)
    zl, zu = (l == 0) & (u > 0), (l < 0) & (u == 0)
    inv_u = 1.0 / torch.where(u > 0, u, 1.0)
    inv_l = 1.0 / torch.where(l < 0, -l, 1.0)
    sl, su = torch.sign(l), torch.sign(u)
    lw = torch.where(cross, 2 * rows[0].clamp(0.0, 1.0) * inv_u, torch.where(zl, inv_u, 0.0))
    uw = torch.where(cross, 2 * rows[1].clamp(0.0, 1.0) * inv_l, torch.where(zu, inv_l, 0.0))
    lb = torch.where(cross, -1.0, torch.where(zl, 0.0, sl))
    ub = torch.where(cross, 1.0, torch.where(zu, 0.0, su))
    return finish(lw, lb, uw, ub, sl, su)


def sign_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Sign (ONNX: sign(0) = 0)."""
    return UnaryRelaxation(
        op="Sign",
        fn=torch.sign,
        relax=_sign_relax,
        n_alpha=2,
        alpha_init=_sign_init,
        split_mask=_crossing,
        interval=lambda l, u: (torch.sign(l), torch.sign(u)),
        alpha_range=(0.0, 1.0),
    )


# --------------------------------------------------------------------------- Floor
def _floor_init(l: Tensor, u: Tensor) -> Tensor:
    """Slope 1 for both lines (``x - 1 <= floor(x) <= x``)."""
    return torch.ones((2, *l.shape), dtype=l.dtype, device=l.device)


def _floor_relax(l: Tensor, u: Tensor, alpha: Tensor | None) -> Lines:
    """Floor: constants when ``floor(l) == floor(u)``; else lines with slopes ``alpha``
    and exact biases over the step corners ``(k, k)``, ``(k, k-1)`` (extreme integers
    ``k`` in ``(l, u]``) and the endpoints; ``x - 1``/``x`` for infinite bounds."""
    l, u, rows = prepare(l, u, _floor_init(l, u) if alpha is None else alpha, 2)
    fl, fu = torch.floor(l), torch.floor(u)
    fin = torch.isfinite(l) & torch.isfinite(u)
    const = fin & (fl == fu)
    d = finite_width(l, u)
    smax = (2.0 / torch.where(d > 0, d, 1.0)).clamp(min=1.0)
    s_lo = torch.minimum(rows[0].clamp(min=0.0), smax)
    s_up = torch.minimum(rows[1].clamp(min=0.0), smax)
    ls, us = safe(l), safe(u)
    k1, kn = torch.floor(ls) + 1, torch.floor(us)
    xs = torch.stack([ls, us, k1, k1, kn, kn])
    ys = torch.stack([torch.floor(ls), kn, k1 - 1, k1, kn - 1, kn])
    lb = (ys - s_lo * xs).amin(0)
    ub = (ys - s_up * xs).amax(0)
    lw = torch.where(const, 0.0, torch.where(fin, s_lo, 1.0))
    uw = torch.where(const, 0.0, torch.where(fin, s_up, 1.0))
    lb = torch.where(const, fl, torch.where(fin, lb, -1.0))
    ub = torch.where(const, fl, torch.where(fin, ub, 0.0))
    return finish(lw, lb, uw, ub, fl, fu)


def floor_relaxation(attrs: Mapping[str, Any]) -> UnaryRelaxation:
    """Floor (a step function; split where the interval contains an integer)."""
    return UnaryRelaxation(
        op="Floor",
        fn=torch.floor,
        relax=_floor_relax,
        n_alpha=2,
        alpha_init=_floor_init,
        split_mask=lambda l, u: torch.floor(l) != torch.floor(u),
        interval=lambda l, u: (torch.floor(l), torch.floor(u)),
    )


RELAXATIONS: dict[str, Callable[[Mapping[str, Any]], UnaryRelaxation]] = {
    "Relu": relu_relaxation,
    "LeakyRelu": leaky_relu_relaxation,
    "Clip": clip_relaxation,
    "Sign": sign_relaxation,
    "Floor": floor_relaxation,
}
