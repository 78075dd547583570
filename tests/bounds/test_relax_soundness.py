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
EXAMPLES_PER_OP = 40  # hypothesis examples per op, shared by its attribute variants
MIN_EXAMPLES = 10
ALPHA_K = 4  # leading batch dimension of the random alpha tensor


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Small tensors: intra-op threading only adds overhead (and contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
def _special_points(l: float, u: float) -> list[float]:
    """Endpoints, 0, (half-)integers and the floats just below integers, far points."""
    a, b = max(l, -100.0), min(u, 100.0)
    grid = np.arange(math.ceil(2 * a), math.floor(2 * b) + 1) / 2.0
    below = np.nextafter(grid[grid == np.round(grid)], -np.inf)
    far = [x for x in (1e3, 1e6, -1e3, -1e6) if l <= x <= u]
    pts = [a, b, min(max(0.0, l), u), *grid.tolist(), *below.tolist(), *far]
    return [x for x in pts if l <= x <= u]


def _samples(l: torch.Tensor, u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``[M, B]`` points of the boxes (in their dtype): random plus special points."""
    l64, u64 = l.double(), u.double()
    a, b = l64.clamp(min=-100.0), u64.clamp(max=100.0)
    rand = a + (b - a) * torch.rand((N_SAMPLES, len(l)), generator=gen, dtype=F64)
    special = [_special_points(lj, uj) for lj, uj in zip(l64.tolist(), u64.tolist(), strict=True)]
    width = max(len(p) for p in special)
    padded = torch.tensor([p + [p[0]] * (width - len(p)) for p in special], dtype=F64).T
    x = torch.cat([rand, padded]).to(l.dtype)
    return torch.minimum(torch.maximum(x, l), u)


def _tolerance(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.float64:
        return 1e-6 + 1e-9 * scale
    return 1e-5 * scale.clamp(min=1.0)


def _assert_sound(
    rows: list[tuple[str, Lines]], x: torch.Tensor, fx: torch.Tensor, dtype: torch.dtype, what: str
) -> None:
    """Every line of every variant (rows of ``[K, B]``) brackets ``fx`` (``[M, B]``)."""
    names = [name for name, lines in rows for _ in range(lines.lw.numel() // x.shape[1])]
    for side, sign in (("lower", 1), ("upper", -1)):
        w = torch.cat([getattr(ln, side[0] + "w").reshape(-1, x.shape[1]) for _, ln in rows])
        b = torch.cat([getattr(ln, side[0] + "b").reshape(-1, x.shape[1]) for _, ln in rows])
        w64, b64 = w.double()[:, None, :], b.double()[:, None, :]
        wx = w64 * x
        val = wx + b64
        exact = val <= fx if sign > 0 else val >= fx
        if bool(exact.all()):
            continue
        idx = (~exact).nonzero(as_tuple=True)  # rounding-level violations only
        v, f, t = val[idx], fx.expand_as(val)[idx], wx[idx]
        scale = torch.maximum(torch.maximum(f.abs(), t.abs()), b64.expand_as(val)[idx].abs())
        bad = sign * (v - f) > _tolerance(scale, dtype)
        if bool(bad.any()):
            k, i, j = (c[bad][0].item() for c in idx)
            pytest.fail(
                f"{what} [{names[k]}]: {side} line unsound on box {j} at x={x[i, j].item()!r}: "
                f"f={fx[i, j].item()!r}, line={val[k, i, j].item()!r} "
                f"(w={w64[k, 0, j].item()!r}, b={b64[k, 0, j].item()!r})"
            )


def _random_alpha(rel: UnaryRelaxation, l: torch.Tensor, u: torch.Tensor, gen: torch.Generator):
    """``[n_alpha, ALPHA_K, B]``: inside [l, u], fractions, large normal, extreme values."""
    shape = (rel.n_alpha, *l.shape)
    lo = torch.where(torch.isfinite(l), l, torch.where(torch.isfinite(u), u - 10.0, -10.0))
    hi = torch.where(torch.isfinite(u), u, lo + 20.0)
    inside = lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=l.dtype)
    frac = torch.rand(shape, generator=gen, dtype=l.dtype) * 2.0 - 0.5
    big = torch.randn(shape, generator=gen, dtype=l.dtype) * 30.0
    specials = torch.tensor([INF, -INF, math.nan, 1e30, -1e30, 0.0, 1.0], dtype=l.dtype)
    idx = torch.randint(0, len(specials), shape, generator=gen)
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
    pts = torch.tensor([l, u, min(max(0.0, l), u)], dtype=F64)
    if math.isfinite(l) and math.isfinite(u):
        pts = torch.cat([pts, torch.linspace(l, u, 101, dtype=F64)])
    return not bool(torch.isfinite(rel.fn(pts)).all())


def _valid_boxes(rel: UnaryRelaxation, boxes: list[tuple[float, float]], dtype: torch.dtype):
    """Boxes rounded to ``dtype``, without those that raise DomainError (asserting that
    f is undefined or infinite somewhere there)."""
    boxes = torch.tensor(boxes, dtype=dtype).double().tolist()
    try:
        rel.relax(
            torch.tensor([b[0] for b in boxes], dtype=dtype),
            torch.tensor([b[1] for b in boxes], dtype=dtype),
            None,
        )
        return boxes
    except DomainError:
        pass
    kept = []
    for l, u in boxes:
        try:
            rel.relax(torch.tensor([l], dtype=dtype), torch.tensor([u], dtype=dtype), None)
        except DomainError:
            assert _domain_error_is_legit(rel, l, u), f"{rel.op}: DomainError on [{l}, {u}]"
            continue
        kept.append((l, u))
    return kept


def _check_dtype(rel: UnaryRelaxation, boxes, dtype: torch.dtype, gen: torch.Generator) -> None:
    l = torch.tensor([b[0] for b in boxes], dtype=dtype)
    u = torch.tensor([b[1] for b in boxes], dtype=dtype)
    what = f"{rel.op} on {list(zip(l.tolist(), u.tolist(), strict=True))} {dtype}"
    rows = []
    for name, alpha in _variants(rel, l, u, gen):
        lines = rel.relax(l, u, alpha)
        shape = l.shape if alpha is None else torch.broadcast_shapes(l.shape, alpha.shape[1:])
        for t in (lines.lw, lines.lb, lines.uw, lines.ub):
            assert tuple(t.shape) == tuple(shape), f"{what} {name}: shape {t.shape} != {shape}"
            assert t.dtype == dtype, f"{what} {name}: dtype {t.dtype}"
            assert not bool(torch.isnan(t).any()), f"{what} {name}: NaN in lines"
        assert bool(torch.isfinite(lines.lw).all() & torch.isfinite(lines.uw).all()), what
        rows.append((name, lines))
    x = _samples(l, u, gen).double()
    fx = rel.fn(x)
    _assert_sound(rows, x, fx, dtype, what)
    if rel.interval is not None:
        lo, hi = (t.double() for t in rel.interval(l, u))
        assert not bool(torch.isnan(lo).any() | torch.isnan(hi).any()), f"{what}: NaN interval"
        tol = _tolerance(fx.abs(), dtype)
        assert bool(((fx >= lo) | (fx - lo >= -tol)).all()), f"{what}: interval low {lo}"
        assert bool(((fx <= hi) | (hi - fx >= -tol)).all()), f"{what}: interval high {hi}"


def _seed(boxes: list[tuple[float, float]]) -> int:
    """A deterministic generator seed derived from the boxes."""
    return int(1000 * sum(abs(x) for b in boxes for x in b if math.isfinite(x))) % 100_003


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_relaxation_sound(case: tuple[str, dict[str, Any]]) -> None:
    op, attrs = case
    rel = FACTORIES[op](attrs)
    n_examples = max(MIN_EXAMPLES, EXAMPLES_PER_OP // len(SAMPLE_ATTRS.get(op, [{}])))

    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(raw=st.lists(_raw_box(), min_size=1, max_size=4))
    def run(raw: list[tuple[float, float]]) -> None:
        boxes = [_into_domain(b, rel.domain) for b in raw]
        boxes = _valid_boxes(rel, boxes, F64)
        if not boxes:
            reject()
        gen = torch.Generator().manual_seed(_seed(boxes))
        _check_dtype(rel, boxes, F64, gen)
        boxes32 = _valid_boxes(rel, boxes, torch.float32)
        if boxes32:
            _check_dtype(rel, boxes32, torch.float32, gen)

    run()


RANGED = [c for c in CASES if FACTORIES[c[0]](c[1]).alpha_range is not None]


@pytest.mark.parametrize("case", RANGED, ids=_case_id)
def test_alpha_range_is_what_relax_clamps_to(case: tuple[str, dict[str, Any]]) -> None:
    """Projecting onto ``alpha_range`` (alpha-CROWN) never changes the lines."""
    op, attrs = case
    relax = FACTORIES[op](attrs)
    assert relax.alpha_range is not None
    gen = torch.Generator().manual_seed(5)
    l = torch.randn(64, generator=gen, dtype=F64) * 3.0
    u = l + torch.rand(64, generator=gen, dtype=F64) * 4.0
    alpha = torch.randn(relax.n_alpha, 64, generator=gen, dtype=F64) * 3.0
    lo, hi = relax.alpha_range
    assert bool(((alpha < lo) | (alpha > hi)).any())  # some values really are projected
    a, b = relax.relax(l, u, alpha), relax.relax(l, u, alpha.clamp(lo, hi))
    for name in ("lw", "lb", "uw", "ub"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-12)
