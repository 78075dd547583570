"""Helpers shared by the elementwise relaxations (chords, clamping, finishing lines)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .base import DomainError, Lines

INF = float("inf")
Pair = tuple[Tensor, Tensor]


# --------------------------------------------------------------------------- helpers
def params_shape(bounds: torch.Size, params: torch.Size) -> torch.Size:
    """The broadcast of an interval's shape and its parameters' (``[S, B, ...]`` over
    ``[B, ...]`` in every bound pass), without ``torch.broadcast_shapes``' cost (a tenth
    of a millisecond a call, paid at every relaxation) when one is a suffix of the other."""
    if params == bounds or params[len(params) - len(bounds) :] == bounds:
        return params
    if bounds[len(bounds) - len(params) :] == params:
        return bounds
    return torch.broadcast_shapes(bounds, params)


def prepare(
    l: Tensor, u: Tensor, alpha: Tensor, n_alpha: int, *, expand_bounds: bool = True
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Broadcast ``l``, ``u`` and the rows of ``alpha`` ([n_alpha, *S]) to one shape.

    With ``expand_bounds=False`` only the rows are broadcast; ``l`` and ``u`` keep their
    sizes (rank padded with leading 1s) so that whatever a relaxation computes from the
    bounds alone is computed once, not once per objective row (alpha-CROWN's per-row
    parameters); the relaxation must then combine them by broadcasting only.

    NaN entries of ``alpha`` become 0 and infinite ones the largest finite float, so
    that clamping them afterwards always yields a finite, valid parameter. Infinite
    bounds are detached (their gradient is 0 instead of NaN).
    """
    if alpha.dim() < 1 or alpha.shape[0] < n_alpha:
        raise ValueError(f"alpha must have shape [{n_alpha}, *S], got {tuple(alpha.shape)}")
    shape = params_shape(l.shape, alpha.shape[1:])
    rows = torch.nan_to_num(alpha.to(l.dtype))
    l, u = (torch.where(torch.isfinite(x), x, x.detach()) for x in (l, u))
    if expand_bounds:
        l, u = l.expand(shape), u.expand(shape)
    elif l.dim() < len(shape):
        l, u = (x.reshape((1,) * (len(shape) - x.dim()) + tuple(x.shape)) for x in (l, u))
    return l, u, [row.expand(shape) for row in rows[:n_alpha].unbind(0)]


def pow0(x: Tensor, p: float) -> Tensor:
    """``x**p`` for ``x >= 0`` (``0**p`` is 0, or inf if p < 0) with gradient 0 at 0."""
    pos = x > 0
    base = torch.where(pos, x, 1.0)
    return torch.where(pos, torch.sqrt(base) if p == 0.5 else base.pow(p), 0.0 if p > 0 else INF)


def safe(x: Tensor, fill: float = 0.0) -> Tensor:
    """``x`` with non-finite entries replaced by ``fill`` (for masked-out branches)."""
    return torch.where(torch.isfinite(x), x, fill)


def finite_width(l: Tensor, u: Tensor) -> Tensor:
    """``u - l`` where both ends are finite, else 0."""
    both = torch.isfinite(l) & torch.isfinite(u)
    return torch.where(both, safe(u) - safe(l), 0.0)


def interior_point(l: Tensor, u: Tensor) -> Tensor:
    """A finite point of ``[l, u]``: the midpoint, or a point near the finite end."""
    fin_l, fin_u = torch.isfinite(l), torch.isfinite(u)
    ls, us = safe(l), safe(u)
    mid = ls / 2 + us / 2
    right = ls + ls.abs().clamp(min=1.0)
    left = us - us.abs().clamp(min=1.0)
    return torch.where(fin_l & fin_u, mid, torch.where(fin_l, right, torch.where(fin_u, left, 0.0)))


def clamp_point(t: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """``t`` clamped into ``[lo, hi]`` (``hi`` wins if ``lo > hi``)."""
    return torch.minimum(torch.maximum(t, lo), hi)


def chord(
    l: Tensor,
    u: Tensor,
    fl: Tensor,
    fu: Tensor,
    k_fin: Tensor,
    tails: tuple[float, float],
    upper: bool,
) -> Pair:
    """Chord ``(slope, bias)`` of a convex (``upper``) or concave (lower) ``f`` on ``[l, u]``.

    Args:
        fl, fu: ``f(l)``, ``f(u)``.
        k_fin: the chord slope where both ends are finite (computed stably by the caller).
            The bias is the max (upper) / min (lower) of ``f - k*x`` over both ends, which
            is exact for *any* slope on a convex / concave ``f``, so rounding in ``k`` or
            cancellation at one end cannot make the line unsound.
        tails: asymptotic slopes of ``f`` at ``-inf`` and ``+inf``. With one infinite end
            the chord tends to the line of the tail slope through the finite end, which is
            sound for convex (upper) and concave (lower) functions. Infinite tail slopes
            (or two infinite ends) give slope 0 and a NaN bias, which :func:`finish`
            turns into the interval bound.
    """
    fin_l, fin_u = torch.isfinite(l), torch.isfinite(u)
    left, right = tails
    tail_inf = ~fin_l & ~fin_u
    if math.isinf(right):
        tail_inf = tail_inf | (fin_l & ~fin_u)
    if math.isinf(left):
        tail_inf = tail_inf | (~fin_l & fin_u)
    left, right = (0.0 if math.isinf(s) else s for s in tails)
    k = torch.where(fin_l & fin_u, k_fin, torch.where(fin_l, right, left))
    k = torch.where(tail_inf, 0.0, k)
    b_l, b_u = safe(fl) - k * safe(l), safe(fu) - k * safe(u)
    both = torch.maximum(b_l, b_u) if upper else torch.minimum(b_l, b_u)
    b = torch.where(fin_l & fin_u, both, torch.where(fin_l, b_l, b_u))
    return k, torch.where(tail_inf, float("nan"), b)


def finish(lw: Tensor, lb: Tensor, uw: Tensor, ub: Tensor, fl: Tensor, fu: Tensor) -> Lines:
    """Final guard: broadcast, and replace unusable lines by the interval bounds.

    A lower line with a non-finite slope or a NaN/``+inf`` bias becomes the constant
    ``fl`` (``+inf`` is clamped to the largest float: it is the overflow of a finite
    value); a lower line with bias ``-inf`` gets slope 0. Symmetrically for the upper.
    """
    lw, lb, uw, ub, fl, fu = torch.broadcast_tensors(lw, lb, uw, ub, fl, fu)
    big = torch.finfo(fl.dtype).max
    fl = torch.nan_to_num(fl, nan=-INF, posinf=big, neginf=-INF)
    fu = torch.nan_to_num(fu, nan=INF, posinf=INF, neginf=-big)
    bad = ~torch.isfinite(lw) | torch.isnan(lb) | (lb == INF)
    lb = torch.where(bad, fl, lb)
    lw = torch.where(bad | torch.isinf(lb), 0.0, lw)
    bad = ~torch.isfinite(uw) | torch.isnan(ub) | (ub == -INF)
    ub = torch.where(bad, fu, ub)
    uw = torch.where(bad | torch.isinf(ub), 0.0, uw)
    return Lines(lw, lb, uw, ub)


def reflect(lines: Lines, odd: bool) -> Lines:
    """Lines of ``f(x) = g(-x)`` (``odd=False``) or ``-g(-x)`` (``odd=True``) from g's.

    ``lines`` bound ``g`` on ``[-u, -l]``; the result bounds ``f`` on ``[l, u]``.
    """
    if odd:
        return Lines(lines.uw, -lines.ub, lines.lw, -lines.lb)
    return Lines(-lines.lw, lines.lb, -lines.uw, lines.ub)


def select(mask: Tensor, a: Lines, b: Lines) -> Lines:
    """Elementwise ``a`` where ``mask`` else ``b``."""
    return Lines(*(torch.where(mask, x, y) for x, y in zip(_fields(a), _fields(b), strict=True)))


def _fields(lines: Lines) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(lw, lb, uw, ub)``."""
    return lines.lw, lines.lb, lines.uw, lines.ub


def point_init(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``alpha_init`` returning ``fn(l, u)`` as the single tangent-point row."""

    def init(l: Tensor, u: Tensor) -> Tensor:
        return fn(l, u).unsqueeze(0)

    return init


def _tangent_point(
    alpha: Tensor | None, l: Tensor, u: Tensor, init: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(l, u, t)``: the bounds (broadcastable, see :func:`prepare`) and the tangent point
    clamped into ``[l, u]`` (the broadcast shape)."""
    if alpha is None:
        alpha = init(l, u)
    l, u, rows = prepare(l, u, alpha, 1, expand_bounds=False)
    return l, u, clamp_point(rows[0], l, u)


def check_positive(op: str, l: Tensor, u: Tensor, allow_negative: bool = True) -> None:
    """Raise :class:`DomainError` unless every interval has l > 0 (or u < 0 if allowed)."""
    bad = (l <= 0) & (u >= 0) if allow_negative else l <= 0
    if not bool(bad.any()):
        return
    lo, hi = l[bad][0].item(), u[bad][0].item()
    if allow_negative:
        raise DomainError(
            f"{op}: input interval [{lo:.6g}, {hi:.6g}] contains 0, where {op} is unbounded; "
            "intervals must be entirely positive or entirely negative"
        )
    raise DomainError(
        f"{op}: input lower bound {lo:.6g} <= 0 (interval [{lo:.6g}, {hi:.6g}]); {op} needs x > 0"
    )


def clamp_nonneg(op: str, l: Tensor, u: Tensor) -> Pair:
    """Clamp a negative lower bound to 0; raise when the whole interval is below 0."""
    if bool((u < 0).any()):
        raise DomainError(
            f"{op}: input upper bound {u.min().item():.6g} < 0; {op} is defined for x >= 0 only"
        )
    return l.clamp(min=0.0), u.clamp(min=0.0)
