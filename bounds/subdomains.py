"""Bounds of many subdomains in one call: the interface between bounds/ and branching/.

A subdomain is the root input box with some intermediate intervals narrowed by splits
(activation-space branch-and-bound, REFERENCE §1.a) or a smaller input box (input
splitting). :func:`bound_subdomains` takes one :class:`BoundRequest` (batched over ``B``
subdomains) and returns one :class:`BoundResult`:

* the intervals of every node are the root's (``base``), narrowed by the per-domain
  ``overrides`` of split nodes and refreshed by one interval pass (and optionally by
  CROWN, node by node), so a split also tightens every later node; a subdomain whose
  intervals become empty is infeasible (nothing to prove there);
* alpha (relaxation parameters) and beta (multipliers of the split constraints, with the
  split point as a bias: ``beta·s·(z - p)``) are optimised jointly by Adam, warm-started
  from the parent's values; verified subdomains leave the batch as soon as they are an
  eighth of it, and after the regular steps the ones whose own bound lags far behind the
  known one (``initial``) go on alone for up to ``catchup`` more steps;
* the result carries what branching needs next: the optimised alpha and beta, the
  coefficients ``lA`` of the objective with respect to every nonlinear node's output
  (BBPS), and the input coefficients of the lower bound (candidate counterexamples).

Only the output bound is optimised (the reference's ``fix_interm_bounds``); the nodes
named in ``refine`` are re-bounded by plain CROWN (default relaxations, no beta) in each
subdomain before that, from the intervals of the nodes before them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor

from .alpha import Adam, _param_groups, init_alphas, project_
from .crown import (
    backward_lower,
    is_crown_refined,
    node_bounds,
    shaping_elements,
    shaping_mask,
    sparse_rows_apply,
)
from .deadline import Deadline
from .ibp import node_interval
from .network import BoundGraph
from .types import CROWN_MAX_ELEMENTS, Bounds, BoundsError

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
        known: every node's intervals ``[B, *shape]``, already valid in each subdomain (e.g.
            its parent's, refreshed): used as they are with the overrides intersected in,
            and no interval pass runs (``refresh`` is then ignored). Cheaper on graphs whose
            interval pass is costly (attention), looser where a split would have tightened
            later nodes: meant for estimates such as the branching filter's.
        initial: ``[B, S]`` known sound lower bounds (e.g. the parent's) to start from.
        refine: nodes whose intervals the interval pass also tightens with their CROWN
            bounds in each subdomain (beta-free; ignored with ``known`` or without
            ``refresh``).
        refine_rows: CROWN rows per refined node and subdomain: its ``refine_rows`` widest
            elements (among those whose interval still shapes a relaxation, on ReLU-like
            graphs); 0: every element that shapes one.
        catchup: up to this many more Adam steps, after ``iterations``, for the subdomains
            whose own bound is still below ``initial`` (every other one stops there). A
            child warm-started from its parent's last parameters can start far below the
            bound its parent reached; without these steps it keeps the parent's bound, is
            split again from the same parameters, and the search stalls (on the zoo's
            mlp_sigmoid, 20,000 domains without progress, against 19 with them).
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
    known: Mapping[str, Bounds] | None = None
    initial: Tensor | None = None
    catchup: int = 0
    refine: frozenset[str] = frozenset()
    refine_rows: int = 0


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
    refine: frozenset[str] = frozenset(),
    refine_rows: int = 0,
) -> tuple[dict[str, Bounds], Tensor]:
    """Intervals of every node: an interval pass intersected with base and overrides, and
    for the nodes ``refine``, with their CROWN bounds in each subdomain (computed from the
    intervals of the nodes before them, so a split tightens them through every
    relaxation it makes exact, not only through the interval pass).

    Returns the intervals and an ``[B]`` mask of infeasible subdomains (some interval
    empty beyond rounding). Empty intervals are widened back to a point so that the
    relaxations stay well defined; those subdomains are discarded by the caller.
    """
    B = box.lower.shape[0]
    cur: dict[str, Bounds] = {bg.input_name: box}
    empty = torch.zeros(B, dtype=torch.bool, device=box.lower.device)
    sparse = bool(refine) and sparse_rows_apply(bg, CROWN_MAX_ELEMENTS)
    for name in bg.order:
        b = node_interval(bg, bg.infos[name], cur)
        if name in base:
            b = b.intersect(_expand(base[name], B))
        b, gone = _narrowed(b, overrides.get(name))
        if name in refine and is_crown_refined(bg, name, CROWN_MAX_ELEMENTS):
            cur[name] = b
            if refine_rows:
                refined = _widest_rows_bounds(bg, name, cur, refine_rows, sparse)
            else:
                rows = shaping_elements(bg, name, b) if sparse else None
                refined = None
                if rows is None or rows.numel():
                    refined = node_bounds(bg, name, cur, rows=rows, chunk_elements=_REFINE_CHUNK)
            if refined is not None:
                b, gone2 = _narrowed(b, refined)
                gone |= gone2
        empty |= gone
        cur[name] = b
    return cur, empty


def _widest_rows_bounds(
    bg: BoundGraph, name: str, cur: Mapping[str, Bounds], k: int, sparse: bool
) -> Bounds | None:
    """CROWN bounds of each subdomain's ``k`` widest elements of ``name`` (only those whose
    interval still shapes a relaxation, on ``sparse`` graphs); infinite elsewhere."""
    b = cur[name]
    B = b.lower.shape[0]
    lo, up = b.lower.flatten(1), b.upper.flatten(1)
    n = lo.shape[1]
    score = up - lo
    keep = shaping_mask(bg, name, b) if sparse else None
    if keep is not None:
        if not bool(keep.any()):
            return None
        score = torch.where(keep, score, torch.full_like(score, -1.0))
    k = min(k, n)
    idx = score.topk(k, dim=1).indices  # [B, k]
    eye = lo.new_zeros(k, B, n)
    eye.scatter_(2, idx.T.unsqueeze(2), 1.0)
    shape = bg.shape(name)
    A0 = torch.cat([eye, -eye]).reshape((2 * k, B) + shape)
    lb = backward_lower(bg, name, A0, cur).lower  # [2k, B]
    lower = torch.full_like(lo, -math.inf).scatter(1, idx, lb[:k].T)
    upper = torch.full_like(up, math.inf).scatter(1, idx, -lb[k:].T)
    return Bounds(lower.reshape(b.lower.shape), upper.reshape(b.upper.shape))


#: Elements of the largest coefficient tensor per CROWN chunk when refining subdomains'
#: intermediate nodes (the batch of domains makes the default chunk a handful of rows).
_REFINE_CHUNK = 1 << 24


def _narrowed(b: Bounds, other: Bounds | None) -> tuple[Bounds, Tensor]:
    """``b`` intersected with ``other`` (when given) and an ``[B]`` mask of the rows where
    it became empty beyond rounding; empty intervals are widened back to a point."""
    if other is not None:
        b = b.intersect(other)
    gap = b.lower - b.upper
    empty = torch.zeros(b.lower.shape[0], dtype=torch.bool, device=b.lower.device)
    if bool((gap > 0).any()):
        tol = _empty_tol(b.lower.dtype) * (1.0 + b.lower.abs() + b.upper.abs())
        empty = (gap > tol).flatten(1).any(1)
        b = Bounds(torch.minimum(b.lower, b.upper), b.upper)
    return b, empty


@dataclass(frozen=True)
class SplitConstraint:
    """The split constraints of one node: ``z >= lower`` where ``raised``, ``z <= upper``
    where ``lowered`` (``[B, *shape]`` each; the points are 0 where inactive)."""

    raised: Tensor
    lower: Tensor
    lowered: Tensor
    upper: Tensor


#: An end that the interval pass narrowed by less than this many machine epsilons of its
#: magnitude gets no split constraint (see :func:`split_constraints`).
ROUNDING_EPS = 1024


def split_constraints(
    base: Mapping[str, Bounds],
    intervals: Mapping[str, Bounds],
    names: list[str],
    splits: Mapping[str, Bounds] | None = None,
) -> dict[str, SplitConstraint]:
    """Constraints of split nodes ``names``: ``z >= l`` where the domain's lower end
    ``l`` is above the root's, ``z <= u`` where its upper end is below.

    ``intervals`` holds the ends (the domain's refreshed intervals); ``splits`` (the
    domains' split-node records, e.g. the request's overrides) marks ends that a split
    narrowed, which always get their constraint. An end that only the interval pass
    narrowed gets one when it is tighter than the root's by more than
    :data:`ROUNDING_EPS` epsilons of the dtype: such free constraints help in float64
    (mnist_fc 256x4 prop_11: 9,035 domains with them, 11,379 without), but in float32
    the interval pass beats the outward-rounded root intervals by an ulp on many unsplit
    neurons, and the betas of those constraints, each moved a full Adam step whatever
    its gradient, kept children below their parent's bound (the zoo mlp_sigmoid case
    stalled past depth 100 where float64 needs 41 domains; float32 now needs 21)."""
    out: dict[str, SplitConstraint] = {}
    for name in names:
        root, cur = base[name], intervals[name]
        eps = torch.finfo(root.lower.dtype).eps
        tol = ROUNDING_EPS * eps * torch.maximum(root.lower.abs(), root.upper.abs())
        raised = cur.lower > root.lower + tol
        lowered = cur.upper < root.upper - tol
        if splits is not None:
            raised |= splits[name].lower > root.lower
            lowered |= splits[name].upper < root.upper
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
    intervals, infeasible, alphas, betas, constraints = _prepare(bg, req)
    out_shape = bg.shape(bg.output_name)
    A0 = req.C.to(req.lower).transpose(0, 1).reshape((S, B) + out_shape)
    thr = req.thresholds.T.to(req.lower)

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
    st = _State(alphas, betas, intervals, constraints, A0, thr, best, infeasible)
    # Catching up repeats the checkpoint pass of the laggards (with gradients): one more.
    total = req.iterations + (req.catchup + 1 if req.initial is not None and req.catchup else 0)
    lA: dict[str, Tensor] = {}
    input_A = None
    steps = 0
    for it in range(total + 1):
        # The pass after the regular steps needs no gradient: the subdomains that lag behind
        # their known bound then go on alone (the next pass repeats theirs, with gradients).
        checkpoint = it == req.iterations
        last = it == total or opt is None
        with torch.set_grad_enabled(not (last or checkpoint)):
            terms = split_terms(st.constraints, st.betas) if st.betas else None
            res = backward_lower(
                bg,
                bg.output_name,
                st.A0,
                st.bounds,
                alphas=st.alphas,
                split_terms=terms,
                record=req.record,
                return_input_A=req.input_A,
            )
        lb = res.lower
        with torch.no_grad():
            done, finished = st.update(lb.detach(), catching_up=it >= req.iterations)
            lA = {k: v.detach() for k, v in (res.node_A or {}).items()}
            input_A = None if res.input_A is None else res.input_A.detach()
            full.save_verified(done, st.alphas, st.betas, lA, input_A)
        if last or bool(finished.all()):
            break
        if req.deadline is not None and req.deadline.expired():
            break
        assert opt is not None
        n_fin, n = int(finished.sum()), finished.numel()
        compact = n_fin > 0 and (it >= req.iterations or 0 < _COMPACT_FRACTION * n_fin >= n)
        leave = torch.nonzero(finished & ~done).flatten()
        if compact and leave.numel():  # open subdomains leaving now keep this pass's outputs
            full.save(leave, st.alphas, st.betas, lA, input_A, n)
        if not checkpoint:
            active = (~finished).unsqueeze(0) & (st.best <= st.thr)
            loss = -(lb * active).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups():
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.nan_to_num_(0.0, 0.0, 0.0)
            opt.step()
            steps += 1
            with torch.no_grad():
                project_(bg, st.alphas)
                for t in st.betas.values():
                    t.clamp_(min=0.0)
        if compact:  # they leave the batch: the remaining steps cost what they bound
            keep = torch.nonzero(~finished).flatten()
            full.keep(keep, st.best)
            st.keep(keep, opt)
    lower = full.lower(st.best)
    lower[infeasible] = math.inf
    return BoundResult(
        lower=lower,
        infeasible=infeasible,
        intervals=intervals,
        alphas={k: full.final(f"alpha/{k}", v.detach(), 2) for k, v in st.alphas.items()},
        betas={k: full.final(f"beta/{k}", v.detach(), 2) for k, v in st.betas.items()},
        lA={k: full.final(f"lA/{k}", v, 1) for k, v in lA.items()},
        input_A=None if input_A is None else full.final("input_A", input_A, 1),
        iterations=steps,
    )


def _prepare(
    bg: BoundGraph, req: BoundRequest
) -> tuple[
    dict[str, Bounds], Tensor, dict[str, Tensor], dict[str, Tensor], dict[str, SplitConstraint]
]:
    """Intervals, infeasible mask, starting alphas and betas, split constraints."""
    B, S = req.C.shape[0], req.C.shape[1]
    box = Bounds(req.lower, req.upper)
    with torch.no_grad():
        if req.known is not None:
            intervals = {k: _expand(v, B) for k, v in req.known.items()}
            intervals[bg.input_name] = box
            infeasible = torch.zeros(B, dtype=torch.bool, device=req.lower.device)
            for name, b in req.overrides.items():
                if name in intervals:
                    b, empty = _narrowed(intervals[name], b)
                    infeasible |= empty
                intervals[name] = b
        elif req.refresh:
            intervals, infeasible = refreshed_intervals(
                bg, box, req.base, req.overrides, req.refine, req.refine_rows
            )
        else:
            intervals = {k: _expand(v, B) for k, v in req.base.items()}
            intervals.update(req.overrides)
            intervals[bg.input_name] = box
            infeasible = torch.zeros(B, dtype=torch.bool, device=req.lower.device)
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
    constraints = split_constraints(base, intervals, split_nodes, req.overrides)
    return intervals, infeasible, alphas, betas, constraints


class _State:
    """The subdomains still optimised by :func:`bound_subdomains` (all of them at first)."""

    def __init__(
        self,
        alphas: dict[str, Tensor],
        betas: dict[str, Tensor],
        bounds: dict[str, Bounds],
        constraints: dict[str, SplitConstraint],
        A0: Tensor,
        thr: Tensor,
        best: Tensor,
        infeasible: Tensor,
    ) -> None:
        self.alphas, self.betas, self.bounds, self.constraints = alphas, betas, bounds, constraints
        self.A0, self.thr, self.best, self.infeasible = A0, thr, best, infeasible
        self.floor = best.clone()  # the known bound (``initial``)
        self.own = torch.full_like(best, -math.inf)  # the bound of their own parameters

    def update(self, lb: Tensor, catching_up: bool) -> tuple[Tensor, Tensor]:
        """Record a pass; ``(done, finished)`` masks: verified, and verified or (when
        ``catching_up``) with their own bound back at the known one."""
        self.best = torch.maximum(self.best, lb)
        self.own = torch.maximum(self.own, lb)
        done = (self.best > self.thr).any(0) | self.infeasible
        if not catching_up:
            return done, done
        # Lagging: the own margin (best row) is below the known one by more than
        # ``_LAG_TOLERANCE`` times the known one's distance to the threshold.
        own = (self.own - self.thr).max(0).values
        known = (self.floor - self.thr).max(0).values
        return done, done | ~(own < known - _LAG_TOLERANCE * known.abs())

    def keep(self, keep: Tensor, opt: Adam) -> None:
        """Keep subdomains ``keep`` only (parameters, Adam moments and all)."""
        n = self.infeasible.numel()
        old = [*self.alphas.values(), *self.betas.values()]
        self.alphas = {k: _select_param(v, keep, n) for k, v in self.alphas.items()}
        self.betas = {k: _select_param(v, keep, n) for k, v in self.betas.items()}
        fresh = [*self.alphas.values(), *self.betas.values()]
        opt.select({id(t): f for t, f in zip(old, fresh)}, partial(_rows, keep=keep, n=n))
        self.bounds = {k: _select_bounds(v, keep) for k, v in self.bounds.items()}
        self.constraints = {
            k: SplitConstraint(*(t.index_select(0, keep) for t in dataclasses.astuple(c)))
            for k, c in self.constraints.items()
        }
        self.A0, self.thr = self.A0.index_select(1, keep), self.thr.index_select(1, keep)
        self.best, self.own, self.floor = self.best[:, keep], self.own[:, keep], self.floor[:, keep]
        self.infeasible = self.infeasible.index_select(0, keep)


# Drop verified subdomains from the optimisation once they are at least this fraction
# (1/8) of the batch: a smaller batch saves less than the copies cost. 0: never.
_COMPACT_FRACTION = 8
# A subdomain lags when its own margin is below the known one by more than this fraction
# of the known margin. Children somewhat below their parent are common and catching them
# all up costs more than it gains (zoo mlp_sigmoid bench: 988 domains/s at 0.1, 1032 at
# 0.5, 1617 without catching up); the ones that stall a search are far below (0.1, 0.25
# and 0.5 all prove the stalled property).
_LAG_TOLERANCE = 0.5


class _Full:
    """Which of the request's ``B`` subdomains are still optimised, their best bounds, and
    the outputs of the open ones that left early (zeros for the verified ones)."""

    def __init__(self, B: int, best: Tensor) -> None:
        self.B = B
        self.rows = torch.arange(B, device=best.device)
        self.best = best.clone()
        self.out: dict[str, Tensor] = {}
        self.saved = torch.zeros(B, dtype=torch.bool, device=best.device)

    def keep(self, keep: Tensor, best: Tensor) -> None:
        """Record the current rows' ``best`` bounds, then keep rows ``keep`` only."""
        self.best[:, self.rows] = best
        self.rows = self.rows[keep]

    def lower(self, best: Tensor) -> Tensor:
        """``[B, S]`` best bounds, the current rows' being ``best``."""
        self.best[:, self.rows] = best
        return self.best.T.contiguous()

    def _put(self, key: str, sel: Tensor, dim: int, local: Tensor) -> None:
        """``sel``, rows ``local`` (current numbering) along ``dim``, into ``out[key]``."""
        buf = self.out.get(key)
        if buf is None:
            shape = list(sel.shape)
            shape[dim] = self.B
            buf = self.out[key] = sel.new_zeros(shape)
        buf.index_copy_(dim, self.rows[local], sel)

    def save(
        self,
        local: Tensor,
        alphas: Mapping[str, Tensor],
        betas: Mapping[str, Tensor],
        lA: Mapping[str, Tensor],
        input_A: Tensor | None,
        n: int,
    ) -> None:
        """Keep the outputs of subdomains ``local`` (current numbering) as they are now:
        they are about to leave the batch, or were just verified."""
        self.saved[self.rows[local]] = True
        with torch.no_grad():
            for prefix, params in (("alpha/", alphas), ("beta/", betas)):
                for k, v in params.items():
                    self._put(prefix + k, _rows(v.detach(), local, n), 2, local)
            for k, v in lA.items():
                self._put(f"lA/{k}", v.index_select(1, local), 1, local)
            if input_A is not None:
                self._put("input_A", input_A.index_select(1, local), 1, local)

    def save_verified(
        self,
        done: Tensor,
        alphas: Mapping[str, Tensor],
        betas: Mapping[str, Tensor],
        lA: Mapping[str, Tensor],
        input_A: Tensor | None,
    ) -> None:
        """Save the outputs of the subdomains verified by this pass (``done``, current
        numbering): a verified subdomain returns the parameters of the pass that verified
        it (Adam's momentum would move them on), so that they reproduce its bound."""
        newly = torch.nonzero(done & ~self.saved[self.rows]).flatten()
        if newly.numel():
            self.save(newly, alphas, betas, lA, input_A, done.numel())

    def final(self, key: str, t: Tensor, dim: int) -> Tensor:
        """``t`` (current rows) completed to full size with the saved and dropped rows (a
        saved row keeps its saved outputs)."""
        fresh = ~self.saved[self.rows]
        if self.rows.numel() == self.B and bool(fresh.all()):  # nothing saved
            return t
        local = torch.nonzero(fresh).flatten()
        if t.shape[dim] != self.rows.numel():  # shared by every row
            t = t.expand(*t.shape[:dim], self.rows.numel(), *t.shape[dim + 1 :])
        self._put(key, t.index_select(dim, local), dim, local)
        return self.out[key]


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
