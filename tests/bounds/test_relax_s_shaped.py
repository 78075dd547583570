"""Sigmoid / Tanh / Erf / Gelu relaxations (bounds/relax/s_shaped.py, bounds/relax/tangents.py).

Soundness is checked against float64 scipy references on 10^4 samples per box (plus the
endpoints and the known inflection points and minima), for the default relaxation and for
random, extreme and NaN ``alpha``; tightness, interval exactness, batching and gradients too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

from bounds.relax import compiled, get_relaxation
from bounds.relax.s_shaped import ERF, GELU, GELU_TANH, SIGMOID, TANH, d_lower
from bounds.relax.tangents import bisect, convex_min_bound

N = 10_000
C = math.sqrt(2.0 / math.pi)
REF = {
    "Sigmoid": special.expit,
    "Tanh": np.tanh,
    "Erf": special.erf,
    "Gelu": lambda x: x * special.ndtr(x),
    "GeluTanh": lambda x: x * special.expit(2.0 * C * (x + 0.044715 * x**3)),
}
OPS = {
    "Sigmoid": ("Sigmoid", {}),
    "Tanh": ("Tanh", {}),
    "Erf": ("Erf", {}),
    "Gelu": ("Gelu", {}),
    "GeluTanh": ("Gelu", {"approximate": "tanh"}),
}
SPECIAL = {
    "Sigmoid": [0.0],
    "Tanh": [0.0],
    "Erf": [0.0],
    "Gelu": [0.0, math.sqrt(2.0), -math.sqrt(2.0), GELU.xmin],
    "GeluTanh": [0.0, GELU_TANH.p, -GELU_TANH.p, GELU_TANH.xmin],
}
# (op, path): "default" is what the engine runs (the compiled kernels of
# bounds.relax.compiled for Sigmoid/Tanh/Erf on CPU), "torch" switches the kernels off.
PATHS = [pytest.param(k, "default", id=k) for k in OPS] + [
    pytest.param(k, "torch", id=f"{k}-torch") for k in ("Sigmoid", "Tanh", "Erf")
]
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def relaxation(key: str):
    op, attrs = OPS[key]
    return get_relaxation(op, attrs)


def check_sound(key: str, l: torch.Tensor, u: torch.Tensor, lines, rng) -> float:
    """Assert the lines bracket the reference on samples; return the worst margin seen."""
    tensors = (lines.lw, lines.lb, lines.uw, lines.ub)
    for t in tensors:
        assert t.dtype == l.dtype and not torch.isnan(t).any()
    shape = torch.broadcast_shapes(lines.lw.shape, lines.lb.shape, l.shape)
    lw, lb, uw, ub = (np.broadcast_to(t.detach().double().numpy(), shape) for t in tensors)
    lo = np.broadcast_to(l.double().numpy(), shape).clip(-1e4, 1e4)
    hi = np.broadcast_to(u.double().numpy(), shape).clip(-1e4, 1e4)
    hi = np.maximum(hi, lo)
    t = np.concatenate([np.linspace(0.0, 1.0, N // 2), rng.random(N // 2)])
    x = lo[..., None] + (hi - lo)[..., None] * t
    extra = np.array(SPECIAL[key])
    x = np.concatenate([x, np.clip(extra, lo[..., None], hi[..., None])], axis=-1)
    f = REF[key](x)
    tol = 1e-6 if l.dtype == torch.float64 else 1e-5 * np.maximum(1.0, np.abs(f))
    below = f - (lw[..., None] * x + lb[..., None])
    above = (uw[..., None] * x + ub[..., None]) - f
    assert (below >= -tol).all(), f"lower line violated by {float(-below.min())}"
    assert (above >= -tol).all(), f"upper line violated by {float(-above.min())}"
    return float(min(below.min(), above.min()))


def box_strategy(key: str):
    centers = st.one_of(
        st.floats(-55.0, 55.0),
        st.sampled_from(SPECIAL[key] + [50.0, -50.0, 49.99, -49.99]),
    )
    widths = st.one_of(
        st.just(0.0),
        st.floats(1e-7, 1e-5),
        st.floats(1e-3, 1.0),
        st.floats(1.0, 120.0),
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


def to_boxes(raw, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    l = np.array([c - r * w for c, w, r in raw])
    u = l + np.array([w for _, w, _ in raw])
    lt, ut = torch.tensor(l).to(dtype), torch.tensor(u).to(dtype)
    return lt, torch.maximum(lt, ut)


@pytest.mark.parametrize(("key", "path"), PATHS)
def test_sound_on_random_boxes(key: str, path: str, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ENABLED", path == "default")

    @SETTINGS
    @given(
        raw=box_strategy(key),
        dtype=st.sampled_from([torch.float64, torch.float32]),
        kind=st.sampled_from(["none", "random", "extreme", "batched"]),
        seed=st.integers(0, 2**16),
    )
    def run(raw, dtype, kind, seed):
        rng = np.random.default_rng(seed)
        l, u = to_boxes(raw, dtype)
        alpha = make_alpha(kind, l.numel(), rng)
        alpha = None if alpha is None else alpha.to(dtype)
        check_sound(key, l, u, relaxation(key).relax(l, u, alpha), rng)

    run()


@pytest.mark.parametrize(("key", "path"), PATHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_infinite_and_huge_bounds(key: str, path: str, dtype: torch.dtype, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ENABLED", path == "default")
    inf = math.inf
    pairs = [
        (-inf, inf),
        (-inf, -2.0),
        (-inf, 0.3),
        (1.0, inf),
        (-3.0, inf),
        (-1e30, 1e30),
        (-1e30, -1e29),
        (1e6, 1e30),
        (-1e6, 2.0),
        (-2.0, 1e6),
    ]
    l = torch.tensor([p[0] for p in pairs], dtype=dtype)
    u = torch.tensor([p[1] for p in pairs], dtype=dtype)
    r = relaxation(key)
    rng = np.random.default_rng(0)
    for alpha in (None, torch.rand(2, len(pairs), dtype=dtype)):
        lines = r.relax(l, u, alpha)
        check_sound(key, l, u, lines, rng)
        fin = torch.isfinite(l) & torch.isfinite(u)
        assert (lines.lw[~fin] == 0).all() and (lines.uw[~fin] == 0).all()
    lo, hi = r.interval(l, u)
    assert not torch.isnan(lo).any() and not torch.isnan(hi).any()
    ends = torch.tensor([-inf, inf], dtype=dtype)  # degenerate boxes at infinity: no NaN
    at_inf = r.relax(ends, ends, None)
    for t in (at_inf.lw, at_inf.lb, at_inf.uw, at_inf.ub, *r.interval(ends, ends)):
        assert not torch.isnan(t).any()
    if key.startswith("Gelu"):
        assert hi[0] == inf and lo[0] < 0 and lo[0] > -0.18


@pytest.mark.parametrize(("key", "path"), PATHS)
def test_point_boxes_pass_through_the_value(key: str, path: str, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ENABLED", path == "default")
    x = torch.tensor([-50.0, -3.0, -1.2, -0.75, 0.0, 0.4, 1.41, 2.5, 49.0], dtype=torch.float64)
    r = relaxation(key)
    lines = r.relax(x, x, None)
    f = torch.tensor(REF[key](x.numpy()))
    assert torch.allclose(lines.lw * x + lines.lb, f, atol=1e-9)
    assert torch.allclose(lines.uw * x + lines.ub, f, atol=1e-9)
    lo, hi = r.interval(x, x)
    assert torch.allclose(lo, f, atol=1e-9) and torch.allclose(hi, f, atol=1e-9)


@pytest.mark.parametrize(("key", "path"), PATHS)
def test_default_is_tight_on_narrow_boxes(key: str, path: str, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ENABLED", path == "default")
    rng = np.random.default_rng(1)
    l = torch.tensor(rng.uniform(-8.0, 8.0, 400))
    u = l + 0.1
    lines = relaxation(key).relax(l, u, None)
    x = l[:, None] + (u - l)[:, None] * torch.linspace(0, 1, 201, dtype=torch.float64)
    f = torch.tensor(REF[key](x.numpy()))
    gap = (lines.uw[:, None] * x + lines.ub[:, None]) - (lines.lw[:, None] * x + lines.lb[:, None])
    assert float(gap.max()) < 0.01
    # every default line touches the function (its bias is the exact extremum)
    assert float((f - (lines.lw[:, None] * x + lines.lb[:, None])).min(1).values.max()) < 1e-6
    assert float(((lines.uw[:, None] * x + lines.ub[:, None]) - f).min(1).values.max()) < 1e-6


def test_sigmoid_one_sided_uses_chord_and_midpoint_tangent() -> None:
    l = torch.tensor([0.5, -3.0], dtype=torch.float64)
    u = torch.tensor([3.0, -0.5], dtype=torch.float64)
    lines = relaxation("Sigmoid").relax(l, u, None)
    f = torch.sigmoid
    # concave side: chord below, tangent at the midpoint above (and mirrored)
    assert torch.allclose(lines.lw[0] * l[0] + lines.lb[0], f(l[0]), atol=1e-9)
    assert torch.allclose(lines.lw[0] * u[0] + lines.lb[0], f(u[0]), atol=1e-9)
    assert torch.allclose(lines.uw[1] * l[1] + lines.ub[1], f(l[1]), atol=1e-9)
    assert torch.allclose(lines.uw[1] * u[1] + lines.ub[1], f(u[1]), atol=1e-9)
    m = 0.5 * (l + u)
    assert torch.allclose(lines.uw[0] * m[0] + lines.ub[0], f(m[0]), atol=1e-9)
    assert torch.allclose(lines.lw[1] * m[1] + lines.lb[1], f(m[1]), atol=1e-9)
    assert torch.allclose(lines.uw[0], f(m[0]) * (1 - f(m[0])), atol=1e-7)


@pytest.mark.parametrize("fun", [SIGMOID, TANH, ERF], ids=["sigmoid", "tanh", "erf"])
def test_crossing_lower_line_is_tangent_through_upper_end(fun) -> None:
    u = torch.tensor([0.3, 1.0, 2.5, 6.0, 40.0], dtype=torch.float64)
    d = d_lower(fun, u)
    assert (d <= 0).all() and (d >= -u).all()
    tangent_at_u = fun.f(d) + fun.df(d) * (u - d)
    assert (tangent_at_u <= fun.f(u) + 1e-12).all()
    assert torch.allclose(tangent_at_u, fun.f(u), atol=1e-9)
    key = {SIGMOID: "Sigmoid", TANH: "Tanh", ERF: "Erf"}[fun]
    l = 1.9 * d - u  # midpoint 0.95 d_L lies right of d_L: the tangent at d_L is the default
    assert ((fun.f(u) - fun.f(l)) / (u - l) > fun.df(l)).all()  # chord unsound
    lines = relaxation(key).relax(l, u, None)
    assert torch.allclose(lines.lw, fun.df(d), rtol=1e-6, atol=1e-12)
    assert torch.allclose(lines.lw * u + lines.lb, fun.f(u), atol=1e-8)
    # midpoint left of d_L: the tangent at the midpoint (continuity with the convex case)
    l = torch.full_like(u, -60.0)
    m = 0.5 * (l + u)
    lines = relaxation(key).relax(l, u, None)
    assert torch.allclose(lines.lw * m + lines.lb, fun.f(m), atol=1e-9)
    assert torch.allclose(lines.lw, fun.df(m), rtol=1e-6, atol=1e-30)


def test_crossing_uses_chord_when_sound() -> None:
    l = torch.tensor([-0.5, -3.0], dtype=torch.float64)
    u = torch.tensor([3.0, 0.5], dtype=torch.float64)
    lines = relaxation("Tanh").relax(l, u, None)
    chords = ((lines.lw[0], lines.lb[0], 0), (lines.uw[1], lines.ub[1], 1))
    for w, b, i in chords:  # lower chord sound on [-0.5, 3], upper on [-3, 0.5]
        assert torch.allclose(w * l[i] + b, torch.tanh(l[i]), atol=1e-9)
        assert torch.allclose(w * u[i] + b, torch.tanh(u[i]), atol=1e-9)


@pytest.mark.parametrize("key", list(OPS))
def test_interval_is_exact(key: str) -> None:
    rng = np.random.default_rng(2)
    l = torch.tensor(rng.uniform(-6.0, 6.0, 300))
    u = l + torch.tensor(10 ** rng.uniform(-3, 1, 300))
    lo, hi = relaxation(key).interval(l, u)
    x = l[:, None] + (u - l)[:, None] * torch.linspace(0, 1, 4001, dtype=torch.float64)
    x = torch.cat([x, torch.tensor(SPECIAL[key]).clamp(l[:, None], u[:, None])], 1)
    f = torch.tensor(REF[key](x.numpy()))
    assert (f >= lo[:, None] - 1e-12).all() and (f <= hi[:, None] + 1e-12).all()
    assert torch.allclose(lo, f.min(1).values, atol=1e-3)
    assert torch.allclose(hi, f.max(1).values, atol=1e-3)


@pytest.mark.parametrize(("key", "path"), PATHS)
def test_alpha_batching_and_default(key: str, path: str, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ENABLED", path == "default")
    r = relaxation(key)
    l = torch.tensor([[-2.0, -0.3, 0.5], [-9.0, 1.5, -1.0]], dtype=torch.float32)
    u = l + torch.tensor([[3.0, 0.2, 1.0], [5.0, 0.01, 3.5]], dtype=torch.float32)
    init = r.alpha_init(l, u)
    assert init.shape == (2, 2, 3) and init.dtype == torch.float32
    assert r.n_alpha == 2 and r.splittable
    default, from_init = r.relax(l, u, None), r.relax(l, u, init)
    for a, b in zip(
        (default.lw, default.lb, default.uw, default.ub),
        (from_init.lw, from_init.lb, from_init.uw, from_init.ub),
        strict=True,
    ):
        assert torch.equal(a, b)
    alpha = torch.rand(2, 3, 2, 3)
    batched = r.relax(l, u, alpha)
    assert batched.lw.shape == (3, 2, 3) and batched.ub.shape == (3, 2, 3)
    for i in range(3):
        single = r.relax(l, u, alpha[:, i])
        assert torch.allclose(batched.lb[i], single.lb) and torch.allclose(batched.uw[i], single.uw)
    assert torch.equal(r.split_mask(l, u), (u - l) >= 0.01)


@pytest.mark.parametrize("key", list(OPS))
def test_gradients_are_finite(key: str) -> None:
    r = relaxation(key)
    l = torch.tensor([-60.0, -2.0, -0.1, 0.5, 30.0, 1.0, -math.inf], dtype=torch.float64)
    u = torch.tensor([-50.0, 3.0, 0.1, 0.5, 60.0, 1.0, 0.0], dtype=torch.float64)
    l.requires_grad_(True)
    alpha = torch.tensor([[0.0, 0.3, 0.5, 0.9, 1.0, 0.2, 0.5]] * 2, dtype=torch.float64)
    alpha.requires_grad_(True)
    lines = r.relax(l, u, alpha)
    (lines.lw + lines.lb - lines.uw - lines.ub).sum().backward()
    assert torch.isfinite(alpha.grad).all() and torch.isfinite(l.grad).all()


@pytest.mark.parametrize("form", [GELU, GELU_TANH], ids=["exact", "tanh"])
def test_gelu_constants(form) -> None:
    x = torch.tensor([form.xmin, form.p, -form.p], dtype=torch.float64)
    assert abs(float(form.df(x[:1]))) < 1e-12
    assert abs(float(form.f(x[:1])) - form.fmin) < 1e-12
    h = 1e-5
    d2 = (form.df(x + h) - form.df(x - h)) / (2 * h)
    assert d2[1:].abs().max() < 1e-8
    # exactly two inflection points: the second derivative changes sign twice on [-6, 6]
    # (beyond, the analytic form is concave towards the tails)
    grid = torch.linspace(-6, 6, 12001, dtype=torch.float64)
    sign = torch.sign(torch.diff(form.df(grid)))
    sign = sign[sign != 0]
    assert int((sign[1:] != sign[:-1]).sum()) == 2


def test_gelu_attributes() -> None:
    assert get_relaxation("Gelu", {"approximate": b"tanh"}).fn(torch.tensor([1.0])).item() == (
        pytest.approx(0.8411920070648193)
    )
    with pytest.raises(ValueError, match="Gelu"):
        get_relaxation("Gelu", {"approximate": "cubic"})


@SETTINGS
@given(
    a=st.floats(-3.0, 3.0),
    s0=st.floats(-4.0, 4.0),
    width=st.floats(0.0, 5.0),
    cuts=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
)
def test_convex_min_bound_is_sound_for_any_bracket(a, s0, width, cuts) -> None:
    def h(x):
        return torch.exp(x) - a * x

    def dh(x):
        return torch.exp(x) - a

    s0_t = torch.tensor([s0], dtype=torch.float64)
    s1_t = s0_t + width
    lo_t = s0_t + width * min(cuts)
    hi_t = s0_t + width * max(cuts)
    bound = convex_min_bound(h, dh, s0_t, s1_t, lo_t, hi_t)
    x_star = min(max(math.log(a), s0), s0 + width) if a > 0 else s0
    true_min = float(h(torch.tensor([x_star], dtype=torch.float64)))
    assert float(bound) <= true_min + 1e-12
    lo, hi = bisect(dh, s0_t, s1_t, 40)
    tight = convex_min_bound(h, dh, s0_t, s1_t, lo, hi)
    assert true_min - 1e-9 <= float(tight) <= true_min + 1e-12


@pytest.mark.parametrize(
    ("op", "attrs"),
    [("Sigmoid", {}), ("Tanh", {}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"})],
)
def test_bias_gradients_match_finite_differences(op: str, attrs: dict) -> None:
    """The envelope-theorem gradients of the exact biases (alpha-CROWN) are the true ones."""
    r = get_relaxation(op, attrs)
    l0 = torch.tensor([-3.0, -1.0, 0.5, -0.2, -4.0, 1.0], dtype=torch.float64)
    # No box with |l| = |u|: there f'(l) = f'(u) is a kink of the slope range's minimum.
    u0 = torch.tensor([-1.0, 2.0, 3.0, 0.1, 4.5, 1.5], dtype=torch.float64)
    a0 = torch.tensor([[0.2, 0.7, 0.4, 0.9, 0.1, 0.5], [0.6, 0.3, 0.8, 0.2, 0.9, 0.5]])
    a0 = a0.to(torch.float64)

    def total(alpha: torch.Tensor, l: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        lines = r.relax(l, u, alpha)
        return lines.lb + lines.ub + 0.5 * (lines.lw + lines.uw)

    alpha, l, u = (t.clone().requires_grad_(True) for t in (a0, l0, u0))
    total(alpha, l, u).sum().backward()
    h = 1e-6
    for t0, grad, k in ((a0, alpha.grad, 0), (l0, l.grad, 1), (u0, u.grad, 2)):
        assert grad is not None
        for idx in np.ndindex(*t0.shape):
            args = [a0, l0, u0]
            up, down = t0.clone(), t0.clone()
            up[idx] += h
            down[idx] -= h
            args[k] = up
            f_up = total(*args).sum()
            args[k] = down
            numeric = (f_up - total(*args).sum()) / (2 * h)
            assert abs(float(grad[idx]) - float(numeric)) < 1e-4 * (1 + abs(float(numeric))), (
                f"{op} d/d{'alu'[k]}{idx}: autograd {float(grad[idx])} vs numeric {float(numeric)}"
            )


@pytest.mark.parametrize("fun", [SIGMOID, TANH, ERF], ids=["sigmoid", "tanh", "erf"])
def test_fused_biases_equal_the_generic_bracketing(fun) -> None:
    """The closed-form S-shape biases (``lines64``) match the generic piecewise bracketing."""
    from bounds.relax.s_shaped import _s_lines, _s_shape
    from bounds.relax.tangents import offset_range

    g = torch.Generator().manual_seed(5)
    c = torch.randn(4000, generator=g, dtype=torch.float64) * 4
    w = torch.rand(4000, generator=g, dtype=torch.float64) ** 3 * 8
    l, u = c - w, c + w
    p = torch.rand(2, 4000, generator=g, dtype=torch.float64)
    p[:, :50] = torch.tensor([[0.0], [1.0]])  # extreme slopes
    a_lo, a_up, b_lo, b_up = _s_lines(fun, p, l, u, torch.float64)
    ref_lo, ref_up = offset_range(_s_shape(fun), a_lo, a_up, l, u)
    scale = 1e-12 * (1.0 + l.abs() + u.abs())
    assert (b_lo <= ref_lo + scale).all() and (b_lo >= ref_lo - 1e-9).all()
    assert (b_up >= ref_up - scale).all() and (b_up <= ref_up + 1e-9).all()
    x = l + (u - l) * torch.rand(64, 4000, generator=g, dtype=torch.float64)
    fx = fun.f(x)
    assert (a_lo * x + b_lo <= fx + 1e-15).all() and (a_up * x + b_up >= fx - 1e-15).all()
