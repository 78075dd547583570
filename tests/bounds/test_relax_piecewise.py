"""Relu, LeakyRelu, Clip, Sign, Floor: exact cases, defaults, infinities, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from bounds.relax import Lines, get_relaxation

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


def lines_at(lines: Lines, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return lines.lw * x + lines.lb, lines.uw * x + lines.ub


def assert_sound_dense(op: str, attrs: dict, l: torch.Tensor, u: torch.Tensor, alpha=None) -> None:
    """Lines bracket f on 2001 points of each (finite) box, including the endpoints."""
    rel = get_relaxation(op, attrs)
    lines = rel.relax(l, u, alpha)
    x = l + (u - l) * torch.linspace(0, 1, 2001, dtype=F64)[:, None]
    lo, hi = lines_at(lines, x)
    fx = rel.fn(x)
    assert bool((lo <= fx + 1e-9).all()) and bool((hi >= fx - 1e-9).all())


# --------------------------------------------------------------------------- Relu
def test_relu_exact_off_the_kink() -> None:
    rel = get_relaxation("Relu")
    ln = rel.relax(t(0.0, 1.0, -3.0, -2.0), t(2.0, 1.0, 0.0, -1.0), None)
    assert ln.lw.tolist() == [1, 1, 0, 0] and ln.uw.tolist() == [1, 1, 0, 0]
    assert ln.lb.tolist() == [0] * 4 and ln.ub.tolist() == [0] * 4


def test_relu_crossing_default_and_clamped_alpha() -> None:
    rel = get_relaxation("Relu")
    l, u = t(-1.0, -2.0), t(2.0, 1.0)
    ln = rel.relax(l, u, None)
    assert ln.lw.tolist() == [1.0, 0.0]  # adaptive: 1 if u > -l
    torch.testing.assert_close(ln.uw, u / (u - l))
    torch.testing.assert_close(ln.ub, -l * u / (u - l))
    clamped = rel.relax(l, u, t(5.0, -3.0)[None])
    assert clamped.lw.tolist() == [1.0, 0.0]
    assert rel.split_mask(l, u).tolist() == [True, True]
    assert rel.split_mask(t(0.0), t(1.0)).tolist() == [False]


def test_relu_infinite_bounds() -> None:
    rel = get_relaxation("Relu")
    ln = rel.relax(t(-1.0, -INF, -INF, 2.0), t(INF, 2.0, INF, INF), None)
    assert ln.uw.tolist() == [1.0, 0.0, 0.0, 1.0]  # x - l; const u; unbounded; exact
    assert ln.ub.tolist() == [1.0, 2.0, INF, 0.0]
    assert not any(bool(torch.isnan(v).any()) for v in (ln.lw, ln.lb, ln.uw, ln.ub))
    assert bool(torch.isfinite(ln.lw).all())


def test_relu_alpha_broadcasts_over_leading_dims() -> None:
    rel = get_relaxation("Relu")
    l, u = torch.full((2, 3), -1.0, dtype=F64), torch.full((2, 3), 1.0, dtype=F64)
    alpha = torch.rand((1, 5, 1, 3), dtype=F64)
    ln = rel.relax(l, u, alpha)
    assert ln.lw.shape == (5, 2, 3) and ln.ub.shape == (5, 2, 3)
    torch.testing.assert_close(ln.lw, alpha[0].expand(5, 2, 3))


# --------------------------------------------------------------------------- LeakyRelu
def test_leaky_relu_convex_and_concave() -> None:
    l, u = t(-2.0, -1.0), t(1.0, 3.0)
    small = get_relaxation("LeakyRelu", {"alpha": 0.1}).relax(l, u, None)
    assert small.lw.tolist() == pytest.approx([0.1, 1.0])  # adaptive: a or 1
    torch.testing.assert_close(small.uw, (u - 0.1 * l) / (u - l))
    big = get_relaxation("LeakyRelu", {"alpha": 3.0})
    ln = big.relax(l, u, t(0.0, 10.0)[None])  # slope of the upper line, clamped to [1, 3]
    assert ln.uw.tolist() == [1.0, 3.0] and ln.ub.tolist() == [0.0, 0.0]
    torch.testing.assert_close(ln.lw, (u - 3.0 * l) / (u - l))
    for a in (0.1, -0.5, 3.0):
        assert_sound_dense("LeakyRelu", {"alpha": a}, l, u)
        assert_sound_dense("LeakyRelu", {"alpha": a}, l, u, torch.randn((1, 2), dtype=F64) * 4)


def test_leaky_relu_default_attr_and_infinite_bounds() -> None:
    rel = get_relaxation("LeakyRelu")
    ln = rel.relax(t(-INF, -1.0), t(2.0, INF), None)
    torch.testing.assert_close(ln.uw, t(0.01, 1.0))  # tail slopes
    torch.testing.assert_close(ln.ub, t(2.0 * 0.99, 0.99))
    assert rel.interval(t(-INF), t(1.0))[0].item() == -INF


# --------------------------------------------------------------------------- Clip
def test_clip_pieces_and_kinks() -> None:
    rel = get_relaxation("Clip", {"min": -1.0, "max": 1.0})
    l, u = t(-0.5, -5.0, 2.0, -3.0, -3.0, 0.0), t(0.5, -2.0, 4.0, 0.0, 3.0, 3.0)
    ln = rel.relax(l, u, None)
    assert ln.lw[:3].tolist() == [1.0, 0.0, 0.0] and ln.lb[:3].tolist() == [0.0, -1.0, 1.0]
    assert ln.uw[:3].tolist() == [1.0, 0.0, 0.0] and ln.ub[:3].tolist() == [0.0, -1.0, 1.0]
    # [-3, 0]: lower pivots at (-1, -1) with slope <= 1, upper is the chord (-3,-1)-(0,0)
    assert ln.uw[3].item() == pytest.approx(1 / 3) and ln.ub[3].item() == pytest.approx(0.0)
    # [-3, 3]: both kinks; lower slope at most 2/4 through (-1, -1)
    full = rel.relax(l, u, torch.ones((2, 6), dtype=F64))
    assert full.lw[4].item() == pytest.approx(0.5) and full.lb[4].item() == pytest.approx(-0.5)
    assert full.uw[4].item() == pytest.approx(0.5) and full.ub[4].item() == pytest.approx(0.5)
    assert rel.split_mask(l, u).tolist() == [False, False, False, True, True, True]
    for alpha in (None, torch.rand((2, 6), dtype=F64) * 3 - 1):
        assert_sound_dense("Clip", {"min": -1.0, "max": 1.0}, l, u, alpha)


def test_clip_one_sided_and_degenerate() -> None:
    relu6 = get_relaxation("Clip", {"min": 0.0, "max": 6.0})
    ln = relu6.relax(t(-2.0), t(INF), None)
    assert ln.uw.item() == 0.0 and ln.ub.item() == 6.0  # bounded op: constant max
    only_max = get_relaxation("Clip", {"max": 0.5})
    ln = only_max.relax(t(-INF), t(2.0), None)
    assert ln.lw.item() == 1.0 and ln.lb.item() == pytest.approx(0.5 - 2.0)  # x - (u - hi)
    const = get_relaxation("Clip", {"min": 2.0, "max": 1.0})  # min > max: always max
    ln = const.relax(t(-3.0), t(5.0), None)
    assert (ln.lw.item(), ln.lb.item(), ln.uw.item(), ln.ub.item()) == (0.0, 1.0, 0.0, 1.0)
    assert const.fn(t(0.0, 7.0)).tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------- Sign
def test_sign_cases() -> None:
    rel = get_relaxation("Sign")
    l, u = t(1.0, -3.0, 0.0, 0.0, -2.0, -1.0, -2.0), t(2.0, -1.0, 0.0, 4.0, 0.0, 3.0, 1.0)
    ln = rel.relax(l, u, None)
    assert ln.lb.tolist() == [1.0, -1.0, 0.0, 0.0, -1.0, -1.0, -1.0]
    assert ln.ub.tolist() == [1.0, -1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert ln.lw.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.0, 2 / 3, 0.0])
    assert ln.uw.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 1.0])
    assert rel.fn(t(0.0)).item() == 0.0
    alpha = torch.rand((2, 7), dtype=F64) * 3 - 1
    assert_sound_dense("Sign", {}, l, u, alpha)
    x = torch.zeros(7, dtype=F64).clamp(l, u)  # the jump itself
    lo, hi = lines_at(rel.relax(l, u, alpha), x)
    assert bool((lo <= torch.sign(x)).all() & (hi >= torch.sign(x)).all())


# --------------------------------------------------------------------------- Floor
def test_floor_constant_default_and_slopes() -> None:
    rel = get_relaxation("Floor")
    l, u = t(0.2, -1.5, 0.9, -INF), t(0.8, 2.5, 1.1, 3.0)
    ln = rel.relax(l, u, None)
    assert (ln.lw[0].item(), ln.lb[0].item(), ln.uw[0].item(), ln.ub[0].item()) == (0, 0, 0, 0)
    assert ln.lw[1:].tolist() == [1.0] * 3 and ln.uw[1:].tolist() == [1.0] * 3
    assert ln.lb[1:].tolist() == [-1.0] * 3 and ln.ub[1:].tolist() == [0.0] * 3
    steep = rel.relax(l, u, torch.full((2, 4), 100.0, dtype=F64))
    assert steep.lw[2].item() == pytest.approx(10.0)  # clamped to 2 / (u - l)
    assert steep.lb[2].item() == pytest.approx(-10.0)  # through the corner (1, 0)
    fin = slice(0, 3)
    for alpha in (None, torch.rand((2, 3), dtype=F64) * 12 - 1):
        assert_sound_dense("Floor", {}, l[fin], u[fin], alpha)
    k = t(1.0, 2.0, -1.0)
    x = torch.cat([k, torch.nextafter(k, t(-INF, -INF, -INF))])[:, None]
    lo, hi = lines_at(rel.relax(t(0.5), t(2.5), torch.rand((2, 1), dtype=F64) * 3), x)
    inside = (x >= 0.5) & (x <= 2.5)
    assert bool(((lo <= torch.floor(x)) | ~inside).all() & ((hi >= torch.floor(x)) | ~inside).all())


# --------------------------------------------------------------------------- all
OPS = [
    ("Relu", {}),
    ("LeakyRelu", {"alpha": 0.2}),
    ("LeakyRelu", {"alpha": 2.0}),
    ("Clip", {"min": -1.0, "max": 2.0}),
    ("Sign", {}),
    ("Floor", {}),
]


@pytest.mark.parametrize(("op", "attrs"), OPS)
def test_default_equals_alpha_init_and_point_intervals_are_exact(op: str, attrs: dict) -> None:
    rel = get_relaxation(op, attrs)
    l = t(-3.0, -0.5, 0.0, 0.3, -1.0, 1.7)
    u = t(2.0, 0.5, 0.0, 0.3, -1.0, 4.0)
    a = rel.relax(l, u, None)
    b = rel.relax(l, u, rel.alpha_init(l, u))
    for x, y in zip((a.lw, a.lb, a.uw, a.ub), (b.lw, b.lb, b.uw, b.ub), strict=True):
        torch.testing.assert_close(x, y)
    pts = l[2:5]
    lo, hi = lines_at(rel.relax(pts, pts, None), pts)
    torch.testing.assert_close(lo, rel.fn(pts))
    torch.testing.assert_close(hi, rel.fn(pts))


@pytest.mark.parametrize(("op", "attrs"), OPS)
def test_gradients_are_finite(op: str, attrs: dict) -> None:
    rel = get_relaxation(op, attrs)
    l = t(-3.0, -0.5, 0.25, -2.5).requires_grad_()
    u = t(2.0, 0.5, 0.75, 1.5).requires_grad_()
    alpha = (rel.alpha_init(l.detach(), u.detach()) * 0.7 + 0.1).requires_grad_()
    ln = rel.relax(l, u, alpha)
    (ln.lw + ln.lb - ln.uw - ln.ub).sum().backward()
    for g in (l.grad, u.grad, alpha.grad):
        assert g is not None and bool(torch.isfinite(g).all())
