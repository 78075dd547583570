"""Records that cross module boundaries in bounds/.

Shape conventions (stated once for the package):

* ``B`` is the batch of *domains* (input boxes or branch-and-bound subdomains).
  Every per-domain tensor has ``B`` as its first dimension: bounds of a node
  with static shape ``s`` are ``[B, *s]``.
* ``S`` is the number of specification rows (objectives). Linear coefficients
  ``A`` of an objective with respect to a node of shape ``s`` are
  ``[S, B, *s]``; spec matrices ``C`` are given per domain as ``[B, S, n_out]``.
* Lower bounds are sound under-approximations: for every input in the domain,
  ``lower <= value <= upper`` (up to float rounding of the chosen dtype).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

CROWN_MAX_ELEMENTS = 4096
"""Default size above which an intermediate node keeps its IBP interval instead of
CROWN's (one backward row per element would cost more than it tightens, e.g. the
``n·n·(n-1)`` pairwise differences of a decomposed softmax). The one place the default
lives; ``compute_bounds(crown_max_elements=...)`` overrides it per call."""


def all_finite(*ts: Tensor) -> bool:
    """Whether every element of every tensor is finite.

    One sum per tensor instead of ``isfinite(t).all()`` (a boolean tensor, then a
    reduction: 20x slower on a ``[128, 256]`` interval, and every bound step asks). A
    finite sum implies finite elements (any inf or nan makes the sum inf or nan); the
    converse can fail only when finite values overflow the sum, which answers False and
    sends the caller down its general path, never a wrong one.
    """
    return all(math.isfinite(float(t.detach().sum())) for t in ts)


def mul_guarded(a: Tensor, b: Tensor) -> Tensor:
    """``a * b`` with ``0 * inf = 0``: a zero coefficient ignores an infinite term (an
    interval end or a line's bias)."""
    if all_finite(b):
        return a * b
    return torch.where(a == 0, torch.zeros((), dtype=a.dtype, device=a.device), a * b)


class BoundsError(RuntimeError):
    """Bound propagation cannot proceed (unsupported op, domain violation...)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """Elementwise interval ``[lower, upper]`` of one node, ``[B, *shape]`` each."""

    lower: Tensor
    upper: Tensor

    def intersect(self, other: Bounds) -> Bounds:
        """The tighter of two sound intervals (both are valid, so is their meet)."""
        lo = torch.maximum(self.lower, other.lower)
        return Bounds(lo, torch.minimum(self.upper, other.upper))

    def width(self) -> Tensor:
        return self.upper - self.lower

    def take(self, index: Tensor) -> Bounds:
        """Select domains (first dimension)."""
        return Bounds(self.lower[index], self.upper[index])


@dataclass(frozen=True, slots=True)
class BallBounds(Bounds):
    """The input set ``{x : ||x - center||_p <= eps} ∩ [lower, upper]`` (per domain).

    ``lower``/``upper`` enclose the ball (``center ± eps`` clipped to any domain box), so
    interval rules see an ordinary box; linear functions are concretised over the
    ball itself (:func:`bounds.crown.concretize`). ``center``: ``[B, *in]``; ``eps``:
    ``[B]``; ``p`` >= 1 (``inf`` gives a box, for which :class:`Bounds` is exact).
    """

    center: Tensor
    eps: Tensor
    p: float


@dataclass(frozen=True, slots=True)
class LinearBounds:
    """Linear bounds of ``S`` objectives with respect to the network input.

    ``lA, uA``: ``[S, B, *input_shape]``; ``lbias, ubias``: ``[S, B]``. For every
    input ``x`` in the domain: ``lA·x + lbias <= objective <= uA·x + ubias``.
    """

    lA: Tensor
    lbias: Tensor
    uA: Tensor
    ubias: Tensor
