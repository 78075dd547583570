"""alpha-CROWN with intermediate-layer parameters (``bounds.alpha.optimize_bounds``).

Checks that the tightened intermediate intervals still contain every sampled value
of their node, that they are never looser than CROWN's, that the output bound is at
least as tight as output-only alpha-CROWN, and that a zero budget falls back to it.
"""

from __future__ import annotations

import pytest
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from bounds.alpha import _intermediate_starts
from models import evaluate_all, load_onnx
from models.zoo import zoo_model_path

TOL = 1e-9


def _boxes(bg: BoundGraph, eps: float, B: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand((B,) + bg.input_shape, generator=gen, dtype=torch.float64) * 2 - 1
    return centre - eps, centre + eps


def _rows(B: int, n_out: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, n_out, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_tanh", "mlp_sigmoid"])
def test_intermediate_alpha_is_sound_and_tighter(name: str) -> None:
    graph = load_onnx(zoo_model_path(name))
    bg = BoundGraph(graph)
    lower, upper = _boxes(bg, 0.4, 3, seed=0)
    C = _rows(3, 4, seed=1)
    crown = compute_bounds(bg, lower, upper, C, method="crown")
    cfg = AlphaConfig(iterations=20)
    out_only = compute_bounds(
        bg,
        lower,
        upper,
        C,
        method="alpha-crown",
        alpha=AlphaConfig(iterations=20, intermediate=False),
    )
    full = compute_bounds(bg, lower, upper, C, method="alpha-crown", alpha=cfg)
    # there is something to optimise in these networks
    assert _intermediate_starts(bg, crown.intermediate, cfg.intermediate_budget, 4096)

    # sampled values of every node lie inside the tightened intervals
    t = torch.rand((4000, 3) + bg.input_shape, dtype=torch.float64)
    xs = (lower + (upper - lower) * t).reshape((-1,) + bg.input_shape)
    values = evaluate_all(bg.graph, xs)
    tightened = 0
    for node, b in full.intermediate.items():
        v = values[node].reshape((4000, 3) + tuple(b.lower.shape[1:]))
        assert torch.all(v >= b.lower - TOL), f"{node}: lower bound above a sample"
        assert torch.all(v <= b.upper + TOL), f"{node}: upper bound below a sample"
        ref = crown.intermediate[node]
        assert torch.all(b.lower >= ref.lower - TOL) and torch.all(b.upper <= ref.upper + TOL)
        tightened += int((b.lower > ref.lower + 1e-6).sum() + (b.upper < ref.upper - 1e-6).sum())
    assert tightened > 0, "no intermediate interval got tighter than CROWN's"

    ys = values[bg.output_name].reshape(4000, 3, -1)
    objective = torch.einsum("nbo,bso->nbs", ys, C)
    assert torch.all(objective >= full.lower - TOL) and torch.all(objective <= full.upper + TOL)
    assert torch.all(full.lower >= crown.lower - TOL)
    # on these boxes, the intermediate parameters pay off on average
    assert float((full.lower - out_only.lower).mean()) > 0.0


def test_zero_budget_is_output_only_alpha() -> None:
    bg = BoundGraph(load_onnx(zoo_model_path("mlp_relu")))
    lower, upper = _boxes(bg, 0.3, 2, seed=3)
    C = _rows(2, 4, seed=4)
    a = compute_bounds(
        bg, lower, upper, C, method="alpha-crown", alpha=AlphaConfig(intermediate_budget=0)
    )
    b = compute_bounds(
        bg, lower, upper, C, method="alpha-crown", alpha=AlphaConfig(intermediate=False)
    )
    torch.testing.assert_close(a.lower, b.lower, rtol=0, atol=0)
    torch.testing.assert_close(a.upper, b.upper, rtol=0, atol=0)
