"""Exp, Log, Reciprocal, Sqrt, Pow: formulas, domains, infinities, dispatch, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from bounds.relax import DomainError, Lines, get_relaxation
from bounds.relax.convex import _odd_tangent_ratio

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


def assert_sound_dense(
    op: str, attrs: dict, l: torch.Tensor, u: torch.Tensor, alpha=None, points: int = 4001
) -> None:
    """Lines bracket f on ``points`` points of each finite box (relative tolerance 1e-12)."""
    rel = get_relaxation(op, attrs)
    lines = rel.relax(l, u, alpha)
    x = l + (u - l) * torch.linspace(0, 1, points, dtype=F64)[:, None]
    lo, hi = lines_at(lines, x)
    fx = rel.fn(x)
    tol = 1e-12 * (fx.abs() + (lines.lw * x).abs() + lines.lb.abs() + 1)
    assert bool((lo <= fx + tol).all()), (lo - fx).max()
    tol = 1e-12 * (fx.abs() + (lines.uw * x).abs() + lines.ub.abs() + 1)
    assert bool((hi >= fx - tol).all()), (fx - hi).max()


def no_nan(lines: Lines) -> bool:
    return not any(bool(torch.isnan(v).any()) for v in (lines.lw, lines.lb, lines.uw, lines.ub))


# --------------------------------------------------------------------------- Exp
def test_exp_default_tangent_and_chord() -> None:
    rel = get_relaxation("Exp")
    l, u = t(0.0, -1.0), t(1.0, 3.0)
    ln = rel.relax(l, u, None)
    tp = torch.minimum((l + u) / 2, l + 0.99)
    torch.testing.assert_close(ln.lw, torch.exp(tp))
    torch.testing.assert_close(ln.lb, torch.exp(tp) * (1 - tp))
    k = (torch.exp(u) - torch.exp(l)) / (u - l)
    torch.testing.assert_close(ln.uw, k)
    torch.testing.assert_close(ln.ub, torch.exp(l) - k * l)
    assert rel.alpha_init(l, u)[0].tolist() == pytest.approx(tp.tolist())
    assert not rel.splittable


def test_exp_extreme_bounds() -> None:
    rel = get_relaxation("Exp")
    ln = rel.relax(t(-INF, 0.0, 700.0, 5.0, -INF), t(2.0, INF, 800.0, 5.0, INF), None)
    assert no_nan(ln) and bool(torch.isfinite(ln.lw).all() & torch.isfinite(ln.uw).all())
    assert ln.uw[0].item() == 0.0 and ln.ub[0].item() == pytest.approx(math.exp(2.0))
    assert ln.ub[1].item() == INF and ln.ub[2].item() == INF and ln.ub[4].item() == INF
    assert bool(torch.isfinite(ln.lb[:3]).all())  # finite tangent lines below
    assert ln.lw[3].item() == pytest.approx(math.exp(5.0))  # l == u: the tangent
    assert_sound_dense("Exp", {}, t(-40.0, 0.0, 10.0), t(40.0, 1e-9, 10.5))


def test_exp_overflow_keeps_gradients_finite() -> None:
    rel = get_relaxation("Exp")
    for dtype, hi in ((torch.float32, 95.0), (F64, 800.0)):
        l = torch.tensor([-5.0, 80.0, hi - 1], dtype=dtype, requires_grad=True)
        u = torch.tensor([hi, 81.0, hi], dtype=dtype, requires_grad=True)
        alpha = rel.alpha_init(l.detach(), u.detach()).requires_grad_()
        ln = rel.relax(l, u, alpha)
        assert no_nan(ln) and ln.ub[0].item() == INF
        finite = [torch.where(torch.isfinite(v), v, 0.0) for v in (ln.lw, ln.lb, ln.uw, ln.ub)]
        sum(v.sum() for v in finite).backward()
        for g in (l.grad, u.grad, alpha.grad):
            assert g is not None and not bool(torch.isnan(g).any())


# --------------------------------------------------------------------------- Log
def test_log_lines_and_domain() -> None:
    rel = get_relaxation("Log")
    l, u = t(0.5, 1.0), t(4.0, INF)
    ln = rel.relax(l, u, None)
    k = (math.log(4.0) - math.log(0.5)) / 3.5
    assert ln.lw[0].item() == pytest.approx(k)
    assert ln.ub[0].item() == pytest.approx(math.log(2.25) - 1)  # tangent at the midpoint
    assert ln.lw[1].item() == 0.0 and ln.lb[1].item() == 0.0  # constant log(l)
    assert math.isfinite(ln.uw[1].item()) and math.isfinite(ln.ub[1].item())
    with pytest.raises(DomainError, match="Log"):
        rel.relax(t(0.0), t(1.0), None)
    with pytest.raises(DomainError, match="Log"):
        rel.relax(t(-2.0), t(-1.0), None)
    assert_sound_dense("Log", {}, t(1e-6, 0.5, 3.0), t(1.0, 0.5 + 1e-9, 50.0))


# --------------------------------------------------------------------------- Reciprocal
def test_reciprocal_both_signs_and_domain() -> None:
    rel = get_relaxation("Reciprocal")
    l, u = t(1.0, -4.0, 2.0), t(4.0, -1.0, INF)
    ln = rel.relax(l, u, None)
    assert ln.uw[0].item() == pytest.approx(-0.25) and ln.ub[0].item() == pytest.approx(1.25)
    tp = 2.5
    assert ln.lw[0].item() == pytest.approx(-1 / tp**2) and ln.lb[0].item() == pytest.approx(2 / tp)
    # negative side (concave): upper tangent at -2.5, lower chord
    assert ln.uw[1].item() == pytest.approx(-1 / tp**2) and ln.ub[1].item() == pytest.approx(
        -2 / tp
    )
    assert ln.lw[1].item() == pytest.approx(-0.25) and ln.lb[1].item() == pytest.approx(-1.25)
    assert ln.uw[2].item() == 0.0 and ln.ub[2].item() == 0.5
    with pytest.raises(DomainError, match="Reciprocal.*0"):
        rel.relax(t(1.0, -1.0), t(2.0, 1.0), None)
    with pytest.raises(DomainError):
        rel.relax(t(0.0), t(1.0), None)
    assert_sound_dense("Reciprocal", {}, t(1e-3, -3.0, 0.5), t(10.0, -1e-3, 0.5))
    assert_sound_dense("Reciprocal", {}, t(1e-3, -3.0), t(10.0, -1e-3), t(-5.0, 7.0)[None])


# --------------------------------------------------------------------------- Sqrt
def test_sqrt_zero_negative_and_infinite() -> None:
    rel = get_relaxation("Sqrt")
    ln = rel.relax(t(0.0, 0.0, -0.5, 4.0), t(0.0, 4.0, 4.0, INF), None)
    assert no_nan(ln)
    assert (ln.lw[0].item(), ln.lb[0].item(), ln.uw[0].item(), ln.ub[0].item()) == (0, 0, 0, 0)
    assert ln.lw[1].item() == pytest.approx(0.5) and ln.lb[1].item() == pytest.approx(0.0)
    torch.testing.assert_close(ln.lw[2], ln.lw[1])  # negative lower bound clamped to 0
    assert ln.lw[3].item() == 0.0 and ln.lb[3].item() == pytest.approx(2.0)
    assert math.isfinite(ln.uw[3].item()) and math.isfinite(ln.ub[3].item())
    with pytest.raises(DomainError, match="Sqrt"):
        rel.relax(t(-2.0), t(-1.0), None)
    assert_sound_dense("Sqrt", {}, t(0.0, 1e-8, 3.0), t(1e-6, 2.0, 3.0))
    assert_sound_dense("Sqrt", {}, t(0.0, 1e-8), t(1e-6, 2.0), t(0.0, -3.0)[None])


# --------------------------------------------------------------------------- Pow
def test_pow_dispatch_and_attrs() -> None:
    x = t(0.25, 1.0, 2.0)
    for p, op in ((0.5, "Sqrt"), (-1, "Reciprocal")):
        rel, ref = get_relaxation("Pow", {"exponent": p}), get_relaxation(op)
        assert rel.op == "Pow"
        a, b = rel.relax(x, x + 1, None), ref.relax(x, x + 1, None)
        torch.testing.assert_close(a.lw, b.lw)
        torch.testing.assert_close(a.ub, b.ub)
    for p, (w, b) in ((0, (0.0, 1.0)), (1, (1.0, 0.0))):
        ln = get_relaxation("Pow", {"exponent": p}).relax(x, x + 1, None)
        assert ln.lw.tolist() == [w] * 3 and ln.ub.tolist() == [b] * 3
    with pytest.raises(ValueError, match="exponent"):
        get_relaxation("Pow", {})
    with pytest.raises(ValueError, match="finite"):
        get_relaxation("Pow", {"exponent": math.nan})
    assert get_relaxation("Pow", {"exponent": 4.0}).n_alpha == 1
    assert get_relaxation("Pow", {"exponent": 3}).n_alpha == 2


def test_square_matches_reference_rules() -> None:
    rel = get_relaxation("Pow", {"exponent": 2})
    l, u = t(-1.0, 1.0, -3.0), t(2.0, 3.0, -2.0)
    ln = rel.relax(l, u, None)
    torch.testing.assert_close(ln.uw, l + u)  # chord
    torch.testing.assert_close(ln.ub, -l * u)
    tp = t(0.0, 1.0, -2.0)  # tangent at the point nearest 0
    torch.testing.assert_close(ln.lw, 2 * tp)
    torch.testing.assert_close(ln.lb, -(tp**2))


def test_odd_power_crossing_uses_tangent_through_endpoint() -> None:
    assert _odd_tangent_ratio(3) == pytest.approx(0.5)
    for n in (3, 5, 7):
        r = _odd_tangent_ratio(n)
        assert (n - 1) * r**n + n * r ** (n - 1) == pytest.approx(1.0)
    rel = get_relaxation("Pow", {"exponent": 3})
    l, u = t(-2.0, -1.0), t(3.0, 0.2)
    ln = rel.relax(l, u, None)
    lo, hi = lines_at(ln, l)
    torch.testing.assert_close(lo, l**3)  # touches at l (tangent at -l/2 or chord)
    assert ln.lw[0].item() == pytest.approx(3.0)  # tangent at 1: slope 3
    k = (u[1] ** 3 - l[1] ** 3) / (u[1] - l[1])
    assert ln.lw[1].item() == pytest.approx(k.item())  # -l/2 > u: chord
    lo_u, _ = lines_at(ln, u)
    assert lo_u[1].item() == pytest.approx(u[1].item() ** 3)
    _, hi_u = lines_at(ln, u)
    torch.testing.assert_close(hi_u, u**3)  # mirrored: upper touches at u
    assert_sound_dense("Pow", {"exponent": 3}, l, u)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 8])
def test_integer_powers_sound_for_any_slope(n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    a = torch.rand(300, generator=gen, dtype=F64) * 8 - 4
    l, u = a, a + torch.rand(300, generator=gen, dtype=F64) * 5
    alpha = torch.randn((2, 3, 300), generator=gen, dtype=F64) * 4
    rel = get_relaxation("Pow", {"exponent": n})
    assert_sound_dense("Pow", {"exponent": n}, l, u, points=1001)
    for k in range(3):
        assert_sound_dense("Pow", {"exponent": n}, l, u, alpha[: rel.n_alpha, k], points=1001)


def test_power_infinite_bounds_give_no_nan() -> None:
    l, u = t(-INF, -INF, 1.0, -2.0), t(INF, 1.0, INF, 3.0)
    for p in (2, 3, 4, 5, 2.5, 0.3, -2, -3, -0.5):
        rel = get_relaxation("Pow", {"exponent": p})
        lo, hi = (l.clamp(min=1.0), u.clamp(min=1.0)) if not float(p).is_integer() else (l, u)
        if p < 0:
            lo, hi = lo.clamp(min=0.5), hi.clamp(min=0.5)
        ln = rel.relax(lo, hi, None)
        assert no_nan(ln), p
        assert bool(torch.isfinite(ln.lw).all() & torch.isfinite(ln.uw).all()), p
    ln = get_relaxation("Pow", {"exponent": 3}).relax(t(-INF), t(2.0), None)
    assert ln.lb.item() == -INF and ln.lw.item() == 0.0
    assert math.isfinite(ln.ub.item())  # upper line of x^3 on (-inf, 2] is finite


def test_fractional_and_negative_powers() -> None:
    for p in (1.5, 0.3, 2.5):
        rel = get_relaxation("Pow", {"exponent": p})
        ln = rel.relax(t(-1e-3, 0.0), t(2.0, 0.0), None)  # negative l clamped to 0
        assert no_nan(ln)
        assert_sound_dense("Pow", {"exponent": p}, t(0.0, 0.1, 3.0), t(2.0, 5.0, 3.0))
        with pytest.raises(DomainError, match="Pow"):
            rel.relax(t(-3.0), t(-1.0), None)
    for p in (-2, -3):
        assert_sound_dense("Pow", {"exponent": p}, t(0.2, -4.0), t(3.0, -0.5))
        with pytest.raises(DomainError, match="Pow"):
            get_relaxation("Pow", {"exponent": p}).relax(t(-1.0), t(1.0), None)
    rel = get_relaxation("Pow", {"exponent": -0.5})
    assert_sound_dense("Pow", {"exponent": -0.5}, t(0.2, 1.0), t(3.0, 1.0))
    with pytest.raises(DomainError, match="Pow"):
        rel.relax(t(0.0), t(1.0), None)
    with pytest.raises(DomainError, match="Pow"):
        rel.relax(t(-2.0), t(-1.0), None)


# --------------------------------------------------------------------------- all
OPS = [
    ("Exp", {}),
    ("Log", {}),
    ("Reciprocal", {}),
    ("Sqrt", {}),
    *[("Pow", {"exponent": p}) for p in (2, 3, 4, 5, 1.5, 0.3, -2, -3, -0.5)],
]


def _boxes(op: str, attrs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    rel = get_relaxation(op, attrs)
    if rel.domain[0] >= 0:
        return t(0.5, 1.0, 2.0, 0.1), t(3.0, 1.0, 2.5, 0.2)
    if op in ("Reciprocal", "Pow") and attrs.get("exponent", -1) < 0:
        return t(0.5, 1.0, -2.0, 0.1), t(3.0, 1.0, -0.5, 0.2)
    return t(-3.0, 1.0, -2.0, 0.1), t(2.0, 1.0, -0.5, 0.2)


@pytest.mark.parametrize(("op", "attrs"), OPS)
def test_default_equals_alpha_init_and_point_intervals_are_exact(op: str, attrs: dict) -> None:
    rel = get_relaxation(op, attrs)
    l, u = _boxes(op, attrs)
    a, b = rel.relax(l, u, None), rel.relax(l, u, rel.alpha_init(l, u))
    for x, y in zip((a.lw, a.lb, a.uw, a.ub), (b.lw, b.lb, b.uw, b.ub), strict=True):
        torch.testing.assert_close(x, y)
    pts = l
    lo, hi = lines_at(rel.relax(pts, pts, None), pts)
    torch.testing.assert_close(lo, rel.fn(pts))
    torch.testing.assert_close(hi, rel.fn(pts))
    fl, fu = rel.interval(l, u)
    x = l + (u - l) * torch.linspace(0, 1, 101, dtype=F64)[:, None]
    assert bool((rel.fn(x) >= fl - 1e-12).all() & (rel.fn(x) <= fu + 1e-12).all())


@pytest.mark.parametrize(("op", "attrs"), OPS)
def test_gradients_are_finite(op: str, attrs: dict) -> None:
    rel = get_relaxation(op, attrs)
    l0, u0 = _boxes(op, attrs)
    l, u = l0.clone().requires_grad_(), u0.clone().requires_grad_()
    alpha = rel.alpha_init(l0, u0).clone().requires_grad_()
    ln = rel.relax(l, u, alpha)
    (ln.lw + ln.lb - ln.uw - ln.ub).sum().backward()
    for g in (l.grad, u.grad, alpha.grad):
        assert g is not None and bool(torch.isfinite(g).all())


def test_square_tangent_at_zero_has_finite_alpha_gradient() -> None:
    rel = get_relaxation("Pow", {"exponent": 2})
    alpha = torch.zeros((1, 1), dtype=F64, requires_grad=True)
    ln = rel.relax(t(-1.0), t(2.0), alpha)
    (ln.lw * 0.5 + ln.lb).sum().backward()
    assert alpha.grad is not None and bool(torch.isfinite(alpha.grad).all())
