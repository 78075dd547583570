"""Compiled Sigmoid/Tanh/Erf lines (bounds/relax/compiled.py) against the torch path.

Soundness of the compiled lines on sampled points is checked in test_relax_s_shaped.py (the
"default" path); here they must equal the torch path's lines, default slopes and alpha
gradients, and the gradient must match finite differences.
"""

from __future__ import annotations

import math

import pytest
import torch

from bounds.relax import compiled, get_relaxation

OPS = ["Sigmoid", "Tanh", "Erf"]


def _boxes(n: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random boxes of every kind: one-sided, crossing, wide, point, huge and infinite."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, generator=g, dtype=torch.float64) * 4
    w = torch.rand(n, generator=g, dtype=torch.float64) ** 3 * 10
    l, u = c - w, c + w
    inf = math.inf
    special = [
        (-inf, inf),
        (-inf, -2.0),
        (1.0, inf),
        (-800.0, 900.0),
        (0.0, 0.0),
        (-1.0, 1.0),
        (-1e30, 1e30),
        (3.0, 3.0),
        (-1e-9, 1e-9),
        (-40.0, 0.5),
    ]
    for i, (a, b) in enumerate(special):
        l[i], u[i] = a, b
    return l.to(dtype), torch.maximum(l.to(dtype), u.to(dtype))


def _both(fn):
    """``fn()`` with the kernels on, then off."""
    old = compiled.ENABLED
    try:
        compiled.ENABLED = True
        on = fn()
        compiled.ENABLED = False
        return on, fn()
    finally:
        compiled.ENABLED = old


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    a, b = a.detach(), b.detach()
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    fin = torch.isfinite(a)
    err = (a[fin] - b[fin]).abs() / (1.0 + b[fin].abs())
    assert float(err.max()) <= rel, float(err.max())


@pytest.mark.parametrize("op", OPS)
def test_default_lines_and_slopes_equal_the_torch_path(op: str) -> None:
    r = get_relaxation(op, {})
    l, u = _boxes(3000, torch.float64)
    (lines_k, p_k), (lines_t, p_t) = _both(lambda: (r.relax(l, u, None), r.alpha_init(l, u)))
    for a, b in zip(
        (lines_k.lw, lines_k.lb, lines_k.uw, lines_k.ub),
        (lines_t.lw, lines_t.lb, lines_t.uw, lines_t.ub),
        strict=True,
    ):
        _close(a, b, 1e-9)  # tangent points by bisection + Newton: rounding-level differences
    # relative slopes: equal where the slope range is not degenerate (else any p is the line)
    span = (lines_t.uw - lines_t.lw).abs() > 1e-6
    _close(p_k[:, span], p_t[:, span], 1e-6)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_alpha_lines_and_gradients_equal_the_torch_path(op: str, dtype: torch.dtype) -> None:
    r = get_relaxation(op, {})
    l, u = _boxes(2000, dtype, seed=1)
    g = torch.Generator().manual_seed(2)
    alpha = (torch.rand(2, 3, 2000, generator=g, dtype=torch.float64) * 1.4 - 0.2).to(dtype)
    alpha[:, 0, 20:30] = torch.tensor([-1e30, 1e30, math.nan, 0.0, 1.0] * 2, dtype=dtype)
    weights = torch.randn(4, 3, 2000, generator=g, dtype=torch.float64).to(dtype)

    def run():
        a = alpha.clone().requires_grad_(True)
        lines = r.relax(l, u, a)
        parts = (lines.lw, lines.lb, lines.uw, lines.ub)
        sum(w * t for w, t in zip(weights, parts, strict=True)).sum().backward()
        return parts, a.grad

    (parts_k, grad_k), (parts_t, grad_t) = _both(run)
    rel = 1e-11 if dtype == torch.float64 else 1e-6  # float32: one rounding of the slope
    for a, b in zip(parts_k, parts_t, strict=True):
        _close(a, b, rel)
    # (not at the extreme values above: ties between bias candidates, any subgradient goes)
    keep = torch.ones(2000, dtype=torch.bool)
    keep[20:30] = False
    _close(grad_k[..., keep], grad_t[..., keep], 1e-8 if dtype == torch.float64 else 1e-3)


@pytest.mark.parametrize("op", OPS)
def test_alpha_gradient_matches_finite_differences(op: str) -> None:
    """The kernel's envelope-theorem gradient (only alpha needs one: the kernel's case)."""
    r = get_relaxation(op, {})
    l = torch.tensor([-3.0, -1.0, 0.5, -0.2, -4.0, 1.0], dtype=torch.float64)
    u = torch.tensor([-1.0, 2.0, 3.0, 0.1, 4.5, 1.5], dtype=torch.float64)
    a0 = torch.tensor([[0.2, 0.7, 0.4, 0.9, 0.1, 0.5], [0.6, 0.3, 0.8, 0.2, 0.9, 0.5]])
    a0 = a0.to(torch.float64)

    def total(alpha: torch.Tensor) -> torch.Tensor:
        lines = r.relax(l, u, alpha)
        return (lines.lb + lines.ub + 0.5 * (lines.lw + lines.uw)).sum()

    alpha = a0.clone().requires_grad_(True)
    total(alpha).backward()
    h = 1e-6
    for idx in ((0, i) for i in range(6)):
        for j in (0, 1):
            up, down = a0.clone(), a0.clone()
            up[j, idx[1]] += h
            down[j, idx[1]] -= h
            numeric = float((total(up) - total(down)) / (2 * h))
            assert abs(float(alpha.grad[j, idx[1]]) - numeric) < 1e-4 * (1 + abs(numeric))


def test_kernels_apply_only_where_they_can() -> None:
    """Gradients to the bounds, other devices and dtypes go to the torch path."""
    l = torch.tensor([-1.0, 0.5], dtype=torch.float64)
    u = torch.tensor([2.0, 1.5], dtype=torch.float64)
    assert compiled.applicable(l, u, None)
    assert not compiled.applicable(l.half(), u.half(), None)
    lg = l.clone().requires_grad_(True)
    assert not compiled.applicable(lg, u, None)
    with torch.no_grad():
        assert compiled.applicable(lg, u, None)
    r = get_relaxation("Sigmoid", {})
    lines = r.relax(lg, u, None)
    lines.lb.sum().backward()
    assert lg.grad is not None and torch.isfinite(lg.grad).all()


LEAKY = [("Relu", {}, 0.0), ("LeakyRelu", {"alpha": 0.125}, 0.125)]  # float32-exact slope


def _leaky_boxes(dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    l = torch.randn(16, 1, 256, generator=g, dtype=torch.float64) * 2
    u = l + torch.rand(16, 1, 256, generator=g, dtype=torch.float64) ** 2 * 4
    l[0, 0, :4] = torch.tensor([0.0, -1e-30, -3.0, -1e6])
    u[0, 0, :4] = torch.tensor([0.0, 1e-30, 1e-7, 1e6])
    return l.to(dtype), torch.maximum(l.to(dtype), u.to(dtype))


@pytest.mark.parametrize(("op", "attrs", "a"), LEAKY)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_leaky_lines_and_gradients_equal_the_torch_path(op, attrs, a, dtype) -> None:
    r = get_relaxation(op, attrs)
    l, u = _leaky_boxes(dtype, 3)
    assert l.numel() >= compiled.LEAKY_MIN_ELEMENTS
    g = torch.Generator().manual_seed(4)
    alpha = (torch.rand(1, 1, 16, 1, 256, generator=g, dtype=torch.float64) * 1.4 - 0.2).to(dtype)
    alpha[0, 0, 0, 0, 4:8] = torch.tensor([math.nan, math.inf, -math.inf, 1.0], dtype=dtype)
    weights = torch.randn(4, 1, 16, 1, 256, generator=g, dtype=torch.float64).to(dtype)

    def run(with_alpha: bool):
        a_ = alpha.clone().requires_grad_(True) if with_alpha else None
        lines = r.relax(l, u, a_)
        parts = tuple(t.expand(weights.shape[1:]) for t in (lines.lw, lines.lb, lines.uw, lines.ub))
        if a_ is None:
            return parts, None
        sum((w * t).sum() for w, t in zip(weights, parts, strict=True)).backward()
        return parts, a_.grad

    for with_alpha in (False, True):
        (parts_k, grad_k), (parts_t, grad_t) = _both(lambda w=with_alpha: run(w))
        # float32: the kernel's chord bias is the float64 one of the stored slope, moved up
        # by an ulp; torch's has the rounding of its float32 products (ulps of |k u|).
        scale = parts_t[2].abs() * torch.maximum(l.abs(), u.abs()) + parts_t[3].abs()
        for x, y in zip(parts_k, parts_t, strict=True):
            if dtype == torch.float64:
                assert torch.equal(x, y)
            else:
                assert ((x - y).abs() <= 2.5e-7 * y.abs() + 4 * 2.0**-23 * scale).all()
        if with_alpha:
            assert torch.equal(grad_k, grad_t)


@pytest.mark.parametrize(("op", "attrs", "a"), LEAKY)
def test_leaky_kernel_lines_are_sound(op, attrs, a) -> None:
    """float32 lines from the kernel against float64 values at sampled points."""
    r = get_relaxation(op, attrs)
    l, u = _leaky_boxes(torch.float32, 5)
    alpha = torch.rand(1, 16, 1, 256, generator=torch.Generator().manual_seed(6))
    for al in (None, alpha):
        lines = r.relax(l, u, al)
        t = torch.rand((64,) + tuple(l.shape), generator=torch.Generator().manual_seed(7))
        x = l.double() + (u.double() - l.double()) * t.double()
        x = torch.cat([x, l.double()[None], u.double()[None]])
        fx = torch.where(x >= 0, x, a * x)
        lo = lines.lw.double() * x + lines.lb.double()
        hi = lines.uw.double() * x + lines.ub.double()
        assert (lo <= fx + 1e-12).all() and (hi >= fx - 1e-12).all()


def test_leaky_kernel_leaves_small_and_spec_batched_inputs_to_torch() -> None:
    l = torch.full((1, 256), -1.0)
    u = torch.full((1, 256), 2.0)
    assert compiled.leaky_lines(0.0, l, u, None) is None  # small
    l, u = l.expand(16, 256).contiguous(), u.expand(16, 256).contiguous()
    assert compiled.leaky_lines(0.0, l, u, None) is not None
    assert compiled.leaky_lines(0.0, l, u, torch.rand(1, 9, 16, 256)) is None  # spec rows
    assert compiled.leaky_lines(0.0, l, u, torch.rand(1, 1, 16, 256)) is not None


def test_kernels_take_over_after_the_warm_up(monkeypatch) -> None:
    """Short runs stay on the torch path; once the estimated work reaches WARMUP_S the
    kernels serve every call."""
    monkeypatch.setattr(compiled, "WARMUP_S", 1.0)
    monkeypatch.setattr(compiled, "_spent", 0.0)
    l = torch.full((4096,), -1.0)
    u = torch.full((4096,), 2.0)
    n = int(1.0 / (compiled.CALL_COST + compiled.S_COST * 4096)) + 1
    served = [compiled.applicable(l, u, None) for _ in range(n + 2)]
    assert not any(served[: n - 1]) and all(served[n:])
    assert compiled.leaky_lines(0.0, l, u, None) is not None
