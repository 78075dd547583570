"""Counterexample candidates found during the search (REFERENCE §1.a, "leaf CE search").

Two cheap sources per round: the input point that minimises each leaf's linear lower bound
(the corner of the box picked by the signs of the input coefficients), and a short PGD run
started from the most promising leaves. Candidates are only *proposals*: the caller's
``falsify`` callback decides (the verifier confirms with onnxruntime before reporting).
"""

from __future__ import annotations

import torch
from torch import Tensor

from models import Graph, evaluate

__all__ = ["minimising_corners", "pgd", "violation"]


def minimising_corners(A: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """``argmin_{x in box} A·x`` per row and domain.

    Args:
        A: ``[S, B, *input_shape]`` input coefficients of lower bounds.
        lower, upper: boxes ``[B or 1, *input_shape]``.

    Returns:
        ``[S, B, *input_shape]`` points.
    """
    return torch.where(A > 0, lower.unsqueeze(0), upper.unsqueeze(0)).expand_as(A)


def violation(graph: Graph, x: Tensor, C: Tensor, d: Tensor) -> Tensor:
    """``max_s (C·y - d)_s`` per point ``[K]``: the case is violated where it is ``<= 0``."""
    y = evaluate(graph, x).reshape(x.shape[0], -1)
    return (y.to(C) @ C.T - d).max(-1).values


def pgd(
    graph: Graph,
    x0: Tensor,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    steps: int,
    step_fraction: float = 0.1,
) -> Tensor:
    """Projected sign-gradient descent on :func:`violation` inside the box.

    Args:
        graph: the model.
        x0: ``[K, *input_shape]`` starting points.
        lower, upper: ``[1 or K, *input_shape]`` box.
        C, d: the case's rows ``[S, n_out]`` and thresholds ``[S]``.
        steps: descent steps (the step decays linearly to a tenth).
        step_fraction: first step as a fraction of the box width.

    Returns:
        ``[K, *input_shape]`` the best point seen per start.
    """
    x = x0.detach().clone()
    best = x.clone()
    with torch.no_grad():
        best_v = violation(graph, x, C, d)
    width = upper - lower
    for t in range(steps):
        x.requires_grad_(True)
        v = violation(graph, x, C, d)
        (grad,) = torch.autograd.grad(v.sum(), x)
        with torch.no_grad():
            better = v.detach() < best_v
            best[better] = x.detach()[better]
            best_v = torch.minimum(best_v, v.detach())
            frac = step_fraction * (1.0 - 0.9 * t / max(1, steps))
            x = torch.maximum(torch.minimum(x - frac * width * grad.sign(), upper), lower)
    with torch.no_grad():
        v = violation(graph, x, C, d)
        better = v < best_v
        best[better] = x[better]
    return best
