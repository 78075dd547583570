"""The bounds engine's one time limit: a :class:`bounds.deadline.Deadline`.

``compute_bounds``, ``crown_bounds`` and ``optimize_bounds`` take ``deadline=``. Past it,
the CROWN pass keeps IBP intervals and alpha-CROWN takes no further Adam step; the bounds
stay sound. Clocks are injected, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import pytest
import torch

import bounds.alpha as alpha_mod
from bounds import AlphaConfig, BoundGraph, Bounds, compute_bounds
from bounds.crown import crown_bounds
from bounds.deadline import Deadline
from models import evaluate, load_onnx
from models.zoo import zoo_model_path

TOL = 1e-9


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _problem(name: str, B: int = 2, eps: float = 0.3):
    graph = load_onnx(zoo_model_path(name))
    bg = BoundGraph(graph)
    gen = torch.Generator().manual_seed(0)
    centre = torch.rand((B,) + bg.input_shape, generator=gen, dtype=torch.float64) * 2 - 1
    n_out = bg.shape(bg.output_name)[-1]
    C = torch.randn(B, 3, n_out, generator=gen, dtype=torch.float64)
    return graph, bg, centre - eps, centre + eps, C


def _sampled_objectives(graph, lower, upper, C, n: int = 2000) -> torch.Tensor:
    """``[n, B, S]`` values of ``C·y`` at random points of each box."""
    gen = torch.Generator().manual_seed(1)
    t = torch.rand((n,) + tuple(lower.shape), generator=gen, dtype=lower.dtype)
    xs = (lower + (upper - lower) * t).reshape((-1,) + tuple(lower.shape[1:]))
    ys = evaluate(graph, xs).reshape(n, lower.shape[0], -1)
    return torch.einsum("nbo,bso->nbs", ys, C)


@pytest.fixture
def adam_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts ``Adam.step`` calls of alpha-CROWN (one entry per step)."""
    calls: list[int] = []
    original = alpha_mod.Adam.step

    def counting_step(self) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(alpha_mod.Adam, "step", counting_step)
    return calls


def test_expired_deadline_gives_ibp_intervals_in_crown_bounds() -> None:
    _, bg, lower, upper, _ = _problem("mlp_relu")
    box = Bounds(lower, upper)
    clock = FakeClock()
    expired = Deadline.after(0.0, clock=clock)
    assert expired.expired()
    ibp = crown_bounds(bg, box, use_crown=False)
    cut = crown_bounds(bg, box, deadline=expired)
    full = crown_bounds(bg, box, deadline=Deadline.after(10.0, clock=clock))
    assert cut.keys() == ibp.keys()
    for name, b in cut.items():
        torch.testing.assert_close(b.lower, ibp[name].lower, rtol=0, atol=0)
        torch.testing.assert_close(b.upper, ibp[name].upper, rtol=0, atol=0)
    # a deadline still running changes nothing: CROWN tightens some interval
    unlimited = crown_bounds(bg, box)
    tighter = False
    for name, b in full.items():
        torch.testing.assert_close(b.lower, unlimited[name].lower, rtol=0, atol=0)
        torch.testing.assert_close(b.upper, unlimited[name].upper, rtol=0, atol=0)
        tighter |= bool((b.upper - b.lower < ibp[name].upper - ibp[name].lower - 1e-9).any())
    assert tighter


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_tanh"])
def test_expired_deadline_stops_alpha_crown_before_any_step(
    name: str, adam_steps: list[int]
) -> None:
    graph, bg, lower, upper, C = _problem(name)
    cfg = AlphaConfig(iterations=50, patience=1000)
    expired = Deadline.after(0.0, clock=FakeClock())
    ibp = compute_bounds(bg, lower, upper, C, method="ibp")
    cut = compute_bounds(bg, lower, upper, C, method="alpha-crown", alpha=cfg, deadline=expired)
    assert adam_steps == []
    vals = _sampled_objectives(graph, lower, upper, C)
    assert cut.upper is not None
    assert torch.all(vals >= cut.lower - TOL) and torch.all(vals <= cut.upper + TOL)
    # never looser than IBP, whose intervals the CROWN pass kept
    assert torch.all(cut.lower >= ibp.lower - TOL) and torch.all(cut.upper <= ibp.upper + TOL)
    for node, b in cut.intermediate.items():
        ref = ibp.intermediate[node]
        assert torch.all(b.lower >= ref.lower) and torch.all(b.upper <= ref.upper)

    # without the deadline the same call does optimise (the counter sees the steps)
    compute_bounds(bg, lower, upper, C, method="alpha-crown", alpha=cfg)
    assert len(adam_steps) > 0


def test_deadline_expiring_during_alpha_crown_stops_at_the_next_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each Adam step takes one (fake) second; a 2.5 s budget allows exactly three steps."""
    graph, bg, lower, upper, C = _problem("mlp_relu")
    clock = FakeClock()
    steps: list[int] = []
    original = alpha_mod.Adam.step

    def slow_step(self) -> None:
        steps.append(1)
        clock.now += 1.0
        original(self)

    monkeypatch.setattr(alpha_mod.Adam, "step", slow_step)
    cfg = AlphaConfig(iterations=50, patience=1000)
    res = compute_bounds(
        bg,
        lower,
        upper,
        C,
        method="alpha-crown",
        alpha=cfg,
        deadline=Deadline.after(2.5, clock=clock),
    )
    assert len(steps) == 3
    crown = compute_bounds(bg, lower, upper, C, method="crown")
    vals = _sampled_objectives(graph, lower, upper, C)
    assert res.upper is not None
    assert torch.all(vals >= res.lower - TOL) and torch.all(vals <= res.upper + TOL)
    assert torch.all(res.lower >= crown.lower - TOL)
