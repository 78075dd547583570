"""Bounds of many subdomains in one call: the interface between bounds/ and branching/.

A subdomain is the root input box with some intermediate intervals narrowed by splits
(activation-space branch-and-bound, REFERENCE §1.a) or a smaller input box (input
splitting). :func:`bound_subdomains` takes one :class:`BoundRequest` (batched over ``B``
subdomains) and returns one :class:`BoundResult`:

* the intervals of every node are the root's (``base``), narrowed by the per-domain
  ``overrides`` of split nodes and refreshed by one interval pass, so a split also
  tightens every later node for free; a subdomain whose intervals become empty is
  infeasible (nothing to prove there);
* alpha (relaxation parameters) and beta (multipliers of the split constraints, with the
  split point as a bias: ``beta·s·(z - p)``) are optimised jointly by Adam, warm-started
  from the parent's values;
* the result carries what branching needs next: the optimised alpha and beta, the
  coefficients ``lA`` of the objective with respect to every nonlinear node's output
  (BBPS), and the input coefficients of the lower bound (candidate counterexamples).

Intermediate nodes are not re-bounded by CROWN here (the reference's
``fix_interm_bounds``): only the output bound is optimised.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .alpha import Adam, _param_groups, init_alphas, project_
from .crown import backward_lower
from .deadline import Deadline
from .ibp import node_interval
from .network import BoundGraph
from .types import Bounds, BoundsError

__all__ = [
    "BoundRequest",
    "BoundResult",
    "SplitConstraint",
    "bound_subdomains",
    "split_constraints",
    "split_terms",
]

# Relative tolerance when deciding that an interval became empty (float rounding of the
# interval pass must never make a feasible subdomain look infeasible): at least 1e-6, and
# a thousand rounding units of the dtype.
_EMPTY_TOL = 1e-6


def _empty_tol(dtype: torch.dtype) -> float:
    return max(_EMPTY_TOL, 1e3 * torch.finfo(dtype).eps)


@dataclass(frozen=True)
class BoundRequest:
    """What to bound: ``B`` subdomains, ``S`` objective rows each.

    Attributes:
        lower, upper: input boxes ``[B, *input_shape]``.
        C: ``[B, S, n_out]`` objective rows; the lower bounds of ``C·y`` are computed.
        thresholds: ``[B, S]``; a subdomain is verified when some row's bound exceeds its
            threshold, and optimisation stops for verified subdomains.
        base: intervals valid in every subdomain (the root's), batch 1 or ``B``.
        overrides: per-domain intervals ``[B, *shape]`` of split nodes (subsets of base).
        alphas: warm-start relaxation parameters ``[n, S, B, *shape]`` per node (None:
            the default relaxation's).
        betas: warm-start multipliers ``[2, S, B, *shape]`` per split node (lower and
            upper constraint; None: zeros).
        iterations: Adam steps (0: one pass with the given parameters).
        lr_alpha, lr_beta: step sizes.
        lr_decay: per-iteration decay of both step sizes.
        deadline: stop iterating when it expires (the best bound so far is returned).
        record: nonlinear nodes whose output coefficients ``lA`` to return.
        input_A: also return the input coefficients of the final pass.
        refresh: run the interval pass over the whole graph (else use base/overrides as is).
        initial: ``[B, S]`` known sound lower bounds (e.g. the parent's) to start from.
    """

    lower: Tensor
    upper: Tensor
    C: Tensor
    thresholds: Tensor
    base: Mapping[str, Bounds]
    overrides: Mapping[str, Bounds] = field(default_factory=dict)
    alphas: Mapping[str, Tensor] | None = None
    betas: Mapping[str, Tensor] | None = None
    iterations: int = 10
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    lr_decay: float = 0.98
    deadline: Deadline | None = None
    record: frozenset[str] = frozenset()
    input_A: bool = False
    refresh: bool = True
    initial: Tensor | None = None


@dataclass
class BoundResult:
    """Bounds of a :class:`BoundRequest`.

    Attributes:
        lower: ``[B, S]`` sound lower bounds of ``C·y`` (``+inf`` rows in infeasible
            subdomains).
        infeasible: ``[B]``: the split constraints contradict each other (empty subdomain).
        intervals: node -> ``[B, *shape]`` intervals used (after the refresh).
        alphas, betas: the optimised parameters (detached), same layout as the request's.
        lA: node -> ``[S, B, *shape]`` objective coefficients w.r.t. the node's output.
        input_A: ``[S, B, *input_shape]`` coefficients of the final lower bound w.r.t. the
            input (None unless requested).
        iterations: Adam steps taken.
    """

    lower: Tensor
    infeasible: Tensor
    intervals: dict[str, Bounds]
    alphas: dict[str, Tensor]
    betas: dict[str, Tensor]
    lA: dict[str, Tensor]
    input_A: Tensor | None
    iterations: int


def _expand(b: Bounds, B: int) -> Bounds:
    if b.lower.shape[0] == B:
        return b
    return Bounds(b.lower.expand(B, *b.lower.shape[1:]), b.upper.expand(B, *b.upper.shape[1:]))


def refreshed_intervals(
    bg: BoundGraph,
    box: Bounds,
    base: Mapping[str, Bounds],
    overrides: Mapping[str, Bounds],
) -> tuple[dict[str, Bounds], Tensor]:
    """Intervals of every node: an interval pass intersected with base and overrides.

    Returns the intervals and an ``[B]`` mask of infeasible subdomains (some interval
    empty beyond rounding). Empty intervals are widened back to a point so that the
    relaxations stay well defined; those subdomains are discarded by the caller.
    """
    B = box.lower.shape[0]
    cur: dict[str, Bounds] = {bg.input_name: box}
    empty = torch.zeros(B, dtype=torch.bool, device=box.lower.device)
    for name in bg.order:
        b = node_interval(bg, bg.infos[name], cur)
        if name in base:
            b = b.intersect(_expand(base[name], B))
        if name in overrides:
            b = b.intersect(overrides[name])
        gap = b.lower - b.upper
        if bool((gap > 0).any()):
            tol = _empty_tol(b.lower.dtype) * (1.0 + b.lower.abs() + b.upper.abs())
            empty |= (gap > tol).flatten(1).any(1)
            b = Bounds(torch.minimum(b.lower, b.upper), b.upper)
        cur[name] = b
    return cur, empty


@dataclass(frozen=True)
class SplitConstraint:
    """The split constraints of one node: ``z >= lower`` where ``raised``, ``z <= upper``
    where ``lowered`` (``[B, *shape]`` each; the points are 0 where inactive)."""

    raised: Tensor
    lower: Tensor
    lowered: Tensor
    upper: Tensor


def split_constraints(
    base: Mapping[str, Bounds], intervals: Mapping[str, Bounds], names: list[str]
) -> dict[str, SplitConstraint]:
    """Constraints of split nodes ``names``: every end narrower than the root's interval."""
    out: dict[str, SplitConstraint] = {}
    for name in names:
        root, cur = base[name], intervals[name]
        raised = cur.lower > root.lower
        lowered = cur.upper < root.upper
        zero = torch.zeros_like(cur.lower)
        out[name] = SplitConstraint(
            raised.to(cur.lower.dtype),
            torch.where(raised, cur.lower, zero),
            lowered.to(cur.upper.dtype),
            torch.where(lowered, cur.upper, zero),
        )
    return out


def split_terms(
    constraints: Mapping[str, SplitConstraint], betas: Mapping[str, Tensor]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Lagrangian terms ``-b0·(z - l) + b1·(z - u)`` of the split constraints.

    The subdomain satisfies ``z >= l`` where ``l`` was raised and ``z <= u`` where ``u`` was
    lowered; each term is ``<= 0`` there for ``b0, b1 >= 0`` (betas ``[2, S, B, *shape]``).
    """
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name, beta in betas.items():
        c = constraints[name]
        b0, b1 = beta[0] * c.raised, beta[1] * c.lowered
        bias = (b0 * c.lower - b1 * c.upper).flatten(2).sum(-1)
        out[name] = (b1 - b0, bias)
    return out


def bound_subdomains(bg: BoundGraph, req: BoundRequest) -> BoundResult:
    """Optimise alpha and beta for every subdomain of ``req``; see the module docstring."""
    B, S = req.C.shape[0], req.C.shape[1]
    if req.lower.shape[0] != B or req.thresholds.shape != (B, S):
        raise BoundsError(
            f"request shapes disagree: box {tuple(req.lower.shape)}, C {tuple(req.C.shape)}, "
            f"thresholds {tuple(req.thresholds.shape)}"
        )
    box = Bounds(req.lower, req.upper)
    with torch.no_grad():
        if req.refresh:
            intervals, infeasible = refreshed_intervals(bg, box, req.base, req.overrides)
        else:
            intervals = {k: _expand(v, B) for k, v in req.base.items()}
            intervals.update(req.overrides)
            intervals[bg.input_name] = box
            infeasible = torch.zeros(B, dtype=torch.bool, device=req.lower.device)
    out_shape = bg.shape(bg.output_name)
    A0 = req.C.to(req.lower).transpose(0, 1).reshape((S, B) + out_shape)
    thr = req.thresholds.T.to(req.lower)

    alphas = _start_alphas(bg, intervals, S, req.alphas)
    split_nodes = [n for n in req.overrides if n in bg.infos]
    betas = {}
    for name in split_nodes:
        warm = None if req.betas is None else req.betas.get(name)
        shape = (2, S, B) + bg.shape(name)
        t = warm.to(req.lower).clone() if warm is not None else req.lower.new_zeros(shape)
        betas[name] = t.requires_grad_(True)
    base = {n: _expand(req.base[n], B) if n in req.base else intervals[n] for n in split_nodes}
    # The constraints depend on the intervals only: fixed for the whole optimisation.
    constraints = split_constraints(base, intervals, split_nodes)

    best = torch.full((S, B), -math.inf, dtype=req.lower.dtype, device=req.lower.device)
    if req.initial is not None:
        best = torch.maximum(best, req.initial.T.to(best))
    groups = _param_groups(bg, alphas, req.lr_alpha)
    if betas:
        groups.append({"params": list(betas.values()), "lr": req.lr_beta})
    opt = None
    if req.iterations > 0 and groups:
        opt = Adam(groups, lr_decay=req.lr_decay)
    full = _Full(B, best)
    bounds_now, infeasible_now = intervals, infeasible
    lA: dict[str, Tensor] = {}
    input_A = None
    steps = 0
    for it in range(req.iterations + 1):
        last = it == req.iterations or opt is None
        with torch.set_grad_enabled(not last):
            terms = split_terms(constraints, betas) if betas else None
            res = backward_lower(
                bg,
                bg.output_name,
                A0,
                bounds_now,
                alphas=alphas,
                split_terms=terms,
                record=req.record,
                return_input_A=req.input_A,
            )
        lb = res.lower
        with torch.no_grad():
            best = torch.maximum(best, lb.detach())
            full.best[:, full.rows] = best
            done = (best > thr).any(0) | infeasible_now
            lA = {k: v.detach() for k, v in (res.node_A or {}).items()}
            input_A = None if res.input_A is None else res.input_A.detach()
        if last or bool(done.all()):
            break
        if req.deadline is not None and req.deadline.expired():
            break
        active = (~done).unsqueeze(0) & (best <= thr)
        loss = -(lb * active).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        steps += 1
        with torch.no_grad():
            project_(bg, alphas)
            for t in betas.values():
                t.clamp_(min=0.0)
        n_done = int(done.sum())
        if n_done and _COMPACT_FRACTION and n_done * _COMPACT_FRACTION >= done.numel():
            # Verified subdomains leave the batch: the remaining steps cost what they bound.
            keep = torch.nonzero(~done).flatten()
            full.keep(keep)
            old = {id(t): t for t in [*alphas.values(), *betas.values()]}
            n = done.numel()
            alphas = {k: _select_param(v, keep, n) for k, v in alphas.items()}
            betas = {k: _select_param(v, keep, n) for k, v in betas.items()}
            fresh = [*alphas.values(), *betas.values()]
            opt.select({id(t): f for t, f in zip(old.values(), fresh)}, _Rows(keep, n))
            groups = opt.param_groups()
            bounds_now = {k: _select_bounds(v, keep) for k, v in bounds_now.items()}
            constraints = {
                k: SplitConstraint(*(t.index_select(0, keep) for t in dataclasses.astuple(c)))
                for k, c in constraints.items()
            }
            A0, thr, best = A0.index_select(1, keep), thr.index_select(1, keep), best[:, keep]
            infeasible_now = infeasible_now.index_select(0, keep)
    lower = full.best.T.contiguous()
    lower[infeasible] = math.inf
    return BoundResult(
        lower=lower,
        infeasible=infeasible,
        intervals=intervals,
        alphas={k: full.scatter(v.detach(), 2) for k, v in alphas.items()},
        betas={k: full.scatter(v.detach(), 2) for k, v in betas.items()},
        lA={k: full.scatter(v, 1) for k, v in lA.items()},
        input_A=None if input_A is None else full.scatter(input_A, 1),
        iterations=steps,
    )


# Drop verified subdomains from the optimisation once they are at least this fraction
# (1/8) of the batch: a smaller batch saves less than the copies cost. 0: never.
_COMPACT_FRACTION = 8


class _Full:
    """Which of the request's ``B`` subdomains are still optimised, and their best bounds."""

    def __init__(self, B: int, best: Tensor) -> None:
        self.B = B
        self.rows = torch.arange(B, device=best.device)
        self.best = best.clone()

    def keep(self, keep: Tensor) -> None:
        self.rows = self.rows[keep]

    def scatter(self, t: Tensor, dim: int) -> Tensor:
        """``t`` (domain dimension ``dim``, current rows) at full size; dropped rows 0."""
        if self.rows.numel() == self.B:  # nothing was dropped
            return t
        shape = list(t.shape)
        shape[dim] = self.B
        return t.new_zeros(shape).index_copy_(dim, self.rows, t)


@dataclass(frozen=True)
class _Rows:
    """``t -> _rows(t, keep, n)``."""

    keep: Tensor
    n: int

    def __call__(self, t: Tensor) -> Tensor:
        return _rows(t, self.keep, self.n)


def _rows(t: Tensor, keep: Tensor, n: int) -> Tensor:
    """Rows ``keep`` of dimension 2 (``n`` subdomains, or 1 shared by all)."""
    return t.expand(*t.shape[:2], n, *t.shape[3:]).index_select(2, keep)


def _select_param(t: Tensor, keep: Tensor, n: int) -> Tensor:
    """Rows ``keep`` of a parameter (see :func:`_rows`), as a new leaf that requires grad."""
    return _rows(t.detach(), keep, n).requires_grad_(True)


def _select_bounds(b: Bounds, keep: Tensor) -> Bounds:
    if b.lower.shape[0] == 1:  # shared by every subdomain
        return b
    return Bounds(b.lower.index_select(0, keep), b.upper.index_select(0, keep))


def _start_alphas(
    bg: BoundGraph,
    intervals: Mapping[str, Bounds],
    S: int,
    warm: Mapping[str, Tensor] | None,
) -> dict[str, Tensor]:
    """Parameters to optimise: the warm start where given, else the default relaxation's."""
    warm = warm or {}
    fresh = init_alphas(bg, intervals, S, nodes={n for n in bg.infos if n not in warm})
    for name, t in warm.items():
        fresh[name] = t.to(intervals[bg.input_name].lower).clone().requires_grad_(True)
    return fresh
