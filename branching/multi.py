"""Many small cases on one network and box, searched together in one domain store.

:class:`RowSearch` proves ``P`` cases that differ only in their rows ``C_p`` (same
network, box, root intervals and thresholds): the case ``p`` holds when some row of
``C_p·y`` exceeds its threshold everywhere in the box. Each domain record carries its
case's index (``case``) and every bound call gathers each domain's own rows, so one round
bounds the children of many cases in one batched call, where one search per case pays a
round's fixed cost (Python, small tensors, the root's alpha optimisation) for each.

Everything else is the single search's (:class:`branching.bab.BabSearch`, activation
splitting): children, alpha and beta warm starts, BBPS with the filter, the exact
recheck of float32 bounds. Per case it keeps the number of open domains and of domains
bounded: a case is proved when its last open domain is verified, refuted when a
minimising corner of one of its leaves violates it (evaluated on the network), and given
up when it reaches its domain cap, has a domain it cannot split, or the time runs out.
A refuted or given-up case's remaining domains are dropped when popped.

Stabilising intermediate neurons (:mod:`branching.stabilize`) proves each unstable
neuron's sign this way: mnist_fc 256x6 prop_3 has 50-150 candidates per layer, most of
which need 3-60 domains.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bounds.deadline import Deadline
from bounds.network import BoundGraph
from bounds.subdomains import BoundResult
from bounds.types import Bounds
from models.evaluate import evaluate

from . import attack
from .bab import BabProblem, Progress, _Search
from .config import BabConfig, BabResult, StopReason
from .domains import DomainBatch, DomainMemoryError, size, take

__all__ = ["CaseStatus", "RowSearch", "RowSearchResult"]

log = logging.getLogger(__name__)


class CaseStatus(enum.IntEnum):
    """Where one case of a :class:`RowSearch` stands."""

    OPEN = 0
    PROVED = 1
    REFUTED = 2  # a point in the box violates it
    GAVE_UP = 3  # domain cap, no split left, time or memory


@dataclass
class RowSearchResult:
    """``status`` ``[P]`` (:class:`CaseStatus` values), ``bounded`` ``[P]`` domains
    bounded per case, and ``floor`` ``[P]``: for a case that gave up, a sound lower bound
    of ``max_s(C_p·y - d)_s`` over the box (the least margin of its open leaves when it
    stopped; ``-inf`` where none is known, e.g. a float32 search)."""

    status: Tensor
    bounded: Tensor
    floor: Tensor

    def proved(self) -> Tensor:
        """Indices of the proved cases."""
        return torch.nonzero(self.status == CaseStatus.PROVED).flatten()


class RowSearch(_Search):
    """Branch-and-bound over activations for ``P`` cases at once (see the module doc).

    Args:
        bg: the prepared graph.
        lower, upper: the input box ``[1, *input_shape]``.
        C: ``[P, S, n_out]`` each case's rows; case ``p`` is violated where
            ``C_p·y <= d`` in every row.
        d: ``[S]`` thresholds shared by every case (also what a lower bound must exceed).
        root: intermediate intervals valid on the box (batch 1).
        config: search settings; ``max_domains`` caps each case's domains (0: no cap).
        on_proved: called with the indices of newly proved cases after each round; True
            stops the search (the open cases give up).
        probes: ``(domains, share)`` pairs: a case that has bounded at least ``domains``
            domains with less than ``share`` of its tree verified gives up (hopeless cases
            stop early instead of spending the whole cap).
        progress: called with the statistics after every round.
        refute: evaluate the minimising corners of open leaves and refute the cases they
            violate; off when only the floors are wanted (cases known to be violated).
    """

    def __init__(
        self,
        bg: BoundGraph,
        lower: Tensor,
        upper: Tensor,
        C: Tensor,
        d: Tensor,
        root: Mapping[str, Bounds],
        config: BabConfig,
        on_proved: Callable[[list[int]], bool] | None = None,
        probes: Sequence[tuple[int, float]] = (),
        progress: Progress | None = None,
        refute: bool = True,
    ) -> None:
        if C.dim() != 3 or C.shape[0] == 0:
            raise ValueError(
                f"RowSearch needs rows [P, S, n_out] with P >= 1, got {tuple(C.shape)}"
            )
        problem = BabProblem(lower, upper, C[0], d, d, root)
        super().__init__(bg, problem, config, None, progress, "activation", None)
        self.cap = config.max_domains
        self.on_proved = on_proved
        self.probes = tuple(probes)
        self.refute = refute
        self.C_all = C.to(lower)
        self.n_cases = P = C.shape[0]
        self.status = torch.zeros(P, dtype=torch.long)
        self.counts = torch.zeros(P, dtype=torch.long)  # open domains in the store
        self.open_mass = torch.zeros(P, dtype=torch.float64)  # sum 2^-depth of those
        self.bounded = torch.zeros(P, dtype=torch.long)
        # least margin of the open leaves of each case that stopped being open (+inf: none
        # seen yet); every point of the box lies in a verified leaf (margin > 0), an
        # infeasible one, or one of those, so it bounds the case's margin from below
        self.floor = torch.full((P,), float("inf"), dtype=torch.float64)
        self.floor_sound = True
        self.stopped = False
        # The root domains wait here, not in the store: they have no beta yet, so a pop
        # must not mix them with children's records.
        self.roots: DomainBatch = {}

    # ------------------------------------------------------------------ hooks
    def _rows(self, n: int, case: Tensor | None, exact: bool = False) -> tuple[Tensor, Tensor]:
        assert case is not None, "every RowSearch domain carries its case"
        C = self.C_all if exact else self.C_all_w
        thr = self.thr if exact else self.thr_w
        return C[case.to(C.device)], thr.unsqueeze(0).expand(n, -1)

    def _stuck(self, batch: DomainBatch, which: Tensor, reason: StopReason) -> BabResult | None:
        self._give_up(batch["case"][which])
        return None

    # ------------------------------------------------------------------ search
    def run(self, deadline: Deadline | None = None) -> RowSearchResult:
        """Search until every case is settled, ``on_proved`` says stop, or the deadline."""
        self.begin(deadline or Deadline.never())
        try:
            if self._start():
                self._loop()
        except DomainMemoryError as exc:
            log.debug("row search: %s", exc)
            self.floor_sound = False  # the batch that did not fit is lost
        self.pause()
        self.stats.elapsed_s = self._elapsed()
        self.status[self.status == CaseStatus.OPEN] = CaseStatus.GAVE_UP
        for batch in (self.roots, *self.store.chunks()):
            self._sink(batch)
        floor = self.floor.clone()
        unknown = (self.status != CaseStatus.GAVE_UP) | torch.isinf(floor) | (floor > 0)
        if self.exact or not self.floor_sound:
            unknown[:] = True
        floor[unknown] = float("-inf")
        return RowSearchResult(self.status.clone(), self.bounded.clone(), floor)

    def _sink(self, batch: DomainBatch, idx: Tensor | None = None) -> None:
        """Fold the margins of open leaves that leave the search (``batch``'s records, or
        those at ``idx``) into their cases' floors."""
        if size(batch):
            sel = slice(None) if idx is None else idx
            self._sink_margins(batch["case"][sel], batch["margin"][sel])

    def _sink_margins(self, case: Tensor, margin: Tensor) -> None:
        if case.numel():
            m = margin.detach().double().cpu()
            self.floor.scatter_reduce_(0, case.cpu(), m, reduce="amin")

    def _give_up(self, cases: Tensor) -> None:
        cases = cases.cpu()
        open_ = self.status[cases] == CaseStatus.OPEN
        self.status[cases[open_]] = CaseStatus.GAVE_UP

    def _start(self) -> bool:
        """Bound the root of every case; False when nothing is left to search."""
        if not self.activation_setup():
            self.status[:] = CaseStatus.GAVE_UP
            return False
        self.C_all_w = self.C_all.to(self.work)
        P, cfg = self.n_cases, self.cfg
        case = torch.arange(P)
        lo = self.box_w.lower.expand(P, *self.box_w.lower.shape[1:])
        hi = self.box_w.upper.expand(P, *self.box_w.upper.shape[1:])
        res = self._bound(lo, hi, {}, None, None, None, cfg.root_iterations, case=case)
        self.stats.domains_bounded += P
        self.bounded += 1
        over = {}
        for n in self.nodes:
            b = self.root_w[n.name]
            over[n.name] = Bounds(*(t.expand(P, *t.shape[1:]) for t in (b.lower, b.upper)))
        depth = torch.zeros(P, dtype=torch.long, device=lo.device)
        kids: DomainBatch = {"case": case, "depth": depth}
        self.setup_shortcuts()
        self._settle_round(kids, res, over, roots=True)
        return bool(size(self.roots))

    def _loop(self) -> None:
        cfg = self.cfg
        while (size(self.roots) or len(self.store)) and not self.stopped:
            if self.deadline.expired():
                return
            parents = self._next(cfg.batch_size)
            pc = parents["case"]
            self.counts -= torch.bincount(pc.cpu(), minlength=self.n_cases)
            self.open_mass -= self._mass(parents)
            alive = self.status[pc.cpu()] == CaseStatus.OPEN
            if not bool(alive.all()):
                self._sink(parents, torch.nonzero(~alive).flatten().to(pc.device))
                parents = take(parents, torch.nonzero(alive).flatten().to(pc.device))
            if size(parents) == 0:
                self._prove_settled()
                continue
            kids = self._children(parents)
            res = self._bound_kids(kids, cfg.iterations)
            self.stats.domains_bounded += size(kids)
            self.bounded += torch.bincount(kids["case"].cpu(), minlength=self.n_cases)
            self._settle_round(kids, res, self._kept_intervals(kids, res))
            self.stats.rounds += 1
            if self.progress is not None:
                self.stats.elapsed_s = self._elapsed()
                self.progress(self.stats)

    def _next(self, k: int) -> DomainBatch:
        """The next ``k`` domains: the roots first (in case order), then the store's."""
        n = size(self.roots)
        if not n:
            return self.store.pop(k)
        out = take(self.roots, slice(0, min(k, n)))
        self.roots = take(self.roots, slice(min(k, n), n)) if k < n else {}
        return out

    def _settle_round(
        self,
        kids: DomainBatch,
        res: BoundResult,
        over: Mapping[str, Bounds],
        roots: bool = False,
    ) -> None:
        """Drop verified domains, refute cases from their leaves' corners, cap cases,
        choose the survivors' splits and push them; then prove the cases left with no
        open domain."""
        case = kids["case"]
        margins = self._margins(res.lower)
        done = (margins > 0) | res.infeasible
        if self.exact and bool(done.any()):
            idx = torch.nonzero(done).flatten()
            done[idx] = self._verified_exactly(over, res, idx, case)
        open_idx = torch.nonzero(~done).flatten()
        if open_idx.numel():
            if res.input_A is not None and self.refute:
                self._refute(res.input_A[:, open_idx], case[open_idx])
            if self.cap:  # cases at their cap with open domains left give up
                pending = self.counts > 0
                pending[case[open_idx].cpu()] = True
                self._give_up(torch.nonzero((self.bounded >= self.cap) & pending).flatten())
            live = (self.status[case[open_idx].cpu()] == CaseStatus.OPEN).to(open_idx.device)
            gone = open_idx[~live]
            self._sink_margins(case[gone], margins[gone])
            keep = open_idx[live]
            if keep.numel():
                batch = self._domains(res, over, kids["depth"], keep)
                batch["case"] = case[keep]
                self._decide(batch, res, keep)
                alive = self.status[batch["case"].cpu()] == CaseStatus.OPEN
                if not bool(alive.all()):
                    self._sink(batch, torch.nonzero(~alive).flatten().to(case.device))
                    batch = take(batch, torch.nonzero(alive).flatten().to(case.device))
                if roots:
                    self.roots = batch
                else:
                    self.store.push(batch)
                if size(batch):
                    self.counts += torch.bincount(batch["case"].cpu(), minlength=self.n_cases)
                    self.open_mass += self._mass(batch)
            share = self.verified_share()
            for at, least in self.probes:
                self._give_up(torch.nonzero((self.bounded >= at) & (share < least)).flatten())
        self._prove_settled()

    def _mass(self, batch: DomainBatch) -> Tensor:
        """``[P]`` ``sum 2^-depth`` of ``batch``'s domains per case."""
        w = torch.exp2(-batch["depth"].double().cpu())
        return torch.bincount(batch["case"].cpu(), weights=w, minlength=self.n_cases)

    def verified_share(self) -> Tensor:
        """``[P]`` the share of each case's tree verified so far (``1 - sum 2^-depth`` over
        its open domains)."""
        return (1.0 - self.open_mass).clamp(0.0, 1.0)

    def _prove_settled(self) -> None:
        """Cases still open with no open domain left are proved."""
        new = (self.status == CaseStatus.OPEN) & (self.counts == 0)
        if not bool(new.any()):
            return
        self.status[new] = CaseStatus.PROVED
        if self.on_proved is not None and self.on_proved(torch.nonzero(new).flatten().tolist()):
            self.stopped = True

    def _refute(self, A: Tensor, case: Tensor) -> None:
        """Refute the cases whose leaves' minimising corners (``A``: ``[S, k, *input]``
        lower-bound coefficients of the leaves of cases ``case``) violate them."""
        S = A.shape[0]
        pts = attack.minimising_corners(A, self.p.lower.to(A), self.p.upper.to(A))
        pts = pts.reshape((-1,) + tuple(self.p.lower.shape[1:])).to(self.p.lower)
        pc = case.repeat(S)  # points are ordered (row, leaf)
        with torch.no_grad():
            y = evaluate(self.bg.source, pts).reshape(pts.shape[0], -1).to(self.C_all)
        v = torch.einsum("ksn,kn->ks", self.C_all[pc.to(self.C_all.device)], y) - self.p.d.to(y)
        bad = (v <= 0).all(-1)
        self.stats.candidates_checked += int(pts.shape[0])
        if bool(bad.any()):
            hit = pc[bad].cpu().unique()
            self.status[hit[self.status[hit] == CaseStatus.OPEN]] = CaseStatus.REFUTED
