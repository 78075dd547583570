"""Bounds over Lp balls (``compute_bounds_ball``): sampled soundness, tightness, errors."""

from __future__ import annotations

import math

import pytest
import torch

from bounds import BoundGraph, BoundsError, compute_bounds, compute_bounds_ball
from models import evaluate, load_onnx
from models.zoo import zoo_model_path

TOL = 1e-9
METHODS = ("ibp", "crown", "alpha-crown")


def _ball_points(center: torch.Tensor, eps: float, p: float, n: int, gen) -> torch.Tensor:
    """``n`` points per centre in ``||x - c||_p <= eps``: interior, surface and vertices."""
    B = center.shape[0]
    dim = center[0].numel()
    if p == math.inf:
        d = torch.rand(n, B, dim, generator=gen, dtype=center.dtype) * 2 - 1
    else:
        # generalised Gaussian directions, normalised to the unit p-sphere
        g = torch.randn(n, B, dim, generator=gen, dtype=center.dtype)
        d = g.sign() * g.abs().pow(2.0 / p) if p != 2 else g
        d = d / torch.linalg.vector_norm(d, ord=p, dim=-1, keepdim=True)
        radius = torch.rand(n, B, 1, generator=gen, dtype=center.dtype)
        radius[: n // 4] = 1.0  # a quarter on the surface
        d = d * radius
        if p == 1:  # the vertices, where the L1 ball's extremes are
            k = min(n // 4, dim)
            d[n // 4 : n // 4 + k] = 0.0
            idx = torch.arange(k)
            d[n // 4 + idx, :, idx] = 1.0
    return center + eps * d.reshape((n,) + tuple(center.shape))


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_sigmoid", "cnn_sigmoid"])
@pytest.mark.parametrize("p", [2.0, 1.0])
def test_ball_bounds_are_sound_and_beat_the_enclosing_box(name: str, p: float) -> None:
    graph = load_onnx(zoo_model_path(name))
    bg = BoundGraph(graph)
    gen = torch.Generator().manual_seed(11)
    center = torch.rand((2,) + bg.input_shape, generator=gen, dtype=torch.float64)
    eps = 0.3 if p == 2 else 0.6
    xs = _ball_points(center, eps, p, 3000, gen)
    ys = evaluate(graph, xs.reshape((-1,) + bg.input_shape)).reshape(3000, 2, -1)
    for method in METHODS:
        r = compute_bounds_ball(bg, center, eps, norm=p, method=method)
        assert torch.all(ys >= r.lower - TOL), f"{method}: lower bound above a sample"
        assert torch.all(ys <= r.upper + TOL), f"{method}: upper bound below a sample"
        if method == "crown":
            box = compute_bounds(bg, center - eps, center + eps, method="crown")
            assert torch.all(r.lower >= box.lower - TOL) and torch.all(r.upper <= box.upper + TOL)
            assert bool((r.lower > box.lower + 1e-6).any()), "the ball should be tighter"


def test_linf_ball_is_the_box_and_domain_clips() -> None:
    bg = BoundGraph(load_onnx(zoo_model_path("mlp_tanh")))
    center = torch.full((1,) + bg.input_shape, 0.9, dtype=torch.float64)
    ball = compute_bounds_ball(bg, center, 0.2, method="crown", domain=(0.0, 1.0))
    box = compute_bounds(bg, center - 0.2, (center + 0.2).clamp(max=1.0), method="crown")
    torch.testing.assert_close(ball.lower, box.lower, rtol=0, atol=0)
    torch.testing.assert_close(ball.upper, box.upper, rtol=0, atol=0)


def test_l2_ball_with_domain_is_sound() -> None:
    graph = load_onnx(zoo_model_path("mlp_relu"))
    bg = BoundGraph(graph)
    gen = torch.Generator().manual_seed(3)
    center = torch.rand((1,) + bg.input_shape, generator=gen, dtype=torch.float64)
    xs = _ball_points(center, 0.5, 2.0, 4000, gen)
    xs = xs[((xs >= 0) & (xs <= 1)).flatten(1).all(1)]
    ys = evaluate(graph, xs.reshape((-1,) + bg.input_shape))
    r = compute_bounds_ball(bg, center, 0.5, norm=2.0, domain=(0.0, 1.0), method="alpha-crown")
    assert xs.shape[0] > 100
    assert torch.all(ys >= r.lower[0] - TOL) and torch.all(ys <= r.upper[0] + TOL)


@pytest.mark.parametrize(
    ("eps", "norm", "domain", "match"),
    [
        (-0.1, 2.0, None, "eps"),
        (float("nan"), 2.0, None, "eps"),
        (0.1, 0.5, None, "norm"),
        (0.1, 2.0, (2.0, 3.0), "does not meet"),
    ],
)
def test_bad_ball_arguments_raise(eps, norm, domain, match) -> None:
    bg = BoundGraph(load_onnx(zoo_model_path("mlp_relu")))
    center = torch.zeros((1,) + bg.input_shape, dtype=torch.float64)
    with pytest.raises(BoundsError, match=match):
        compute_bounds_ball(bg, center, eps, norm=norm, domain=domain)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_concretize_is_the_exact_minimum_of_a_linear_function(p: float) -> None:
    from bounds.crown import concretize
    from bounds.types import BallBounds

    gen = torch.Generator().manual_seed(int(p * 10))
    c = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    A = torch.randn(3, 2, 5, generator=gen, dtype=torch.float64)
    eps = torch.tensor([0.1, 0.7], dtype=torch.float64)
    big = 100.0  # the enclosing box does not bind
    got = concretize(A, BallBounds(c - big, c + big, c, eps, p))
    # the minimiser of A·x on the p-sphere (Hölder's equality case)
    q = math.inf if p == 1 else p / (p - 1)
    if p == 1:
        k = A.abs().argmax(-1, keepdim=True)
        d = -torch.zeros_like(A).scatter(-1, k, 1.0) * A.gather(-1, k).sign()
    else:
        d = -A.sign() * A.abs().pow(q - 1)
        d = d / torch.linalg.vector_norm(d, ord=p, dim=-1, keepdim=True)
    x = c + eps[:, None] * d
    torch.testing.assert_close(got, (A * x).sum(-1), rtol=0, atol=1e-12)
    # the box, when tighter than the ball, wins
    tight = concretize(A, BallBounds(c - 1e-3, c + 1e-3, c, eps, p))
    assert torch.all(tight >= got - 1e-12)
