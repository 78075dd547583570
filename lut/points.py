"""Public branching-point lookup: where to split a neuron's input interval.

``branching_points(op, lower, upper)`` returns, elementwise, the point ``p`` that
minimises the total relaxation gap of the two halves ``[l, p]`` and ``[p, u]``:

1. the interval is reduced (period, shift, scale; see :mod:`lut.grid`) and looked
   up in the op's table (multilinear interpolation of the stored fractions by
   default, or the reference's inner-grid-interval rule with ``mode="inner"``);
2. optionally (``polish=True``, needs the registered relaxation; costs 8
   relaxation evaluations per point), the interpolated fraction, the extreme
   fractions of the grid cell and the midpoint are compared on the actual interval
   and the best is kept, so the point is never worse than the midpoint;
3. intervals outside the table are optimised directly (coarse scan + golden
   section, vectorised) with the registered relaxation; without one,
   :class:`~lut.errors.MissingRelaxationError` is raised (never a silent midpoint).

Guarantees, for every element (inputs of any float dtype and device):

* ``l < u``: ``l < p < u`` whenever a representable number lies strictly between
  them (else ``p = l``); ``l == u`` (infinite included): ``p = l``;
* ``l`` or ``u`` infinite (not NaN): a finite point inside, ``0`` for
  ``(-inf, inf)``, ``u - max(1, |u|)`` or ``l + max(1, |l|)`` for half-lines
  (``l`` when ``l`` is the largest finite number);
* NaN only where ``l`` or ``u`` is NaN; ``l > u`` (invalid) returns ``l``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .objective import (
    Objective,
    Relax1D,
    RelaxMul,
    optimise_fraction,
    split_objective_1d,
    split_objective_mul,
)
from .specs import MUL, UNARY_OPS
from .store import DEFAULT_STORE, TableStore
from .table import LookupTable

T_EPS = 1e-6
FALLBACK_COARSE = 16
FALLBACK_GOLDEN = 20


def register_relaxation(
    op: str, relax: Relax1D | RelaxMul, *, store: TableStore | None = None
) -> None:
    """Register op ``op``'s relaxation ``(l, u) -> (lw, lb, uw, ub)`` in ``store``
    (default: the process-wide store); ``op="Mul"`` takes a product relaxation."""
    (store or DEFAULT_STORE).register_relaxation(op, relax)


def register_relaxation_mul(relax: RelaxMul, *, store: TableStore | None = None) -> None:
    """Register the product relaxation ``(xl, xu, yl, yu) -> (lx, ly, lc, ux, uy, uc)``."""
    (store or DEFAULT_STORE).register_relaxation(MUL, relax)


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def branching_points(
    op: str,
    lower: Tensor,
    upper: Tensor,
    *,
    mode: str = "interp",
    polish: bool = False,
    store: TableStore | None = None,
) -> Tensor:
    """Split points for a unary op's input intervals ``[lower, upper]`` (see module doc).

    Args:
        op: ONNX-style op name, one of :data:`lut.specs.UNARY_OPS`.
        lower, upper: interval ends, same (broadcastable) shape, any float dtype/device.
        mode: table lookup rule, ``"interp"`` or ``"inner"``.
        polish: compare candidates on the actual interval with the registered relaxation.
        store: table store (default: the process-wide one).

    Returns:
        points with the broadcast shape and ``lower``'s dtype.

    Raises:
        KeyError: unknown op.
        MissingTableError, StaleTableError: the table is absent, unreadable, of another
            schema, or built with a relaxation other than the registered one (unless
            the store rebuilds: ``TableStore(auto_rebuild=True)``).
        MissingRelaxationError: an interval lies outside the table and no relaxation
            is registered. Errors of the relaxation itself (e.g. a domain error for
            a Reciprocal interval containing 0) propagate.
    """
    if op not in UNARY_OPS:
        raise KeyError(f"no branching-point table for op {op!r}; known: {', '.join(UNARY_OPS)}")
    return _points(op, [lower, upper], mode, polish, store or DEFAULT_STORE)


def branching_points_mul(
    x_lower: Tensor,
    x_upper: Tensor,
    y_lower: Tensor,
    y_upper: Tensor,
    *,
    mode: str = "interp",
    polish: bool = False,
    store: TableStore | None = None,
) -> Tensor:
    """Split points of ``x``'s interval in the product ``x*y`` (``y`` kept whole).

    Same guarantees, options and errors as :func:`branching_points` (table ``"Mul"``);
    the guarantees concern ``x``'s interval. With the engine's default McCormick
    relaxation the optimum is exactly the midpoint (the gap volume is proportional
    to the squared widths), which the table reproduces.
    """
    return _points(MUL, [x_lower, x_upper, y_lower, y_upper], mode, polish, store or DEFAULT_STORE)


def direct_points(relax: Relax1D, lower: Tensor, upper: Tensor) -> Tensor:
    """Split points found by direct optimisation with ``relax`` (no table), with the
    same guarantees as :func:`branching_points`; for ops without a table."""
    ends = list(torch.broadcast_tensors(lower, upper))
    out_dtype = ends[0].dtype if ends[0].is_floating_point() else torch.get_default_dtype()
    l, u = (e.to(_work_dtype(e)) for e in ends)
    regular = torch.isfinite(l) & torch.isfinite(u) & (l < u)
    t = torch.full_like(l, 0.5)
    if bool(regular.any()):
        objective = split_objective_1d(relax, l[regular], u[regular])
        t[regular], _ = optimise_fraction(objective, l[regular], FALLBACK_COARSE, FALLBACK_GOLDEN)
    return _compose(t, l, u, ends, out_dtype)


def _compose(t: Tensor, l: Tensor, u: Tensor, ends: list[Tensor], dtype: torch.dtype) -> Tensor:
    t = t.clamp(T_EPS, 1.0 - T_EPS)
    p = l + t * (u - l)
    p = torch.where(torch.isfinite(p), p, l * (1.0 - t) + u * t)
    return _finalise(p, ends[0].to(dtype), ends[1].to(dtype), dtype)


def _objective(store: TableStore, name: str, ends: list[Tensor]) -> Objective:
    relax = store.relaxation(name)
    if name == MUL:
        return split_objective_mul(relax, *ends)
    return split_objective_1d(relax, ends[0], ends[1])


def _points(name: str, ends: list[Tensor], mode: str, polish: bool, store: TableStore) -> Tensor:
    out_dtype = ends[0].dtype if ends[0].is_floating_point() else torch.get_default_dtype()
    ends = list(torch.broadcast_tensors(*ends))
    work = [e.to(_work_dtype(e)) for e in ends]
    l, u = work[0], work[1]
    regular = torch.isfinite(l) & torch.isfinite(u) & (l < u)
    t = torch.full_like(l, 0.5)
    if bool(regular.any()):
        sub = [w[regular] for w in work]
        t[regular] = _fractions(store.get(name), store, sub, mode, polish)
    return _compose(t, l, u, ends, out_dtype)


def _reduce(table: LookupTable, ends: list[Tensor]) -> tuple[list[Tensor], Tensor, Tensor]:
    """Axis keys of the reduced intervals, mask of finite reductions, mirror flag of interval 0."""
    keys: list[Tensor] = []
    ok = torch.ones_like(ends[0], dtype=torch.bool)
    mirror = torch.zeros_like(ok)
    for i, red in enumerate(table.grid.reductions):
        l, u = ends[2 * i], ends[2 * i + 1]
        a, b = red.affine(l, u)
        lo, hi = a * l + b, a * u + b
        keys += [torch.minimum(lo, hi), torch.maximum(lo, hi)]
        ok &= torch.isfinite(a) & torch.isfinite(b)
        if i == 0:
            mirror = a < 0
    return table.grid.key_values(keys), ok, mirror


def _fractions(
    table: LookupTable, store: TableStore, ends: list[Tensor], mode: str, polish: bool
) -> Tensor:
    """Split fractions (relative to interval 0) for finite intervals with ``l < u``."""
    keys, ok, mirror = _reduce(table, ends)
    inside = ok & table.contains(keys)
    t = torch.full_like(ends[0], 0.5)
    if bool(inside.any()):
        t[inside] = _from_table(
            table,
            store,
            [k[inside] for k in keys],
            [e[inside] for e in ends],
            mirror[inside],
            mode,
            polish,
        )
    outside = ~inside
    if bool(outside.any()):
        sub = [e[outside] for e in ends]
        objective = _objective(store, table.name, sub)
        t[outside], _ = optimise_fraction(objective, sub[0], FALLBACK_COARSE, FALLBACK_GOLDEN)
    return t


def _from_table(
    table: LookupTable,
    store: TableStore,
    keys: list[Tensor],
    ends: list[Tensor],
    mirror: Tensor,
    mode: str,
    polish: bool,
) -> Tensor:
    def unmirror(v: Tensor) -> Tensor:
        return torch.where(mirror, 1.0 - v, v)

    t = unmirror(table.lookup(keys, mode))
    if not (polish and store.has_relaxation(table.name)):
        return t
    values, _ = table.corners(keys)
    candidates = [t, unmirror(values.amin(0)), unmirror(values.amax(0)), torch.full_like(t, 0.5)]
    objective = _objective(store, table.name, ends)
    best_t, best_v = t, torch.full_like(t, math.inf)
    for c in candidates:
        v = objective(c.clamp(T_EPS, 1.0 - T_EPS))
        v = torch.where(torch.isnan(v), torch.full_like(v, math.inf), v)
        better = v < best_v
        best_t, best_v = torch.where(better, c, best_t), torch.where(better, v, best_v)
    return best_t


def _finalise(p: Tensor, l: Tensor, u: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast to ``dtype`` and enforce the guarantees listed in the module docstring."""
    p = p.to(dtype)
    big = torch.finfo(dtype).max
    one = torch.ones_like(l)
    half_lo = torch.where(torch.isfinite(u), u - torch.maximum(one, u.abs()), torch.zeros_like(u))
    half_hi = l + torch.maximum(one, l.abs())
    p = torch.where(torch.isinf(l) & ~torch.isinf(u), half_lo, p)
    p = torch.where(torch.isinf(u) & ~torch.isinf(l), half_hi, p)
    p = torch.where(torch.isinf(l) & torch.isinf(u), torch.zeros_like(p), p)
    p = p.clamp(-big, big)
    lo = torch.nextafter(l, torch.full_like(l, math.inf))
    hi = torch.nextafter(u, torch.full_like(u, -math.inf))
    p = torch.minimum(torch.maximum(p, lo), hi)
    p = torch.where(p > l, p, l)
    p = torch.where(l >= u, l, p)
    nan = torch.isnan(l) | torch.isnan(u)
    return torch.where(nan, torch.full_like(p, math.nan), p)
