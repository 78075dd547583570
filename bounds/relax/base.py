"""Types shared by every linear relaxation.

Contract of a relaxation (checked by tests/bounds/test_relax_soundness.py):

* ``relax(l, u, alpha)`` returns :class:`Lines` such that for every element and
  every ``x`` in ``[l, u]``: ``lw*x + lb <= f(x) <= uw*x + ub``.
* It is sound for **every** value of ``alpha`` (parameters are clamped or
  projected inside ``relax``), so optimisers never need to worry about it.
  ``alpha=None`` gives the default (CROWN) relaxation.
* ``alpha`` has shape ``[n_alpha, *S]`` where ``S`` broadcasts against
  ``l.shape`` (alpha-CROWN adds leading spec dimensions); outputs then have the
  broadcast shape.
* ``l <= u`` elementwise; ``l == u`` is allowed; infinite ``l``/``u`` must still
  give sound lines (use slope 0 and the function's range, which may be an
  infinite bias only when the function is unbounded there). Never NaN.
* Inputs outside the op's domain (e.g. ``l <= 0`` for Log/Reciprocal/Sqrt) raise
  :class:`DomainError` with a message naming the op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


class DomainError(ValueError):
    """The input interval leaves the domain where a relaxation is defined."""


@dataclass(frozen=True, slots=True)
class Lines:
    """Elementwise linear bounds ``lw*x + lb <= f(x) <= uw*x + ub`` on ``[l, u]``."""

    lw: Tensor
    lb: Tensor
    uw: Tensor
    ub: Tensor


@dataclass(frozen=True, slots=True)
class Planes:
    """Bounds of ``f(x, y)``: ``lx*x + ly*y + lc <= f <= ux*x + uy*y + uc`` on a box."""

    lx: Tensor
    ly: Tensor
    lc: Tensor
    ux: Tensor
    uy: Tensor
    uc: Tensor


RelaxFn = Callable[[Tensor, Tensor, "Tensor | None"], Lines]


@dataclass(frozen=True)
class UnaryRelaxation:
    """Everything the engine needs to know about one elementwise nonlinearity.

    Attributes:
        op: canonical op name ("Sigmoid", "Pow", ...).
        fn: the exact function, elementwise on tensors.
        relax: ``(l, u, alpha | None) -> Lines`` (see module contract).
        n_alpha: number of optimisable parameters per element (0: not optimisable).
        alpha_init: ``(l, u) -> Tensor[n_alpha, *l.shape]``; ``relax(l, u,
            alpha_init(l, u))`` equals the default relaxation (or is at least as tight).
        domain: the closed/open input domain ``(lo, hi)`` where the op is defined.
        splittable: whether branch-and-bound may split this op's input.
        split_mask: ``(l, u) -> BoolTensor``: neurons worth splitting.
        interval: optional exact interval map ``(l, u) -> (fl, fu)``; when None
            the engine uses the relaxation's concretisation.
        alpha_range: a constant box ``(lo, hi)`` holding every useful parameter value;
            alpha-CROWN projects onto it after each step (``relax`` clamps anyway, but
            a parameter left far outside would get no gradient). None: no projection.
        alpha_lr_scale: multiplies alpha-CROWN's step size for this op's parameters
            (how far one unit of the parameter moves the lines differs by family).
    """

    op: str
    fn: Callable[[Tensor], Tensor]
    relax: RelaxFn
    n_alpha: int = 0
    alpha_init: Callable[[Tensor, Tensor], Tensor] | None = None
    domain: tuple[float, float] = (-float("inf"), float("inf"))
    splittable: bool = True
    split_mask: Callable[[Tensor, Tensor], Tensor] | None = None
    interval: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    alpha_range: tuple[float, float] | None = None
    alpha_lr_scale: float = 1.0


def default_split_mask(l: Tensor, u: Tensor) -> Tensor:
    """Smooth ops: split while the interval is wider than 0.01 (REFERENCE §1.a)."""
    return (u - l) >= 1e-2


def safe_div(num: Tensor, den: Tensor, eps: float = 1e-12) -> Tensor:
    """``num / den`` with ``|den|`` clamped away from zero (sign kept)."""
    den = torch.where(den >= 0, den.clamp(min=eps), den.clamp(max=-eps))
    return num / den
