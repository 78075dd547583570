"""Products of two perturbed tensors (``bounds.products``) and the hand-written Adam.

* ``matmul_step`` / ``mul_step`` are sound: for sampled points of random boxes,
  ``a·f(X, Y) >= ax·X + ay·Y + bias`` for random coefficients and parameters.
* ``matmul_step`` gives the planes of the elementwise rewrite
  ``ReduceSum(Mul(X[..., None], Y[..., None, :, :]))`` (the form bounds used before).
* Attention (``softmax(Q Kᵀ) V`` between linear layers) bounded by every method
  contains sampled outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from bounds.alpha import Adam
from bounds.products import _matmul_elementwise, matmul_interval, matmul_step, mul_step
from bounds.types import Bounds
from models.evaluate import evaluate
from models.graph import Graph, Node, ValueInfo, freeze_attrs

D = torch.float64


def _box(gen: torch.Generator, shape: tuple[int, ...]) -> Bounds:
    c = torch.randn(shape, generator=gen, dtype=D)
    r = torch.rand(shape, generator=gen, dtype=D) * 1.5
    r = torch.where(torch.rand(shape, generator=gen, dtype=D) < 0.1, 0.0, r)  # some points
    return Bounds(c - r, c + r)


def _sample(gen: torch.Generator, b: Bounds, n: int) -> torch.Tensor:
    t = torch.rand((n,) + tuple(b.lower.shape), generator=gen, dtype=D)
    t = torch.where(t < 0.15, 0.0, torch.where(t > 0.85, 1.0, t))  # corners too
    return b.lower + (b.upper - b.lower) * t


def _mm(X: torch.Tensor, Y: torch.Tensor, lead: int = 2) -> torch.Tensor:
    """``X @ Y`` per sample with per-sample shapes broadcast after the ``lead`` dims."""
    rank = max(X.dim(), Y.dim())
    X = X.reshape(X.shape[:lead] + (1,) * (rank - X.dim()) + X.shape[lead:])
    Y = Y.reshape(Y.shape[:lead] + (1,) * (rank - Y.dim()) + Y.shape[lead:])
    return torch.matmul(X, Y)


def _linear_value(ax: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``ax·v`` per sample: ``ax`` ``[S, B, *s]``, ``v`` ``[N, B, *s]`` -> ``[N, S, B]``."""
    return (ax.unsqueeze(0) * v.unsqueeze(1)).flatten(3).sum(-1)


MATMUL_SHAPES = [
    ((2, 3, 4), (2, 4, 5)),
    ((1, 2, 3, 4), (4, 3)),  # Y broadcast over the batch dims of X
    ((3, 1, 2, 4), (1, 2, 4, 2)),  # both broadcast
]


@pytest.mark.parametrize("use_alpha", [False, True])
@pytest.mark.parametrize(("xs", "ys"), MATMUL_SHAPES)
def test_matmul_step_is_sound(xs, ys, use_alpha: bool) -> None:
    gen = torch.Generator().manual_seed(hash((xs, ys, use_alpha)) % 1000)
    B, S = 2, 3
    x, y = _box(gen, (B,) + xs), _box(gen, (B,) + ys)
    zshape = torch.matmul(torch.zeros(xs), torch.zeros(ys)).shape
    a = torch.randn((S, B) + tuple(zshape), generator=gen, dtype=D)
    alpha = None
    if use_alpha:
        terms = tuple(zshape[:-1]) + (xs[-1], ys[-1])
        alpha = torch.rand((2, S, B) + terms, generator=gen, dtype=D) * 1.4 - 0.2
    ax, ay, bias = matmul_step(a, x, y, alpha, xs, ys)
    X, Y = _sample(gen, x, 400), _sample(gen, y, 400)
    exact = (a.unsqueeze(0) * _mm(X, Y).unsqueeze(1)).flatten(3).sum(-1)
    lin = _linear_value(ax, X) + _linear_value(ay, Y) + bias
    assert float((lin - exact).max()) <= 1e-9
    # the same planes as the elementwise (per-term) form
    ex, ey, eb = _matmul_elementwise(a, x, y, alpha, xs, ys)
    if len(xs) == len(ys):
        torch.testing.assert_close(ax, ex, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ay, ey, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(bias, eb, rtol=1e-10, atol=1e-10)
    iv = matmul_interval(x, y)
    assert bool((_mm(X, Y) >= iv.lower - 1e-12).all())
    assert bool((_mm(X, Y) <= iv.upper + 1e-12).all())


def test_matmul_step_with_infinite_bounds_is_sound() -> None:
    gen = torch.Generator().manual_seed(5)
    x, y = _box(gen, (1, 3, 2)), _box(gen, (1, 2, 3))
    X, Y = _sample(gen, x, 300), _sample(gen, y, 300)
    x = Bounds(x.lower.clone(), x.upper.clone())
    x.upper[0, 0, 0] = float("inf")
    a = torch.randn((2, 1, 3, 3), generator=gen, dtype=D)
    ax, ay, bias = matmul_step(a, x, y, None, (3, 2), (2, 3))
    assert not bool(torch.isnan(ax).any() | torch.isnan(ay).any() | torch.isnan(bias).any())
    exact = (a.unsqueeze(0) * _mm(X, Y).unsqueeze(1)).flatten(3).sum(-1)
    lin = _linear_value(ax, X) + _linear_value(ay, Y) + bias
    assert float((lin - exact).max()) <= 1e-9


@pytest.mark.parametrize("use_alpha", [False, True])
def test_mul_step_is_sound(use_alpha: bool) -> None:
    gen = torch.Generator().manual_seed(11)
    B, S, xs, ys = 2, 3, (3, 4), (3, 1)
    x, y = _box(gen, (B,) + xs), _box(gen, (B,) + ys)
    a = torch.randn((S, B) + xs, generator=gen, dtype=D)
    alpha = torch.rand((2, S, B) + xs, generator=gen, dtype=D) if use_alpha else None
    ax, ay, bias = mul_step(a, x, y, alpha, xs, ys)
    X, Y = _sample(gen, x, 400), _sample(gen, y, 400)
    exact = (a.unsqueeze(0) * (X * Y).unsqueeze(1)).flatten(3).sum(-1)
    lin = _linear_value(ax, X) + _linear_value(ay, Y) + bias
    assert float((lin - exact).max()) <= 1e-9


def _attention_graph(rng: np.random.Generator, n: int = 4, d: int = 6, h: int = 2) -> Graph:
    """``x [1, n, d]`` -> Q, K, V (linear) -> softmax(Q Kᵀ / sqrt(dh)) V per head -> linear."""
    dh = d // h
    consts: dict[str, np.ndarray] = {}
    nodes: list[Node] = []

    def add(name, op, inputs, out_shape, **attrs):
        nodes.append(Node(name, op, tuple(inputs), freeze_attrs(attrs), tuple(out_shape)))
        return name

    def linear(name, src, d_in, d_out, shape):
        consts[name + "_w"] = rng.normal(size=(d_in, d_out)) / np.sqrt(d_in)
        consts[name + "_b"] = rng.normal(size=(d_out,)) * 0.1
        return add(name, "Linear", (src, name + "_w", name + "_b"), shape)

    heads = {}
    for t in ("q", "k", "v"):
        lin = linear(t, "x", d, d, (1, n, d))
        r = add(t + "_r", "Reshape", (lin,), (1, n, h, dh), shape=(1, n, h, dh))
        heads[t] = add(t + "_t", "Transpose", (r,), (1, h, n, dh), perm=(0, 2, 1, 3))
    kt = add("kt", "Transpose", (heads["k"],), (1, h, dh, n), perm=(0, 1, 3, 2))
    scores = add("scores", "MatMul", (heads["q"], kt), (1, h, n, n))
    consts["scale"] = np.array(1 / np.sqrt(dh))
    scaled = add("scaled", "Mul", (scores, "scale"), (1, h, n, n))
    attn = add("attn", "Softmax", (scaled,), (1, h, n, n), axis=3)
    mixed = add("mixed", "MatMul", (attn, heads["v"]), (1, h, n, dh))
    back = add("back", "Transpose", (mixed,), (1, n, h, dh), perm=(0, 2, 1, 3))
    flat = add("flat", "Reshape", (back,), (1, n * d), shape=(1, n * d))
    linear("y", flat, n * d, 3, (1, 3))
    return Graph(
        name="attention",
        inputs=(ValueInfo("x", (1, n, d)),),
        outputs=(ValueInfo("y", (1, 3)),),
        nodes=tuple(nodes),
        constants=consts,
    )


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_attention_bounds_contain_samples(method: str) -> None:
    rng = np.random.default_rng(3)
    g = _attention_graph(rng)
    bg = BoundGraph(g)
    assert {bg.infos[n].kind for n in ("scores", "mixed")} == {"product"}
    center = torch.tensor(rng.normal(size=(2, 1, 4, 6)))
    radius = torch.tensor([0.05, 0.3]).reshape(2, 1, 1, 1)
    lo, hi = center - radius, center + radius
    r = compute_bounds(bg, lo, hi, method=method, alpha=AlphaConfig(iterations=5))
    for k in range(2):
        t = torch.rand((500,) + tuple(lo.shape[1:]), dtype=D)
        t = torch.where(t < 0.1, 0.0, torch.where(t > 0.9, 1.0, t))
        ys = evaluate(g, lo[k] + (hi[k] - lo[k]) * t).reshape(500, -1)
        assert float((r.lower[k] - ys).max()) <= 1e-9
        assert float((ys - r.upper[k]).max()) <= 1e-9


def test_adam_matches_torch_optim() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(5, generator=gen, dtype=D)
    p1 = torch.zeros(5, dtype=D, requires_grad=True)
    p2 = torch.zeros(5, dtype=D, requires_grad=True)
    ours = Adam([{"params": [p1], "lr": 0.1}], lr_decay=0.9)
    ref = torch.optim.Adam([{"params": [p2], "lr": 0.1}])
    sched = torch.optim.lr_scheduler.ExponentialLR(ref, 0.9)
    for _ in range(6):
        for p, opt in ((p1, ours), (p2, ref)):
            opt.zero_grad()
            ((p - target) ** 4).sum().backward()
            opt.step()
        sched.step()
    torch.testing.assert_close(p1, p2, rtol=1e-12, atol=1e-12)
