"""Branch-and-bound over general nonlinearities (GenBaB, REFERENCE §1.a) and over inputs.

One case of a spec at a time: rows ``C`` (``[S, n_out]``) with thresholds; a domain is
verified when some row's sound lower bound exceeds its threshold, and the case holds
when every domain is verified (or infeasible). Each round:

1. pop a batch of domains (LIFO by default) with their pending branching decision;
2. make two children per domain (activation split: the chosen neuron's interval is cut at
   its split point; input split: the chosen input dimension is halved);
3. bound all children in one batched call (alpha and beta warm-started from the parent;
   input boxes: CROWN with fresh intermediate bounds);
4. propose counterexamples (the minimising corners of each leaf's linear bound, and PGD
   from the most promising leaves every few rounds) to the caller's ``falsify``;
5. drop verified children, choose the next split of each survivor (BBPS by default) and
   push them back.

The search stops with a :class:`StopReason`: proved, counterexample, timeout, memory, no
candidate left, or a configured cap on domains or depth.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

import lut
from bounds import compute_bounds
from bounds.crown import crown_bounds, sparse_rows_apply
from bounds.deadline import Deadline
from bounds.network import BoundGraph
from bounds.subdomains import BoundRequest, BoundResult, bound_subdomains
from bounds.types import CROWN_MAX_ELEMENTS, Bounds

from . import attack
from .config import BabConfig, BabResult, BabStats, StopReason
from .domains import DomainBatch, DomainMemoryError, DomainStore, size
from .heuristics import HEURISTICS, INPUT_HEURISTICS, HeuristicInput, shortcuts
from .splits import candidate_mask, find_split_nodes, split_points

log = logging.getLogger(__name__)

__all__ = ["BabProblem", "BabSearch", "Falsifier", "intermediate_mode", "outward", "run_bab"]

#: ``falsify(points [K, *input_shape]) -> counterexample or None`` (the caller confirms).
Falsifier = Callable[[Tensor], Any]
Progress = Callable[[BabStats], None]


@dataclass(frozen=True)
class BabProblem:
    """One case to prove.

    Attributes:
        lower, upper: the input box ``[1, *input_shape]``.
        C: ``[S, n_out]`` rows; the case is violated where ``C·y <= d`` in every row.
        d: ``[S]`` the case's thresholds.
        thresholds: ``[S]`` what a lower bound must exceed to refute a row (``d`` plus any
            safety margin for float rounding).
        root: intermediate intervals valid on the box (batch 1), e.g. alpha-CROWN's; None
            computes CROWN's.
    """

    lower: Tensor
    upper: Tensor
    C: Tensor
    d: Tensor
    thresholds: Tensor
    root: Mapping[str, Bounds] | None = None


def outward(b: Bounds, dtype: torch.dtype) -> Bounds:
    """``b`` in ``dtype``, each end moved outward where the cast rounded it inward (the
    result contains ``b``)."""
    if b.lower.dtype == dtype:
        return b
    lo, hi = b.lower.to(dtype), b.upper.to(dtype)
    lo = torch.where(
        lo.to(b.lower) > b.lower, torch.nextafter(lo, torch.full_like(lo, -math.inf)), lo
    )
    hi = torch.where(
        hi.to(b.upper) < b.upper, torch.nextafter(hi, torch.full_like(hi, math.inf)), hi
    )
    return Bounds(lo, hi)


def choose_split_mode(
    bg: BoundGraph, config: BabConfig, lower: Any = None, upper: Any = None
) -> str:
    """ "input" under ``split="auto"`` when at most ``input_split_max_dims`` input values are
    free (``lower < upper`` in the box, when given; else the input's size), else
    "activation"; the configured mode otherwise.

    Counting free values, not the input's size, sends specs that perturb a few inputs of a
    large one (dist_shift: 8 of 792) to input splitting, which suits them."""
    if config.split != "auto":
        return config.split
    if lower is None or upper is None:
        free = math.prod(bg.input_shape)
    else:
        both = (upper, lower)
        if not all(isinstance(t, Tensor) for t in both):  # numpy boxes (the spec's)
            both = tuple(torch.from_numpy(np.array(t, dtype=np.float64)) for t in both)
        free = int((both[0] > both[1]).sum())
    return "input" if free <= config.input_split_max_dims else "activation"


def intermediate_mode(bg: BoundGraph, config: BabConfig) -> str:
    """ "crown" under ``intermediate="auto"`` on graphs whose every bounded node feeds
    piecewise-linear consumers alone (ReLU networks: CROWN rows only for unstable
    neurons, and a split makes a relaxation exact), else "interval"; the configured mode
    otherwise."""
    if config.intermediate != "auto":
        return config.intermediate
    return "crown" if sparse_rows_apply(bg, CROWN_MAX_ELEMENTS) else "interval"


def run_bab(
    bg: BoundGraph,
    problem: BabProblem,
    config: BabConfig | None = None,
    deadline: Deadline | None = None,
    *,
    falsify: Falsifier | None = None,
    progress: Progress | None = None,
    store: lut.TableStore | None = None,
) -> BabResult:
    """Search until the case is proved, refuted, or a limit is hit (see the module doc).

    Args:
        bg: the prepared graph.
        problem: the case.
        config: search settings (defaults when None).
        deadline: the time budget (none when None).
        falsify: receives candidate points, returns a confirmed counterexample or None.
        progress: called with the statistics after every round.
        store: branching-point tables (:func:`branching.branch_points.engine_store` when
            None).
    """
    search = BabSearch(bg, problem, config, falsify=falsify, progress=progress, store=store)
    return search.run(deadline)


class BabSearch:
    """One case's search, resumable: :meth:`run` searches until a stop and may be called
    again after a ``timeout`` to go on from the open domains with a new deadline.

    A caller with several cases gives each a share of the time and later hands what the
    quick ones left to those that ran out (a case that timed out keeps its domains), so no
    time is lost to a case that was proved early. Any other stop is final: further calls
    return it again.
    """

    def __init__(
        self,
        bg: BoundGraph,
        problem: BabProblem,
        config: BabConfig | None = None,
        *,
        falsify: Falsifier | None = None,
        progress: Progress | None = None,
        store: lut.TableStore | None = None,
    ) -> None:
        config = config or BabConfig()
        mode = choose_split_mode(bg, config, problem.lower, problem.upper)
        self._search = _Search(bg, problem, config, falsify, progress, mode, store)
        self._final: BabResult | None = None
        self._started = False

    @property
    def stats(self) -> BabStats:
        """The running statistics (summed over every :meth:`run`)."""
        return self._search.stats

    @property
    def open_bytes(self) -> int:
        """Bytes the open domains hold."""
        return self._search.store.nbytes

    def run(self, deadline: Deadline | None = None) -> BabResult:
        """Search until a stop; ``timeout`` leaves the search resumable."""
        if self._final is not None:
            return self._final
        s = self._search
        s.begin(deadline or Deadline.never())
        input_mode = s.stats.split == "input"
        try:
            with torch.no_grad() if input_mode else contextlib.nullcontext():
                out = None
                if not self._started:
                    self._started = True
                    out = s.input_start() if input_mode else s.activation_start()
                if out is None:
                    out = s.input_loop() if input_mode else s.activation_loop()
        except DomainMemoryError as exc:
            out = s.finish(StopReason.MEMORY, str(exc))
        s.pause()
        if out.reason is not StopReason.TIMEOUT:
            self._final = out
        return out


class _Search:
    """State of one search (the loops of both split modes share it)."""

    def __init__(
        self,
        bg: BoundGraph,
        problem: BabProblem,
        config: BabConfig,
        falsify: Falsifier | None,
        progress: Progress | None,
        mode: str,
        store: lut.TableStore | None,
    ) -> None:
        self.bg, self.p, self.cfg = bg, problem, config
        self.deadline = Deadline.never()
        self.falsify, self.progress = falsify, progress
        self.table_store = store
        self.stats = BabStats(split=mode)
        self.active_s = 0.0  # time spent in earlier runs
        self.start = time.monotonic()
        self.store = DomainStore(config.order, int(config.max_memory_mb * 2**20))
        self.C = problem.C.to(problem.lower)
        self.d = problem.d.to(problem.lower)
        self.thr = problem.thresholds.to(problem.lower)
        self.cex: Any = None
        # Activation splitting bounds in ``work`` (float32 when the problem is float64 and
        # ``float32_search`` is on); a child verified there is verified again in the
        # problem's dtype before it is dropped (``exact``).
        self.work = problem.lower.dtype
        self.exact = False
        self.intermediate = "interval"  # resolved from the config when activation starts

    def begin(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.start = time.monotonic()

    def pause(self) -> None:
        self.active_s += time.monotonic() - self.start
        self.start = time.monotonic()

    def _elapsed(self) -> float:
        return self.active_s + time.monotonic() - self.start

    # ------------------------------------------------------------------ shared
    def finish(self, reason: StopReason, detail: str = "") -> BabResult:
        self.stats.elapsed_s = self._elapsed()
        self.stats.domains_left = len(self.store)
        self.stats.verified_share = self._verified_share(reason)
        if self.progress is not None:
            self.progress(self.stats)
        return BabResult(reason, self.cex, self.stats, detail)

    def _verified_share(self, reason: StopReason | None = None) -> float:
        if reason is StopReason.PROVED:
            return 1.0
        if reason is StopReason.COUNTEREXAMPLE:
            return self.stats.verified_share
        return max(0.0, 1.0 - self.store.open_mass())

    def _limit_reached(self) -> BabResult | None:
        """The stop for the time budget or the domain cap, when one is reached."""
        if self.deadline.expired():
            return self.finish(StopReason.TIMEOUT, "time budget spent")
        cap = self.cfg.max_domains
        if cap and self.stats.domains_bounded >= cap:
            return self.finish(StopReason.MAX_DOMAINS, f"{cap} domains bounded")
        return None

    def _margins(self, lower: Tensor) -> Tensor:
        """``[N]`` best row margin ``max_s(lb - thr)`` (positive: verified)."""
        return (lower - self.thr.to(lower)).max(-1).values

    def _report(self) -> None:
        s = self.stats
        s.rounds += 1
        s.elapsed_s = self._elapsed()
        s.domains_left = len(self.store)
        s.peak_domains = max(s.peak_domains, s.domains_left)
        s.worst_margin = self.store.worst() if len(self.store) else s.worst_margin
        s.verified_share = self._verified_share()
        if self.progress is not None:
            self.progress(s)

    def _try(self, points: Tensor) -> bool:
        """Hand candidate points to ``falsify``; True when it confirmed one."""
        if self.falsify is None or points.numel() == 0:
            return False
        self.stats.candidates_checked += int(points.shape[0])
        found = self.falsify(points.detach())
        if found is not None:
            self.cex = found
            return True
        return False

    def _candidates(self, A: Tensor | None, lo: Tensor, hi: Tensor, margins: Tensor) -> bool:
        """Minimising corners of the most promising leaves, then (every few rounds) PGD."""
        if A is None or self.falsify is None or margins.numel() == 0:
            return False
        k = min(self.cfg.attack_leaves, margins.numel())
        order = torch.argsort(margins)[:k]
        if lo.shape[0] > 1:  # one box per leaf (input splitting)
            lo, hi = lo[order], hi[order]
        pts = attack.minimising_corners(A[:, order], lo, hi)
        pts = pts.reshape((-1,) + tuple(lo.shape[1:]))
        if self._try(pts):
            return True
        every = self.cfg.attack_every
        rounds_ok = every and self.cfg.attack_steps and self.stats.rounds % every == 0
        if rounds_ok and self.deadline.remaining() > 1.0:
            blo, bhi = lo, hi
            if lo.shape[0] > 1:  # points are ordered (row, leaf): repeat the boxes per row
                reps = (A.shape[0],) + (1,) * (lo.dim() - 1)
                blo, bhi = lo.repeat(reps), hi.repeat(reps)
            with torch.enable_grad():
                adv = attack.pgd(
                    self.bg.source, pts, blo, bhi, self.C, self.d, self.cfg.attack_steps
                )
            return self._try(adv)
        return False

    # -------------------------------------------------------------- activation
    def activation_setup(self) -> bool:
        """The split nodes, the root intervals in the work dtype and what the rounds need;
        False when the model has no splittable neuron."""
        bg, p, cfg = self.bg, self.p, self.cfg
        nodes = find_split_nodes(bg)
        if not nodes:
            return False
        self.nodes = nodes
        self.node_ids = {n.name: i for i, n in enumerate(nodes)}
        pos = {name: i for i, name in enumerate(bg.order)}
        # Per split node: the nodes needing bounds after it (what a split there can change).
        self.later = [
            frozenset(m for m in bg.needs_bounds if m in pos and pos[m] > pos[n.name])
            for n in nodes
        ]
        self.record = frozenset(c.name for n in nodes for c in n.consumers)
        self.intermediate = intermediate_mode(bg, cfg)
        box = Bounds(p.lower, p.upper)
        with torch.no_grad():
            root = dict(p.root) if p.root is not None else crown_bounds(bg, box)
        self.root = root
        if cfg.float32_search and p.lower.dtype == torch.float64:
            self.work, self.exact = torch.float32, True
        self.box_w = outward(box, self.work)
        self.root_w = {k: outward(v, self.work) for k, v in root.items()}
        self.C_w, self.thr_w = self.C.to(self.work), self.thr.to(self.work)
        self.shortcuts = {}
        return True

    def setup_shortcuts(self) -> None:
        """BBPS's root linear bounds of the split nodes (only BBPS uses them)."""
        if self.cfg.heuristic == "bbps":
            budget = int(self.cfg.shortcut_memory_mb * 2**20)
            with torch.no_grad():
                self.shortcuts = shortcuts(self.bg, self.nodes, self.root_w, budget)

    def activation_start(self) -> BabResult | None:
        """Bound the root and choose its split; a stop when that already settles it."""
        p, cfg = self.p, self.cfg
        if not self.activation_setup():
            return self.finish(StopReason.NO_CANDIDATE, "the model has no splittable neuron")
        nodes = self.nodes
        lo_w, hi_w = self.box_w.lower, self.box_w.upper
        res = self._bound(lo_w, hi_w, {}, None, None, None, cfg.root_iterations)
        self.stats.domains_bounded += 1
        margins = self._margins(res.lower)
        over = {n.name: self.root_w[n.name] for n in nodes}
        if bool(margins[0] > 0) or bool(res.infeasible[0]):
            if bool(self._verified_exactly(over, res, torch.zeros(1, dtype=torch.long)).all()):
                return self.finish(StopReason.PROVED, "the root bound refutes the case")
            margins = self._margins(res.lower)
        if self._candidates(res.input_A, p.lower, p.upper, margins):
            return self.finish(StopReason.COUNTEREXAMPLE)
        self.setup_shortcuts()
        batch = self._domains(res, over, torch.zeros(1, dtype=torch.long, device=p.lower.device))
        stop = self._decide(batch, res)
        if stop is not None:
            return stop
        self.store.push(batch)
        return None

    def activation_loop(self) -> BabResult:
        p, cfg = self.p, self.cfg
        while len(self.store):
            limit = self._limit_reached()
            if limit is not None:
                return limit
            parents = self.store.pop(cfg.batch_size)
            kids = self._children(parents)
            res = self._bound_kids(kids, cfg.iterations)
            self.stats.domains_bounded += size(kids)
            margins = self._margins(res.lower)
            done = (margins > 0) | res.infeasible
            if self.exact and bool(done.any()):
                idx = torch.nonzero(done).flatten()
                done[idx] = self._verified_exactly(
                    self._overrides(kids), res, idx, kids.get("case")
                )
                margins = self._margins(res.lower)
            open_ = ~done
            if bool(open_.any()):
                A = None if res.input_A is None else res.input_A[:, open_]
                if self._candidates(A, p.lower, p.upper, margins[open_]):
                    return self.finish(StopReason.COUNTEREXAMPLE)
            idx = torch.nonzero(open_).flatten()
            if idx.numel():
                over = self._kept_intervals(kids, res)
                batch = self._domains(res, over, kids["depth"], idx)
                stop = self._decide(batch, res, idx)
                if stop is not None:
                    return stop
                self.store.push(batch)
            self._report()
        return self.finish(StopReason.PROVED, "every domain verified")

    def _overrides(self, kids: DomainBatch) -> dict[str, Bounds]:
        """The split nodes' intervals of domain records: the root's, cut at the split points
        (the interval pass of each bound call tightens them further)."""
        return {n.name: Bounds(kids[f"lo/{n.name}"], kids[f"up/{n.name}"]) for n in self.nodes}

    def _kept_intervals(self, kids: DomainBatch, res: BoundResult) -> dict[str, Bounds]:
        """The split nodes' intervals the children's records keep: CROWN's re-bounded ones
        (without the exact recheck), else the records' own."""
        over = self._overrides(kids)
        if self.intermediate == "crown" and not self.exact:
            over = {k: res.intervals[k] for k in over}
        return over

    def _rows(self, n: int, case: Tensor | None, exact: bool = False) -> tuple[Tensor, Tensor]:
        """``C`` ``[n, S, n_out]`` and thresholds ``[n, S]`` of ``n`` domains (of cases
        ``case``: one case here, see :class:`branching.multi.RowSearch`), in the problem's
        dtype when ``exact``, else in the work dtype."""
        C, thr = (self.C, self.thr) if exact else (self.C_w, self.thr_w)
        return C.unsqueeze(0).expand(n, *C.shape), thr.unsqueeze(0).expand(n, -1)

    def _bound_kids(
        self, kids: DomainBatch, iterations: int, known: Mapping[str, Bounds] | None = None
    ) -> BoundResult:
        """Bound child domains, alpha and beta warm-started from their parent's (``known``:
        see :class:`bounds.subdomains.BoundRequest`)."""
        over = self._overrides(kids)
        alphas = {k[6:]: v.movedim(0, 2) for k, v in kids.items() if k.startswith("alpha/")}
        betas = {k[5:]: v.movedim(0, 2) for k, v in kids.items() if k.startswith("beta/")}
        n = size(kids)
        lo = self.box_w.lower.expand(n, *self.box_w.lower.shape[1:])
        hi = self.box_w.upper.expand(n, *self.box_w.upper.shape[1:])
        refine: frozenset[str] = frozenset()
        deep = self.cfg.refine_depth and bool((kids["depth"] > self.cfg.refine_depth).all())
        if known is None and self.intermediate == "crown" and not deep:
            refine = self._refined_after(kids["d_node"])
        return self._bound(
            lo, hi, over, alphas, betas, kids["lower"], iterations, known, refine, kids.get("case")
        )

    def _refined_after(self, node_id: Tensor) -> frozenset[str]:
        """The nodes CROWN re-bounds in children split at nodes ``node_id``: every node
        that needs bounds after the earliest of them (the others cannot change)."""
        # The sets are nested (an earlier node's holds a later one's): the largest is theirs.
        return max((self.later[i] for i in torch.unique(node_id).tolist()), key=len)

    def _verified_exactly(
        self, over: Mapping[str, Bounds], res: BoundResult, idx: Tensor, case: Tensor | None = None
    ) -> Tensor:
        """Which of ``res``'s subdomains ``idx`` (verified in the work dtype) are verified by
        one pass in the problem's dtype, from the problem's box and root intervals, their
        split nodes' intervals ``over`` and their optimised alpha and beta (any alpha and
        beta give a sound bound). The others get that pass's bound, below every threshold
        also in the work dtype, and count as open (``res`` is updated in place)."""
        if not self.exact:
            return torch.ones(idx.numel(), dtype=torch.bool, device=idx.device)
        dt, n = self.p.lower.dtype, idx.numel()

        def rows(t: Tensor) -> Tensor:  # [k, S, B, ...] parameters: subdomains idx
            return (t if t.shape[2] == 1 else t.index_select(2, idx)).to(dt)

        # Records wider than the root (float32 rounded outward) are cut back to it by the
        # bound call, which intersects every interval with ``base``.
        overrides = {}
        for name, b in over.items():
            pick = (lambda t: t) if b.lower.shape[0] == 1 else (lambda t: t.index_select(0, idx))
            overrides[name] = Bounds(pick(b.lower).to(dt), pick(b.upper).to(dt))
        C, thr = self._rows(n, None if case is None else case[idx], exact=True)
        req = BoundRequest(
            lower=self.p.lower.expand(n, *self.p.lower.shape[1:]),
            upper=self.p.upper.expand(n, *self.p.upper.shape[1:]),
            C=C,
            thresholds=thr,
            base=self.root,
            overrides=overrides,
            alphas={k: rows(v) for k, v in res.alphas.items()},
            betas={k: rows(v) for k, v in res.betas.items()},
            iterations=0,
        )
        with torch.no_grad():
            exact = bound_subdomains(self.bg, req)
        ok = ((exact.lower - thr).max(-1).values > 0) | exact.infeasible
        bad = idx[~ok]
        if bad.numel():
            self.stats.rechecks_failed += int(bad.numel())
            thr_w = thr[~ok].to(self.work)
            below = torch.nextafter(thr_w, torch.full_like(thr_w, -math.inf))
            low = torch.minimum(exact.lower[~ok].to(self.work), below)
            res.lower[bad] = torch.minimum(res.lower[bad], low)
            res.infeasible[bad] = False
        self.stats.rechecked += n
        return ok

    def _bound(
        self,
        lo: Tensor,
        hi: Tensor,
        overrides: Mapping[str, Bounds],
        alphas: Mapping[str, Tensor] | None,
        betas: Mapping[str, Tensor] | None,
        initial: Tensor | None,
        iterations: int,
        known: Mapping[str, Bounds] | None = None,
        refine: frozenset[str] = frozenset(),
        case: Tensor | None = None,
    ) -> BoundResult:
        C, thr = self._rows(lo.shape[0], case)
        req = BoundRequest(
            lower=lo,
            upper=hi,
            C=C,
            thresholds=thr,
            base=self.root_w,
            overrides=overrides,
            alphas=alphas,
            betas=betas,
            iterations=iterations,
            lr_alpha=self.cfg.lr_alpha,
            lr_beta=self.cfg.lr_beta,
            deadline=self.deadline,
            record=self.record,
            input_A=True,
            initial=initial,
            catchup=self.cfg.catchup_iterations if initial is not None else 0,
            known=known,
            refine=refine,
            refine_rows=self.cfg.refine_rows,
        )
        return bound_subdomains(self.bg, req)

    def _domains(
        self,
        res: BoundResult,
        over: Mapping[str, Bounds],
        depth: Tensor,
        idx: Tensor | None = None,
    ) -> DomainBatch:
        """Domain records of ``res``'s subdomains ``idx`` (all when None); ``over``: the
        split nodes' intervals ``res`` was bounded with (the root's cut at the split points;
        not the refreshed ones, so that a record never holds an interval computed in the
        work dtype: the exact recheck starts from them)."""
        sel = slice(None) if idx is None else idx
        out: DomainBatch = {}
        for n in self.nodes:
            b = over[n.name]
            out[f"lo/{n.name}"] = b.lower[sel].contiguous()
            out[f"up/{n.name}"] = b.upper[sel].contiguous()
        for k, v in res.alphas.items():
            out[f"alpha/{k}"] = v.movedim(2, 0)[sel].float()
        for k, v in res.betas.items():
            out[f"beta/{k}"] = v.movedim(2, 0)[sel].float()
        out["lower"] = res.lower[sel]
        out["margin"] = self._margins(res.lower)[sel]
        out["depth"] = depth[sel]
        return out

    def _decide(
        self, batch: DomainBatch, res: BoundResult, idx: Tensor | None = None
    ) -> BabResult | None:
        """Choose each domain's next split (stored in ``batch``); a stop when none is left."""
        sel = slice(None) if idx is None else idx
        intervals = {k: Bounds(v.lower[sel], v.upper[sel]) for k, v in res.intervals.items()}
        lA = {k: v[:, sel] for k, v in res.lA.items()}
        masks, points = {}, {}
        flat = {k: (v.lower.flatten(1), v.upper.flatten(1)) for k, v in intervals.items()}
        for n in self.nodes:
            b = intervals[n.name]
            masks[n.name] = candidate_mask(self.bg, n, b.lower, b.upper)
            points[n.name] = split_points(
                self.bg, n, b.lower, b.upper, flat, method=self.cfg.points, store=self.table_store
            )
        margins = (batch["lower"] - self.thr_w).T
        inp = HeuristicInput(
            self.bg,
            self.nodes,
            intervals,
            lA,
            margins,
            self.box_w,
            masks,
            points,
            self.shortcuts,
        )
        scores = HEURISTICS[self.cfg.heuristic](inp)
        allsc = torch.cat([scores[n.name] for n in self.nodes], dim=1)
        best, arg = allsc.max(1)
        stuck = best == -math.inf
        if bool(stuck.any()):
            stop = self._stuck(batch, stuck, StopReason.NO_CANDIDATE)
            if stop is not None:
                return stop
        if self.cfg.max_depth:
            deep = batch["depth"] >= self.cfg.max_depth
            if bool(deep.any()):
                stop = self._stuck(batch, deep, StopReason.MAX_DEPTH)
                if stop is not None:
                    return stop
        allpts = torch.cat([points[n.name] for n in self.nodes], dim=1)
        k = min(self.cfg.filter, allsc.shape[1])
        if k > 1:
            top, cand = allsc.topk(k, dim=1)
            mix = self.cfg.filter_mix
            if mix and mix != self.cfg.heuristic:
                half = k // 2
                other = HEURISTICS[mix](inp)
                othsc = torch.cat([other[n.name] for n in self.nodes], dim=1)
                top_b, cand_b = othsc.topk(half, dim=1)
                top = torch.cat([top[:, : k - half], top_b], dim=1)
                cand = torch.cat([cand[:, : k - half], cand_b], dim=1)
            arg = self._filter(batch, cand, top, allpts, intervals)
        self._set_decision(batch, arg, allpts)
        return None

    def _stuck(self, batch: DomainBatch, which: Tensor, reason: StopReason) -> BabResult | None:
        """The stop for domains ``which`` of ``batch`` that cannot be split further (no
        candidate left, or at the depth limit); None goes on (the caller drops their
        cases, see :class:`branching.multi.RowSearch`)."""
        if reason is StopReason.MAX_DEPTH:
            return self.finish(reason, f"depth limit {self.cfg.max_depth} reached")
        return self.finish(reason, "a domain has no neuron left to split")

    def _set_decision(self, batch: DomainBatch, arg: Tensor, allpts: Tensor) -> None:
        """Store the split ``arg`` (flat index over all split nodes) of each domain."""
        offsets = torch.tensor([0] + [n.size for n in self.nodes], device=arg.device).cumsum(0)
        node_id = torch.searchsorted(offsets[1:], arg, right=True)
        batch["d_node"] = node_id
        batch["d_idx"] = arg - offsets[node_id]
        batch["d_point"] = allpts.gather(1, arg.unsqueeze(1)).squeeze(1)

    def _filter(
        self,
        batch: DomainBatch,
        cand: Tensor,
        top: Tensor,
        allpts: Tensor,
        intervals: Mapping[str, Bounds],
    ) -> Tensor:
        """kFSB-like: bound both children of each of the top-k candidates (one pass, parent's
        alpha and beta) and keep the candidate whose worse child has the best margin.

        The trial children start from their parent's ``intervals`` with the split neuron cut
        and skip the interval pass (on attention graphs it cost more than the bound pass):
        a slightly looser estimate, and only a ranking."""
        n, k = cand.shape
        trial = {key: torch.cat([v] * k) for key, v in batch.items()}
        flat = cand.T.reshape(-1)  # candidate-major: trial domain c*n + i
        self._set_decision(trial, flat, torch.cat([allpts] * k))
        depth = self.stats.max_depth
        kids = self._children(trial)
        self.stats.max_depth = depth
        reps = 2 * k  # kid j is trial j mod (k*n), of parent j mod n
        known = {
            name: Bounds(*(t.repeat(reps, *([1] * (t.dim() - 1))) for t in (b.lower, b.upper)))
            for name, b in intervals.items()
            if name != self.bg.input_name
        }
        res = self._bound_kids(kids, iterations=0, known=known)
        self.stats.domains_filtered += size(kids)
        margins = self._margins(res.lower).reshape(2, k, n)
        value = margins.min(0).values  # [k, n]: the worse child
        value = torch.where(torch.isfinite(top.T) | (top.T > 0), value, -math.inf)
        best = value.argmax(0)
        return cand.gather(1, best.unsqueeze(1)).squeeze(1)

    def _children(self, parents: DomainBatch) -> DomainBatch:
        """Two children per parent: left ``z_j <= p`` (first half), right ``z_j >= p``."""
        n = size(parents)
        kids = {k: torch.cat([v, v]) for k, v in parents.items()}
        node_id, neuron, point = kids["d_node"], kids["d_idx"], kids["d_point"]
        left = torch.arange(2 * n, device=node_id.device) < n
        for i, nd in enumerate(self.nodes):
            on = node_id == i
            if not bool(on.any()):
                continue
            rows = torch.nonzero(on).flatten()
            lo = kids[f"lo/{nd.name}"].flatten(1).clone()
            up = kids[f"up/{nd.name}"].flatten(1).clone()
            lrows, rrows = rows[left[rows]], rows[~left[rows]]
            up[lrows, neuron[lrows]] = point[lrows]
            lo[rrows, neuron[rrows]] = point[rrows]
            kids[f"lo/{nd.name}"] = lo.reshape(kids[f"lo/{nd.name}"].shape)
            kids[f"up/{nd.name}"] = up.reshape(kids[f"up/{nd.name}"].shape)
        kids["depth"] = kids["depth"] + 1
        self.stats.max_depth = max(self.stats.max_depth, int(kids["depth"].max()))
        return kids

    # ------------------------------------------------------------------- input
    def input_start(self) -> BabResult | None:
        """Bound the root box; a stop when that already settles it."""
        p = self.p
        lo, hi = p.lower, p.upper
        lower, A = self._bound_boxes(lo, hi)
        self.stats.domains_bounded += 1
        margins = self._margins(lower)
        if bool(margins[0] > 0):
            return self.finish(StopReason.PROVED, "the root bound refutes the case")
        centre = 0.5 * (lo + hi)
        if self._try(centre) or self._candidates(A, lo, hi, margins):
            return self.finish(StopReason.COUNTEREXAMPLE)
        self.store.push(self._boxes(lo, hi, lower, A, torch.zeros(1, dtype=torch.long)))
        return None

    def input_loop(self) -> BabResult:
        cfg = self.cfg
        while len(self.store):
            limit = self._limit_reached()
            if limit is not None:
                return limit
            parents = self.store.pop(cfg.input_batch_size)
            if cfg.max_depth and bool((parents["depth"] >= cfg.max_depth).any()):
                return self.finish(StopReason.MAX_DEPTH, f"depth limit {cfg.max_depth} reached")
            blo, bhi = self._split_boxes(parents)
            lower, A = self._bound_boxes(blo, bhi)
            n = blo.shape[0]
            lower = torch.maximum(lower, torch.cat([parents["lower"], parents["lower"]]))
            self.stats.domains_bounded += n
            depth = torch.cat([parents["depth"], parents["depth"]]) + 1
            self.stats.max_depth = max(self.stats.max_depth, int(depth.max()))
            margins = self._margins(lower)
            open_ = margins <= 0
            if bool(open_.any()):
                idx = torch.nonzero(open_).flatten()
                ctr = 0.5 * (blo[idx] + bhi[idx])
                order = torch.argsort(margins[idx])[: cfg.attack_leaves]
                if self._try(ctr[order]):
                    return self.finish(StopReason.COUNTEREXAMPLE)
                if self._candidates(A[:, idx], blo[idx], bhi[idx], margins[idx]):
                    return self.finish(StopReason.COUNTEREXAMPLE)
                if not bool(((bhi[idx] - blo[idx]) > 0).any()):
                    return self.finish(StopReason.NO_CANDIDATE, "boxes shrank to points")
                self.store.push(self._boxes(blo[idx], bhi[idx], lower[idx], A[:, idx], depth[idx]))
            self._report()
        return self.finish(StopReason.PROVED, "every box verified")

    def _bound_boxes(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """CROWN lower bounds ``[N, S]`` and input coefficients ``[S, N, *in]`` of boxes."""
        n = lo.shape[0]
        C = self.C.unsqueeze(0).expand(n, *self.C.shape)
        res = compute_bounds(
            self.bg,
            lo,
            hi,
            C,
            method="crown",
            bound_upper=False,
            return_A=True,
            deadline=self.deadline,
        )
        assert res.linear is not None
        return res.lower, res.linear.lA

    def _boxes(
        self, lo: Tensor, hi: Tensor, lower: Tensor, A: Tensor, depth: Tensor
    ) -> DomainBatch:
        """Box records with the dimension to split next (the input heuristic's best)."""
        width = (hi - lo).flatten(1)
        score = INPUT_HEURISTICS[self.cfg.input_heuristic](A, lo, hi)
        score = torch.where(width > 0, score, torch.full_like(score, -1.0))
        dim = score.argmax(1)
        # Without any input sensitivity, halve the widest dimension instead.
        flat = score.max(1).values <= 0
        dim = torch.where(flat, width.argmax(1), dim)
        return {
            "blo": lo,
            "bhi": hi,
            "lower": lower,
            "margin": self._margins(lower),
            "depth": depth.to(lo.device),
            "d_dim": dim,
        }

    def _split_boxes(self, parents: DomainBatch) -> tuple[Tensor, Tensor]:
        lo, hi, dim = parents["blo"], parents["bhi"], parents["d_dim"]
        n = lo.shape[0]
        flo, fhi = lo.flatten(1), hi.flatten(1)
        rows = torch.arange(n, device=lo.device)
        mid = 0.5 * (flo[rows, dim] + fhi[rows, dim])
        lhi, rlo = fhi.clone(), flo.clone()
        lhi[rows, dim] = mid
        rlo[rows, dim] = mid
        blo = torch.cat([flo, rlo]).reshape((2 * n,) + tuple(lo.shape[1:]))
        bhi = torch.cat([lhi, fhi]).reshape((2 * n,) + tuple(lo.shape[1:]))
        return blo, bhi
