"""Sin / Cos relaxations (bounds/relax/periodic.py).

Soundness on 10^4 samples per box (plus endpoints and every extremum inside) for boxes of
every width (point, 1e-6, narrow, wider than 2 pi), near multiples of pi/2, far from 0 and
infinite; default and arbitrary ``alpha``; tightness of the default lines; exact intervals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bounds.relax import get_relaxation
from bounds.relax.periodic import MAX_ABS

N = 10_000
REF = {"Sin": np.sin, "Cos": np.cos}
PHASE = {"Sin": 0.0, "Cos": 0.5 * math.pi}
HALF_PI_MULTIPLES = [k * 0.5 * math.pi for k in range(-40, 41)]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def extrema_in(key: str, lo: np.ndarray, hi: np.ndarray, count: int = 40) -> np.ndarray:
    """Up to ``count`` extrema of the op at and after ``lo``, clipped into ``[lo, hi]``."""
    first = np.ceil((lo + PHASE[key] - 0.5 * math.pi) / math.pi)
    ks = first[..., None] + np.arange(count)
    pts = ks * math.pi + 0.5 * math.pi - PHASE[key]
    return np.clip(pts, lo[..., None], hi[..., None])


def check_sound(key: str, l: torch.Tensor, u: torch.Tensor, lines, rng) -> float:
    """Assert the lines bracket the reference on samples; return the worst margin seen."""
    tensors = (lines.lw, lines.lb, lines.uw, lines.ub)
    for t in tensors:
        assert t.dtype == l.dtype and not torch.isnan(t).any()
    shape = torch.broadcast_shapes(lines.lw.shape, lines.lb.shape, l.shape)
    lw, lb, uw, ub = (np.broadcast_to(t.detach().double().numpy(), shape) for t in tensors)
    lo = np.broadcast_to(l.double().numpy(), shape)
    hi = np.broadcast_to(u.double().numpy(), shape)
    lo = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi - 100.0, -50.0))
    hi = np.where(np.isfinite(hi), hi, lo + 100.0)
    t = np.concatenate([np.linspace(0.0, 1.0, N // 2), rng.random(N // 2)])
    x = lo[..., None] + (hi - lo)[..., None] * t
    x = np.concatenate([x, extrema_in(key, lo, hi)], axis=-1)
    f = REF[key](x)
    tol = 1e-6 if l.dtype == torch.float64 else 1e-5 * np.maximum(1.0, np.abs(f))
    below = f - (lw[..., None] * x + lb[..., None])
    above = (uw[..., None] * x + ub[..., None]) - f
    assert (below >= -tol).all(), f"lower line violated by {float(-below.min())}"
    assert (above >= -tol).all(), f"upper line violated by {float(-above.min())}"
    return float(min(below.min(), above.min()))


def box_strategy():
    centers = st.one_of(
        st.floats(-60.0, 60.0),
        st.sampled_from(HALF_PI_MULTIPLES),
        st.floats(-1e6, 1e6),
    )
    widths = st.one_of(
        st.just(0.0),
        st.floats(1e-7, 1e-5),
        st.floats(1e-3, 1.0),
        st.floats(1.0, 2.0 * math.pi),
        st.floats(2.0 * math.pi, 60.0),
    )
    box = st.tuples(centers, widths, st.floats(0.0, 1.0))
    return st.lists(box, min_size=1, max_size=8)


def make_alpha(kind: str, n: int, rng) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind == "random":
        return torch.tensor(rng.uniform(-0.5, 1.5, (2, n)))
    if kind == "extreme":
        vals = [-1e30, -1.0, 0.0, 1.0, 2.0, 1e30, math.inf, -math.inf, math.nan]
        return torch.tensor(rng.choice(vals, (2, n)))
    return torch.tensor(rng.uniform(0.0, 1.0, (2, 3, n)))


@pytest.mark.parametrize("key", list(REF))
def test_sound_on_random_boxes(key: str) -> None:
    @SETTINGS
    @given(
        raw=box_strategy(),
        dtype=st.sampled_from([torch.float64, torch.float32]),
        kind=st.sampled_from(["none", "random", "extreme", "batched"]),
        seed=st.integers(0, 2**16),
    )
    def run(raw, dtype, kind, seed):
        rng = np.random.default_rng(seed)
        l64 = np.array([c - r * w for c, w, r in raw])
        u64 = l64 + np.array([w for _, w, _ in raw])
        l, u = torch.tensor(l64).to(dtype), torch.tensor(u64).to(dtype)
        u = torch.maximum(l, u)
        alpha = make_alpha(kind, l.numel(), rng)
        alpha = None if alpha is None else alpha.to(dtype)
        check_sound(key, l, u, get_relaxation(key).relax(l, u, alpha), rng)

    run()


@pytest.mark.parametrize("key", list(REF))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_infinite_and_far_bounds(key: str, dtype: torch.dtype) -> None:
    inf = math.inf
    pairs = [
        (-inf, inf),
        (-inf, 0.3),
        (1.0, inf),
        (-1e30, 1e30),
        (1e12, 1e12 + 1.0),
        (MAX_ABS - 3.0, MAX_ABS - 1.0),
        (-1e6 - 0.5, -1e6),
        (2.5e5, 2.5e5 + 8.0),
    ]
    l = torch.tensor([p[0] for p in pairs], dtype=dtype)
    u = torch.tensor([p[1] for p in pairs], dtype=dtype)
    r = get_relaxation(key)
    rng = np.random.default_rng(0)
    for alpha in (None, torch.rand(2, len(pairs), dtype=dtype)):
        lines = r.relax(l, u, alpha)
        check_sound(key, l, u, lines, rng)
        assert (
            (lines.lw[:5] == 0).all() and (lines.lb[:5] == -1).all() and (lines.ub[:5] == 1).all()
        )
    lo, hi = r.interval(l, u)
    assert (lo[:5] == -1).all() and (hi[:5] == 1).all()
    ends = torch.tensor([-inf, inf], dtype=dtype)
    at_inf = r.relax(ends, ends, None)
    for t in (at_inf.lw, at_inf.lb, at_inf.uw, at_inf.ub, *r.interval(ends, ends)):
        assert not torch.isnan(t).any()


@pytest.mark.parametrize("key", list(REF))
def test_point_boxes_pass_through_the_value(key: str) -> None:
    x = torch.tensor([-50.0, -math.pi, -1.0, 0.0, 0.5 * math.pi, 2.0, 1e5], dtype=torch.float64)
    r = get_relaxation(key)
    lines = r.relax(x, x, None)
    f = torch.tensor(REF[key](x.numpy()))
    assert torch.allclose(lines.lw * x + lines.lb, f, atol=1e-9)
    assert torch.allclose(lines.uw * x + lines.ub, f, atol=1e-9)
    lo, hi = r.interval(x, x)
    assert torch.allclose(lo, f, atol=1e-9) and torch.allclose(hi, f, atol=1e-9)


@pytest.mark.parametrize("key", list(REF))
def test_default_is_tight(key: str) -> None:
    rng = np.random.default_rng(1)
    l = torch.tensor(rng.uniform(-20.0, 20.0, 400))
    u = l + 0.1
    lines = get_relaxation(key).relax(l, u, None)
    x = l[:, None] + (u - l)[:, None] * torch.linspace(0, 1, 201, dtype=torch.float64)
    f = torch.tensor(REF[key](x.numpy()))
    low = lines.lw[:, None] * x + lines.lb[:, None]
    up = lines.uw[:, None] * x + lines.ub[:, None]
    assert float((up - low).max()) < 0.01
    assert float((f - low).min(1).values.max()) < 1e-6  # lines touch the curve
    assert float((up - f).min(1).values.max()) < 1e-6
    # wide boxes: the default lines are the constants -1 and 1 (L1-optimal there)
    l = torch.tensor([-30.0, 0.0, 100.0], dtype=torch.float64)
    lines = get_relaxation(key).relax(l, l + 40.0, None)
    assert torch.allclose(lines.lw, torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(lines.lb, -torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(lines.ub, torch.ones(3, dtype=torch.float64), atol=1e-5)


def test_sin_concave_and_s_shaped_stretches() -> None:
    r = get_relaxation("Sin")
    # [0.5, 2.5] is concave: chord below, the tangent parallel to it above (it touches sin
    # where cos x = k)
    l, u = torch.tensor([0.5], dtype=torch.float64), torch.tensor([2.5], dtype=torch.float64)
    lines = r.relax(l, u, None)
    for x in (l, u):
        assert torch.allclose(lines.lw * x + lines.lb, torch.sin(x), atol=1e-9)
    k = (torch.sin(u) - torch.sin(l)) / (u - l)
    assert torch.allclose(lines.uw, k, atol=1e-12)
    t = torch.acos(k)
    assert torch.allclose(lines.uw * t + lines.ub, torch.sin(t), atol=1e-12)
    # [3.5, 5.5] is convex: the mirror image
    lines = r.relax(l + 3.0, u + 3.0, None)
    for x in (l + 3.0, u + 3.0):
        assert torch.allclose(lines.uw * x + lines.ub, torch.sin(x), atol=1e-9)
    assert torch.allclose(lines.lw, lines.uw, atol=1e-12)
    # [-2, 1] crosses the inflection at 0: the upper line passes through (l, sin l) and
    # touches the concave part; the lower line is the chord or a tangent, touching too
    l, u = torch.tensor([-2.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    lines = r.relax(l, u, None)
    x = torch.linspace(-2.0, 1.0, 30001, dtype=torch.float64)
    up = lines.uw * x + lines.ub - torch.sin(x)
    low = torch.sin(x) - lines.lw * x - lines.lb
    assert float(up.min()) > -1e-12 and float(up.min()) < 1e-6
    assert float(low.min()) > -1e-12 and float(low.min()) < 1e-6


@pytest.mark.parametrize("key", list(REF))
def test_interval_is_exact(key: str) -> None:
    rng = np.random.default_rng(2)
    l = torch.tensor(np.concatenate([rng.uniform(-20.0, 20.0, 300), HALF_PI_MULTIPLES]))
    width = np.concatenate([10 ** rng.uniform(-4, 1.2, 300), np.full(81, 1e-3)])
    u = l + torch.tensor(width)
    lo, hi = get_relaxation(key).interval(l, u)
    x = l[:, None] + (u - l)[:, None] * torch.linspace(0, 1, 4001, dtype=torch.float64)
    xe = torch.tensor(extrema_in(key, l.numpy(), u.numpy()))
    f = torch.tensor(REF[key](torch.cat([x, xe], 1).numpy()))
    assert (f >= lo[:, None] - 1e-12).all() and (f <= hi[:, None] + 1e-12).all()
    assert torch.allclose(lo, f.min(1).values, atol=1e-3)
    assert torch.allclose(hi, f.max(1).values, atol=1e-3)


@pytest.mark.parametrize("key", list(REF))
def test_alpha_batching_default_and_gradients(key: str) -> None:
    r = get_relaxation(key)
    l = torch.tensor([[-2.0, -0.3, 0.5], [-9.0, 1.5, 100.0]], dtype=torch.float32)
    u = l + torch.tensor([[3.0, 0.2, 1.0], [15.0, 0.01, 3.5]], dtype=torch.float32)
    init = r.alpha_init(l, u)
    assert init.shape == (2, 2, 3) and r.n_alpha == 2 and r.splittable
    default, from_init = r.relax(l, u, None), r.relax(l, u, init)
    assert torch.equal(default.lb, from_init.lb) and torch.equal(default.uw, from_init.uw)
    alpha = torch.rand(2, 3, 2, 3, requires_grad=True)
    batched = r.relax(l, u, alpha)
    assert batched.lw.shape == (3, 2, 3)
    for i in range(3):
        single = r.relax(l, u, alpha[:, i])
        assert torch.allclose(batched.lb[i], single.lb) and torch.allclose(batched.uw[i], single.uw)
    (batched.lw + batched.lb - batched.uw - batched.ub).sum().backward()
    assert torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0
    assert torch.equal(r.split_mask(l, u), (u - l) >= 0.01)
