"""McCormick planes of x*y: soundness for any weights, infinities, shapes, interval."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bounds.relax import Planes
from bounds.relax.bilinear import MUL_N_ALPHA, mul_alpha_init, mul_interval, relax_mul

INF = math.inf
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Small tensors: intra-op threading only adds overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64)


def planes_at(p: Planes, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plane values; 0 * (anything) is 0 so constant planes work at any point."""
    lo = torch.where(p.lx == 0, 0.0, p.lx * x) + torch.where(p.ly == 0, 0.0, p.ly * y) + p.lc
    hi = torch.where(p.ux == 0, 0.0, p.ux * x) + torch.where(p.uy == 0, 0.0, p.uy * y) + p.uc
    return lo, hi


def no_nan(p: Planes) -> bool:
    return not any(bool(torch.isnan(v).any()) for v in (p.lx, p.ly, p.lc, p.ux, p.uy, p.uc))


def test_extreme_weights_are_the_mccormick_planes() -> None:
    xl, xu, yl, yu = t(-1.0), t(2.0), t(-3.0), t(4.0)
    one = relax_mul(xl, xu, yl, yu, torch.ones((2, 1), dtype=F64))
    zero = relax_mul(xl, xu, yl, yu, torch.zeros((2, 1), dtype=F64))
    assert (one.lx.item(), one.ly.item(), one.lc.item()) == (-3.0, -1.0, -3.0)
    assert (zero.lx.item(), zero.ly.item(), zero.lc.item()) == (4.0, 2.0, -8.0)
    assert (one.ux.item(), one.uy.item(), one.uc.item()) == (4.0, -1.0, 4.0)
    assert (zero.ux.item(), zero.uy.item(), zero.uc.item()) == (-3.0, 2.0, 6.0)
    default = relax_mul(xl, xu, yl, yu)
    assert (default.lx.item(), default.uc.item()) == (one.lx.item(), one.uc.item())
    half = relax_mul(xl, xu, yl, yu, torch.full((2, 1), 0.5, dtype=F64))
    assert half.lx.item() == pytest.approx(0.5) and half.lc.item() == pytest.approx(-5.5)
    clamped = relax_mul(xl, xu, yl, yu, t(7.0, -2.0)[:, None])
    assert clamped.lx.item() == one.lx.item() and clamped.ux.item() == zero.ux.item()


def test_alpha_init_and_broadcasting() -> None:
    xl, xu = torch.zeros(3, 1, dtype=F64) - 1, torch.ones(3, 1, dtype=F64)
    yl, yu = torch.zeros(4, dtype=F64) - 2, torch.zeros(4, dtype=F64) + 1
    init = mul_alpha_init(xl, xu, yl, yu)
    assert MUL_N_ALPHA == 2 and init.shape == (2, 3, 4) and bool((init == 1).all())
    p = relax_mul(xl, xu, yl, yu, torch.rand((2, 5, 1, 1), dtype=F64))
    assert all(v.shape == (5, 3, 4) for v in (p.lx, p.ly, p.lc, p.ux, p.uy, p.uc))
    with pytest.raises(ValueError, match="alpha"):
        relax_mul(xl, xu, yl, yu, torch.rand((1, 3, 4), dtype=F64))


def test_infinite_bounds() -> None:
    # x in [0, 1], y in [0, inf): lower from (x - 0)(y - 0) >= 0, upper xy <= y
    p = relax_mul(t(0.0), t(1.0), t(0.0), t(INF))
    assert no_nan(p)
    assert (p.lx.item(), p.ly.item(), p.lc.item()) == (0.0, 0.0, 0.0)
    assert (p.ux.item(), p.uy.item(), p.uc.item()) == (0.0, 1.0, 0.0)
    p = relax_mul(t(-INF), t(INF), t(-1.0), t(1.0))
    assert no_nan(p) and p.lc.item() == -INF and p.uc.item() == INF
    assert (p.lx.item(), p.ly.item(), p.ux.item(), p.uy.item()) == (0.0, 0.0, 0.0, 0.0)
    lo, hi = mul_interval(t(0.0, -INF, 2.0), t(0.0, 1.0, INF), t(-INF, 0.0, 3.0), t(INF, 0.0, 4.0))
    assert lo.tolist() == [0.0, 0.0, 6.0] and hi.tolist() == [0.0, 0.0, INF]


_END = st.floats(-60.0, 60.0, allow_nan=False)
_BOUND = st.one_of(_END, _END, _END, st.sampled_from([-INF, INF, 0.0]))
_WEIGHT = st.one_of(st.floats(-2.0, 3.0), st.sampled_from([0.0, 0.5, 1.0, INF, -INF, math.nan]))


@settings(max_examples=50, deadline=None, database=None, derandomize=True)
@given(
    bounds=st.lists(st.tuples(_BOUND, _BOUND, _BOUND, _BOUND), min_size=1, max_size=4),
    weights=st.lists(_WEIGHT, min_size=6, max_size=6),
)
def test_planes_sound_for_any_weights(bounds: list, weights: list) -> None:
    b = torch.tensor(bounds, dtype=F64)
    xl, xu = b[:, 0].minimum(b[:, 1]).clamp(max=60.0), b[:, 0].maximum(b[:, 1]).clamp(min=-60.0)
    yl, yu = b[:, 2].minimum(b[:, 3]).clamp(max=60.0), b[:, 2].maximum(b[:, 3]).clamp(min=-60.0)
    alpha = torch.tensor(weights, dtype=F64).reshape(2, 3, 1)  # extra leading batch dim
    gen = torch.Generator().manual_seed(len(bounds))
    for dtype in (F64, torch.float32):
        bx = [v.to(dtype) for v in (xl, xu, yl, yu)]
        for a in (None, alpha.to(dtype), torch.full((2, 1), 0.5, dtype=dtype)):
            p = relax_mul(*bx, a)
            assert no_nan(p) and p.lx.dtype == dtype
            _check_samples(p, *(v.double() for v in bx), gen, dtype)


def _check_samples(p: Planes, xl, xu, yl, yu, gen: torch.Generator, dtype) -> None:
    def pts(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        a, b = lo.clamp(min=-1e3), hi.clamp(max=1e3)
        r = torch.rand((5_000, len(lo)), generator=gen, dtype=F64)
        corners = torch.stack([a, b, a, b])
        return torch.cat([corners, a + (b - a) * r]).to(dtype).double()

    x = pts(xl, xu)
    y = torch.cat([torch.stack([yl, yu, yu, yl]).clamp(-1e3, 1e3), pts(yl, yu)[4:]])
    y = y.to(dtype).double()
    pl = Planes(*(v.double() for v in (p.lx, p.ly, p.lc, p.ux, p.uy, p.uc)))
    lo, hi = planes_at(pl, x[:, None], y[:, None])  # [M, K, B]
    f = (x * y)[:, None]
    for val, (cx, cy, c), sign in ((lo, (pl.lx, pl.ly, pl.lc), 1), (hi, (pl.ux, pl.uy, pl.uc), -1)):
        terms = [f.abs().expand_as(val), (cx * x[:, None]).abs(), (cy * y[:, None]).abs()]
        scale = torch.nan_to_num(torch.stack([*terms, c.abs().expand_as(val)]), posinf=0.0)
        scale = scale.amax(0)
        tol = 1e-6 + 1e-9 * scale if dtype == F64 else 1e-5 * scale.clamp(min=1.0)
        assert bool(((sign * val <= sign * f) | (sign * (val - f) <= tol)).all())
    f = f[:, 0]
    ilo, ihi = mul_interval(xl, xu, yl, yu)
    assert bool((f >= ilo - 1e-9 * f.abs()).all() & (f <= ihi + 1e-9 * f.abs()).all())
