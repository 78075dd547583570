"""Registry-driven soundness test of every relaxation in ``bounds.relax.FACTORIES``.

Ops registered later are covered automatically. An op whose factory needs node
attributes must get sample attributes in ``SAMPLE_ATTRS`` (the build test fails
otherwise); every other op runs with ``{}``.

For each op and attribute set, hypothesis draws boxes inside the op's ``domain``
(wide, narrow, single points, integer-aligned, near 0, crossing 0, infinite ends) and
checks, in float64 and float32, for the default relaxation, ``alpha_init`` and a
batch of arbitrary ``alpha`` values (inside the box, fractions, large, +-inf, NaN)
with an extra leading batch dimension:

* ``lw*x + lb <= f(x) <= uw*x + ub`` on 10^4 random points plus endpoints, 0,
  integers (and the floats just below them), half-integers and far points;
* ``interval`` contains every ``f(x)``; no NaN anywhere; output shapes broadcast.

Lines are evaluated in float64 with the relaxation's coefficients. Tolerance:
float64 ``1e-6 + 1e-9*scale``, float32 ``1e-5*max(1, scale)``, where
``scale = max(|f(x)|, |w*x|, |b|)`` is the magnitude of the terms (rounding of a
line is relative to its terms, not to the function value).

A :class:`DomainError` is accepted only when ``f`` is undefined or infinite
somewhere in the box (at ``l``, ``u``, 0 or a sample); such boxes are skipped.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from bounds.relax import FACTORIES, DomainError, Lines, UnaryRelaxation
from models.ops import ELEMENTWISE_NONLINEAR

INF = math.inf
F64 = torch.float64

SAMPLE_ATTRS: dict[str, list[dict[str, Any]]] = {
    "LeakyRelu": [{"alpha": 0.01}, {"alpha": 0.3}, {"alpha": -0.5}, {"alpha": 3.0}],
    "Clip": [
        {"min": -1.0, "max": 1.0},
        {"min": 0.0, "max": 6.0},
        {"max": 0.5},
        {"min": -2.0},
        {"min": 1.5, "max": 1.5},
    ],
    "Pow": [
        {"exponent": e} for e in (2, 3, 4, 5, 6, 7, 8, 0, 1, 0.5, -1, 1.5, 0.3, 2.5, -2, -3, -0.5)
    ],
    "Gelu": [{}, {"approximate": "tanh"}],
}

CASES = [(op, attrs) for op in sorted(FACTORIES) for attrs in SAMPLE_ATTRS.get(op, [{}])]
N_SAMPLES = 10_000
ALPHA_K = 4  # leading batch dimension of the random alpha tensor


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    op, attrs = case
    return op + "".join(f"-{k}={v}" for k, v in sorted(attrs.items()))


def test_sample_attrs_name_canonical_ops() -> None:
    assert set(SAMPLE_ATTRS) <= ELEMENTWISE_NONLINEAR


@pytest.mark.parametrize("op", sorted(FACTORIES))
def test_every_registered_op_builds(op: str) -> None:
    for attrs in SAMPLE_ATTRS.get(op, [{}]):
        try:
            rel = FACTORIES[op](attrs)
        except (KeyError, ValueError, TypeError) as err:
            pytest.fail(f"{op}{attrs} cannot be built ({err!r}); add sample attrs to SAMPLE_ATTRS")
        assert isinstance(rel, UnaryRelaxation)
        assert rel.op == op
        assert rel.n_alpha == 0 or rel.alpha_init is not None
        assert rel.domain[0] <= rel.domain[1]


# --------------------------------------------------------------------------- boxes
_END = st.floats(-50.0, 50.0, allow_nan=False)


@st.composite
def _raw_box(draw: st.DrawFn) -> tuple[float, float]:
    kind = draw(st.sampled_from(["wide", "narrow", "point", "int", "near0", "cross", "inf"]))
    a = draw(_END)
    if kind == "wide":
        b = draw(_END)
    elif kind == "narrow":
        b = a + 10.0 ** draw(st.floats(-9.0, -1.0))
    elif kind == "point":
        b = a
    elif kind == "int":
        a = float(draw(st.integers(-4, 4)))
        b = a + draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]))
    elif kind == "near0":
        a = draw(st.sampled_from([-1.0, 1.0])) * 10.0 ** draw(st.floats(-9.0, 0.0))
        b = a * draw(st.floats(1.0, 100.0))
    elif kind == "cross":
        a, b = -abs(a), abs(draw(_END))
    else:
        b = draw(_END)
        side = draw(st.sampled_from(["lo", "hi", "both"]))
        a = -INF if side in ("lo", "both") else a
        b = INF if side in ("hi", "both") else b
    return (min(a, b), max(a, b))


def _into_domain(box: tuple[float, float], domain: tuple[float, float]) -> tuple[float, float]:
    """Reflect finite ends into the domain; infinite ends outside it become its bounds."""
    lo, hi = domain
    ends = []
    for x in box:
        if math.isinf(x):
            x = min(max(x, lo), hi)
        elif x < lo:
            x = min(lo + (lo - x), hi)
        elif x > hi:
            x = max(hi - (x - hi), lo)
        ends.append(x)
    return (min(ends), max(ends))


# --------------------------------------------------------------------------- samples
def _samples(l: float, u: float, gen: torch.Generator) -> torch.Tensor:
    """float64 points of ``[l, u]``: random, endpoints, 0, (half-)integers, far points."""
    a, b = max(l, -100.0), min(u, 100.0)
    pts = [a + (b - a) * torch.rand(N_SAMPLES, generator=gen, dtype=torch.float64)]
    grid = np.arange(math.ceil(2 * a), math.floor(2 * b) + 1) / 2.0
    below = np.nextafter(grid[grid == np.round(grid)], -np.inf)
    far = [x for x in (1e3, 1e6, -1e3, -1e6) if l <= x <= u]
    extra = [a, b, min(max(0.0, l), u), *grid.tolist(), *below.tolist(), *far]
    pts.append(torch.tensor(extra, dtype=torch.float64))
    x = torch.cat(pts)
    return x[(x >= l) & (x <= u)]


def _tolerance(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.float64:
        return 1e-6 + 1e-9 * scale
    return 1e-5 * scale.clamp(min=1.0)


def _assert_lines_sound(
    lines: Lines, j: int, x: torch.Tensor, fx: torch.Tensor, dtype: torch.dtype, what: str
) -> None:
    """Lines at batch column ``j`` (all leading slices) bracket ``fx`` at points ``x``."""
    for name, w, b, sign in (("lower", lines.lw, lines.lb, 1), ("upper", lines.uw, lines.ub, -1)):
        w64 = w[..., j].reshape(-1, 1).double()
        b64 = b[..., j].reshape(-1, 1).double()
        wx = torch.where(w64 == 0, 0.0, w64 * x)
        val = wx + b64
        scale = torch.maximum(torch.maximum(fx.abs(), wx.abs()), b64.abs())
        gap = sign * (val - fx)  # must be <= tol
        ok = (sign * val <= sign * fx) | (gap <= _tolerance(scale, dtype))
        if not bool(ok.all()):
            k, i = (~ok).nonzero()[0].tolist()
            pytest.fail(
                f"{what}: {name} line unsound at x={x[i].item()!r}: f={fx[i].item()!r}, "
                f"line={val[k, i].item()!r} (w={w64[k, 0].item()!r}, b={b64[k, 0].item()!r})"
            )


def _random_alpha(rel: UnaryRelaxation, l: torch.Tensor, u: torch.Tensor, gen: torch.Generator):
    """``[n_alpha, ALPHA_K, B]``: inside [l, u], fractions, large normal, extreme values."""
    n, shape = rel.n_alpha, (rel.n_alpha, *l.shape)
    lo = torch.where(torch.isfinite(l), l, torch.where(torch.isfinite(u), u - 10.0, -10.0))
    hi = torch.where(torch.isfinite(u), u, lo + 20.0)
    inside = lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=l.dtype)
    frac = torch.rand(shape, generator=gen, dtype=l.dtype) * 2.0 - 0.5
    big = torch.randn(shape, generator=gen, dtype=l.dtype) * 30.0
    specials = torch.tensor([INF, -INF, math.nan, 1e30, -1e30, 0.0, 1.0], dtype=l.dtype)
    idx = torch.randint(0, len(specials), shape, generator=gen)
    assert n > 0
    return torch.stack([inside, frac, big, specials[idx]], dim=1)


def _variants(rel: UnaryRelaxation, l: torch.Tensor, u: torch.Tensor, gen: torch.Generator):
    """(name, alpha) pairs to test."""
    out: list[tuple[str, torch.Tensor | None]] = [("default", None)]
    if rel.n_alpha > 0:
        assert rel.alpha_init is not None
        init = rel.alpha_init(l, u)
        assert tuple(init.shape) == (rel.n_alpha, *l.shape)
        assert not bool(torch.isnan(init).any())
        out += [("alpha_init", init), ("random_alpha", _random_alpha(rel, l, u, gen))]
    return out


def _domain_error_is_legit(rel: UnaryRelaxation, l: float, u: float) -> bool:
    pts = torch.tensor([l, u, min(max(0.0, l), u)], dtype=torch.float64)
    if math.isfinite(l) and math.isfinite(u):
        pts = torch.cat([pts, torch.linspace(l, u, 101, dtype=torch.float64)])
    return not bool(torch.isfinite(rel.fn(pts)).all())


def _valid_boxes(rel: UnaryRelaxation, boxes: list[tuple[float, float]]):
    """Drop boxes that raise DomainError (asserting f is undefined somewhere there)."""
    kept = []
    for l, u in boxes:
        try:
            rel.relax(torch.tensor([l], dtype=F64), torch.tensor([u], dtype=F64), None)
        except DomainError:
            assert _domain_error_is_legit(rel, l, u), f"{rel.op}: DomainError on [{l}, {u}]"
            continue
        kept.append((l, u))
    return kept


def _check_dtype(rel: UnaryRelaxation, boxes, dtype: torch.dtype, gen: torch.Generator) -> None:
    l = torch.tensor([b[0] for b in boxes], dtype=dtype)
    u = torch.tensor([b[1] for b in boxes], dtype=dtype)
    interval = rel.interval(l, u) if rel.interval is not None else None
    results = []
    for name, alpha in _variants(rel, l, u, gen):
        lines = rel.relax(l, u, alpha)
        shape = l.shape if alpha is None else torch.broadcast_shapes(l.shape, alpha.shape[1:])
        for t in (lines.lw, lines.lb, lines.uw, lines.ub):
            assert tuple(t.shape) == tuple(shape), f"{rel.op} {name}: shape {t.shape} != {shape}"
            assert not bool(torch.isnan(t).any()), f"{rel.op} {name}: NaN in lines"
        results.append((name, lines))
    for j, (lj, uj) in enumerate(zip(l.tolist(), u.tolist(), strict=True)):
        x = _samples(lj, uj, gen).to(dtype).double()
        fx = rel.fn(x)
        what = f"{rel.op} on [{lj!r}, {uj!r}] {dtype}"
        for name, lines in results:
            _assert_lines_sound(lines, j, x, fx, dtype, f"{what} {name}")
        if interval is not None:
            lo, hi = interval[0][j].double(), interval[1][j].double()
            assert not (bool(torch.isnan(lo)) or bool(torch.isnan(hi))), f"{what}: NaN interval"
            tol = _tolerance(fx.abs(), dtype)
            assert bool(((fx >= lo) | (fx - lo >= -tol)).all()), f"{what}: interval low {lo}"
            assert bool(((fx <= hi) | (hi - fx >= -tol)).all()), f"{what}: interval high {hi}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(raw=st.lists(_raw_box(), min_size=1, max_size=3))
def test_relaxation_sound(case: tuple[str, dict[str, Any]], raw: list[tuple[float, float]]) -> None:
    op, attrs = case
    rel = FACTORIES[op](attrs)
    boxes = _valid_boxes(rel, [_into_domain(b, rel.domain) for b in raw])
    if not boxes:
        reject()
    gen = torch.Generator().manual_seed(_seed(boxes))
    for dtype in (torch.float64, torch.float32):
        _check_dtype(rel, boxes, dtype, gen)


def _seed(boxes: list[tuple[float, float]]) -> int:
    """A deterministic generator seed derived from the boxes."""
    return int(1000 * sum(abs(x) for b in boxes for x in b if math.isfinite(x))) % 100_003
