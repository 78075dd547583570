"""Stabilising intermediate ReLU neurons by small searches before the main one.

On ReLU networks the size of the main search's tree is set by how loose its root
intervals are: every neuron they leave unstable (``l < 0 < u``) is relaxed in every
domain until some split reaches it. alpha-CROWN's intervals are the best a single
relaxation gives, but many neurons are stable on the whole box and only a case split
over earlier neurons shows it. :func:`stabilize` proves such facts one neuron at a
time: for an unstable neuron ``z_i`` of a node that feeds ReLUs, which sampled points
never showed positive, a branch-and-bound search on the network cut at that node
proves ``z_i <= 0`` (or ``z_i >= 0`` for one never seen negative); a proved neuron's
interval end becomes 0 and its relaxation is exact in every domain of the main search.

The small searches of one node run together in one :class:`branching.multi.RowSearch`
(the main search's machinery with each domain's own row, so every proof is as sound as
the main search's, with interval intermediate bounds); each stops at the first point
showing its neuron on the wrong side (a vertex of its leaves' linear bounds, checked on
the cut network), gives up when its tree is not getting verified (under 10 % after an
eighth of its domains, under half after half), and is capped. Nodes go in graph order,
in passes (:func:`pass_plan`): a quarter of ``stabilize_domains`` per neuron for the
neurons closest to stable, so that every node gets its cheap proofs within the budget,
then the full cap for the ones it gave up on (on nodes where it proved some), then a
quarter for the neurons far from stable, then narrowing passes with growing caps until
the budget ends.

A search that gives up still narrows its neuron: every point of the box lies in a
verified leaf, an infeasible one or an open one, so the least bound of its open leaves
(:attr:`branching.multi.RowSearchResult.floor`) is a sound end, usually well inside the
root's. In the first pass every node's neurons left unstable (the far candidates, and
the sides sampled points did reach) also get a narrowing search of
:data:`WIDE_DOMAINS` domains (worst leaf first, no refutation: only the floor is
wanted) before the next node, whose searches then start from narrower relaxations.

eran mnist_relu_9_200 idx 2697 (alpha-CROWN worst margin -11.7), 26 s: proofs only, 235
of 672 neurons stable and 5 of 9 cases refuted by alpha-CROWN afterwards (worst margin
-1.71); with the floors, 321 and every case (+1.20); with the narrowing searches too,
504 and every case (+2.16). idx 2954: worst margin -0.70 after 53 s with the floors;
+2.19 after 26 s with the narrowing searches.

mnist_fc 256x4 prop_5_0.05 (9 cases, alpha-CROWN margins -0.65 .. -0.88): 191 of its 225
candidates proved stable in 10 s; the re-bounded root then refutes every case, where
without it the search proves none of them in 300 s. 256x6 prop_3_0.05: 404 of 436
proved in 5.4 s (one search per neuron took 43 s for the same).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from bounds.crown import is_crown_refined
from bounds.deadline import Deadline
from bounds.network import BoundGraph
from bounds.types import CROWN_MAX_ELEMENTS, Bounds
from models.evaluate import evaluate
from models.graph import ValueInfo

from .config import BabConfig
from .multi import CaseStatus, RowSearch

__all__ = ["StabilizeStats", "pass_plan", "prefix_graph", "stabilize", "stabilizable_nodes"]

log = logging.getLogger(__name__)

#: Consumers whose relaxation is exact once their input's interval does not cross 0.
_KINK_AT_ZERO = frozenset({"Relu", "LeakyRelu"})

#: Random vertices of the box evaluated to rule out neurons that take both signs.
SAMPLES = 1024

#: Signed-gradient steps that try to show each candidate neuron on the wrong side.
PGD_STEPS = 20

#: Candidates attacked per batch.
_CHUNK = 256


@dataclass
class StabilizeStats:
    """What :func:`stabilize` did: searches run, neurons proved stable, interval ends
    narrowed by searches that gave up (each narrowing counted), domains bounded."""

    attempted: int = 0
    proved: int = 0
    tightened: int = 0
    domains: int = 0
    elapsed_s: float = 0.0

    def add(self, other: StabilizeStats) -> None:
        """Add ``other``'s counts and time to these."""
        self.attempted += other.attempted
        self.proved += other.proved
        self.tightened += other.tightened
        self.domains += other.domains
        self.elapsed_s += other.elapsed_s

    def to_dict(self) -> dict[str, float]:
        return {
            "stabilize_attempted": self.attempted,
            "stabilize_proved": self.proved,
            "stabilize_tightened": self.tightened,
            "stabilize_domains": self.domains,
            "stabilize_s": round(self.elapsed_s, 3),
        }


def stabilizable_nodes(bg: BoundGraph) -> list[str]:
    """Nodes whose every consumer is a ReLU (or LeakyReLU) and whose intervals CROWN
    refines (the first affine layer's are exact already), in graph order."""
    out = []
    for name in bg.needs_bounds:
        if name == bg.input_name or name not in bg.infos:
            continue
        if not is_crown_refined(bg, name, CROWN_MAX_ELEMENTS):
            continue
        ops = [i.node.op for i in bg.infos.values() if name in i.node.inputs]
        if ops and all(op in _KINK_AT_ZERO for op in ops):
            out.append(name)
    return out


def prefix_graph(bg: BoundGraph, name: str) -> BoundGraph:
    """The network cut at node ``name``: the nodes it depends on, with ``name`` as output."""
    g = bg.graph
    need, todo = set(), [name]
    while todo:
        cur = todo.pop()
        if cur in need or not g.has_node(cur):
            continue
        need.add(cur)
        todo.extend(g.node(cur).inputs)
    nodes = tuple(n for n in g.nodes if n.name in need)
    consts = {k: v for k, v in g.constants.items() if any(k in n.inputs for n in nodes)}
    cut = g.replace(
        nodes=nodes,
        constants=consts,
        outputs=(ValueInfo(name, g.shape_of(name)),),
        name=f"{g.name}[:{name}]",
    )
    return BoundGraph(cut, registry=bg.registry)


def stabilize(
    bg: BoundGraph,
    lower: Tensor,
    upper: Tensor,
    root: Mapping[str, Bounds],
    config: BabConfig,
    deadline: Deadline,
    done: Callable[[Mapping[str, Bounds]], bool] | None = None,
    progress: Callable[[StabilizeStats], None] | None = None,
) -> tuple[dict[str, Bounds], StabilizeStats]:
    """Root intervals with the neurons proved stable on the box ``[lower, upper]``
    (``[1, *input_shape]``) given 0 as their end.

    Args:
        bg: the prepared graph.
        lower, upper: the input box.
        root: sound intervals of every node on the box (batch 1), e.g. alpha-CROWN's.
        config: the main search's settings; the small searches use them with
            ``max_domains=config.stabilize_domains``, no PGD and interval
            intermediate bounds; a case with under 10 % of its tree verified after an
            eighth of its domains, or under half after half of them, gives up.
        deadline: the time budget; stops between searches (a running one stops with it).
        done: called with the intervals so far when the number of neurons proved stable
            reaches 16, 32, 64, ... and after every node that proved some (never twice for
            the same count); True stops (e.g. the caller's
            bound already settles what it needs).
        progress: called with the statistics so far after every round of the searches.

    Returns:
        The intervals (a new mapping; ``root`` is not changed) and the statistics.
    """
    start = time.perf_counter()
    stats = StabilizeStats()
    out = dict(root)
    # Interval intermediate bounds in the small searches: re-bounding the cut network's
    # earlier layers by CROWN in every child took half of their time and proved no more
    # (mnist_fc 256x4 prop_5: 150 neurons either way, 5.4 s instead of 10.7).
    inner = dataclasses.replace(config, attack_every=0, split="activation", intermediate="interval")
    # narrowing searches: the worst leaf first (it is the floor)
    narrow = dataclasses.replace(inner, order="worst")
    check = _Checkpoints(done, stats)
    nodes = stabilizable_nodes(bg)

    def tick(running: int) -> None:
        """Report the statistics with ``running`` domains of the current search."""
        if progress is not None:
            now = dataclasses.replace(stats, elapsed_s=time.perf_counter() - start)
            now.domains += running
            progress(now)

    cuts: dict[str, BoundGraph] = {}  # each node's cut network, built once for every pass
    # the candidates each later pass searches, per node (filled by the first pass)
    queued: dict[str, dict[str, list[_Candidate]]] = {"retry": {}, "far": {}}
    stopped = False
    for cap, kind in pass_plan(config.stabilize_domains):
        for name in nodes:
            if stopped or deadline.expired():
                break
            if name not in cuts:
                cuts[name] = prefix_graph(bg, name)
            cut = cuts[name]
            wide: list[_Candidate] = []
            if kind in ("first", "all"):
                todo, wide = _candidates(cut, name, lower, upper, out)
                stats.attempted += len(todo)
                if kind == "first":
                    queued["far"][name] = [c for c in todo if c[0] > FAR_SHARE]
                    todo = [c for c in todo if c[0] <= FAR_SHARE]
                    wide = queued["far"][name] + wide
            elif kind == "narrow":
                todo, wide = [], _unstable_sides(out[name])
            else:
                todo = queued[kind].get(name, [])
            proved0 = stats.proved
            stop, gave_up = _search_node(
                cut, name, todo, lower, upper, out, inner, cap, deadline, stats, check, tick
            )
            if kind == "first":  # a node that yields next to nothing is not retried
                yielded = stats.proved - proved0 >= RETRY_YIELD * len(todo)
                queued["retry"][name] = gave_up if yielded else []
            wide_cap = cap if kind == "narrow" else WIDE_DOMAINS
            if wide and not stop and wide_cap:
                # the ends of the neurons left unstable, before the next node's searches
                stop, left = _search_node(
                    cut,
                    name,
                    wide,
                    lower,
                    upper,
                    out,
                    narrow,
                    wide_cap,
                    deadline,
                    stats,
                    check,
                    tick,
                    tighten_only=True,
                )
                if kind == "first":  # the far candidates it proved are done
                    queued["far"][name] = [c for c in queued["far"][name] if c in left]
            stopped = stop or check(out, node_end=True)
    stats.elapsed_s = time.perf_counter() - start
    log.info(
        "stabilize: %d of %d neurons proved stable, %d ends narrowed (%d domains, %.2f s)",
        stats.proved,
        stats.attempted,
        stats.tightened,
        stats.domains,
        stats.elapsed_s,
    )
    return out, stats


#: A node whose first pass proved fewer than this share of its candidates is not searched
#: again (eran mnist_relu_9_200: its last two nodes proved 1 of 202 in the first pass and
#: 6 of 201 in 37 s of the second).
RETRY_YIELD = 0.05

#: Candidates with more than this share of their interval on the far side wait for a last
#: pass (eran mnist_relu_9_200 idx 2697: 1 of 297 such was proved, against 199 of the 375
#: others in the first pass; mnist_fc 256x4 prop_13: 5 of 11).
FAR_SHARE = 0.3


def pass_plan(cap: int) -> tuple[tuple[int, str], ...]:
    """The passes over the nodes, ``(domain cap per neuron, which candidates)``.

    With ``cap`` >= 128: ``first``, a quarter of ``cap`` for the candidates with at most
    :data:`FAR_SHARE` of their interval on the far side (most proofs need few domains);
    ``retry``, the full cap for those the first pass gave up on (not for a node where it
    proved under :data:`RETRY_YIELD` of them); ``far``, a quarter of ``cap`` for the
    others; then ``narrow`` passes over both sides of every neuron still unstable, to
    narrow its interval, with an eighth of ``cap`` per side, then twice as many each
    time up to ``2 * cap`` (the budget ends them). mnist_fc 256x4 prop_7_0.05, alpha-CROWN's
    margins after stabilising: -0.81 .. -1.63 after the first narrowing pass (28 s), -0.56
    .. -1.43 after the second (47 s), -0.24 .. -1.03 after the third (73 s); -0.99 ..
    -1.87 without them. A tight budget still reaches every node with the likely proofs
    first. Smaller caps: one pass over ``all`` candidates.
    """
    if cap >= 128:
        narrow = tuple((cap * k // 8, "narrow") for k in (1, 2, 4, 8, 16))
        return ((cap // 4, "first"), (cap, "retry"), (cap // 4, "far")) + narrow
    return ((cap, "all"),)


class _Checkpoints:
    """Calls ``done`` when the proofs reach the next power of two from 16, and at the end of
    a node, never twice for the same intervals (proofs and narrowed ends)."""

    def __init__(self, done: Callable[[Mapping[str, Bounds]], bool] | None, stats: StabilizeStats):
        self.done, self.stats = done, stats
        self.next_at, self.checked = 16, 0

    def __call__(self, out: Mapping[str, Bounds], node_end: bool = False) -> bool:
        proved = self.stats.proved
        moved = proved + self.stats.tightened
        if self.done is None or moved == self.checked:
            return False
        if not (node_end or proved >= self.next_at):
            return False
        self.checked = moved
        while self.next_at <= proved:
            self.next_at *= 2
        return self.done(out)


def _unstable_sides(b: Bounds) -> list[_Candidate]:
    """Both sides of every neuron still unstable in ``b``, in neuron order: ``z_i <= 0``
    (the far side's share is the positive part's), then ``z_i >= 0``."""
    lo, up = b.lower.reshape(-1), b.upper.reshape(-1)
    frac = (up / (up - lo)).tolist()
    out = []
    for i in torch.nonzero((lo < 0) & (up > 0)).flatten().tolist():
        out += [(frac[i], i, -1), (1.0 - frac[i], i, 1)]
    return out


#: (priority: the share of the interval on the far side, neuron, sign of the row to prove
#: ``sign * z_i >= 0``)
_Candidate = tuple[float, int, int]


def _candidates(
    cut: BoundGraph, name: str, lower: Tensor, upper: Tensor, out: Mapping[str, Bounds]
) -> tuple[list[_Candidate], list[_Candidate]]:
    """Node ``name``'s unstable neurons and signs that no sampled point and no signed-PGD
    run on ``cut`` (the network cut at ``name``) showed on the wrong side, closest to
    stable first; and the sides such a point did reach."""
    b = out[name]
    cand = _unstable_sides(b)
    if not cand:
        return [], []
    gen = torch.Generator().manual_seed(0)
    pick = torch.rand((SAMPLES,) + tuple(lower.shape[1:]), generator=gen, dtype=lower.dtype)
    pts = torch.cat([0.5 * (lower + upper), torch.where(pick < 0.5, lower, upper)])
    with torch.no_grad():
        z = evaluate(cut.source, pts).reshape(pts.shape[0], -1).to(b.lower)
    idx = torch.tensor([i for _, i, _ in cand], dtype=torch.long)
    sgn = torch.tensor([float(s) for _, _, s in cand], dtype=b.lower.dtype)
    # the sampled point nearest the wrong side of each candidate starts its PGD
    start = pts[(sgn[:, None] * z[:, idx].T).argmin(1)]
    reached = torch.cat(
        [
            _attack(
                cut, start[k : k + _CHUNK], idx[k : k + _CHUNK], sgn[k : k + _CHUNK], lower, upper
            )
            for k in range(0, len(idx), _CHUNK)
        ]
    )
    todo, wide = [], []
    for c, hit in zip(cand, reached.tolist()):
        (wide if hit else todo).append(c)
    todo.sort()
    log.debug("stabilize %s: %d unstable, %d candidates after PGD", name, len(cand) // 2, len(todo))
    return todo, wide


def _search_node(
    cut: BoundGraph,
    name: str,
    todo: list[_Candidate],
    lower: Tensor,
    upper: Tensor,
    out: dict[str, Bounds],
    inner: BabConfig,
    cap: int,
    deadline: Deadline,
    stats: StabilizeStats,
    check: _Checkpoints,
    tick: Callable[[int], None],
    tighten_only: bool = False,
) -> tuple[bool, list[_Candidate]]:
    """Search ``todo`` on ``cut`` (the network cut at ``name``) with ``cap`` domains each
    (``out`` updated with the proofs and, with :data:`TIGHTEN`, the floors of the searches
    that gave up; ``tighten_only``: no probes and no refutation, for the floors alone):
    whether ``check`` said stop, and the candidates
    that gave up (neither proved nor shown on the wrong side)."""
    if not todo or deadline.expired():
        return False, todo
    b = out[name]
    new_lo, new_up = b.lower.reshape(-1).clone(), b.upper.reshape(-1).clone()

    def publish() -> None:
        out[name] = Bounds(new_lo.reshape(b.lower.shape), new_up.reshape(b.upper.shape))

    t0, proved0 = time.perf_counter(), stats.proved
    C = lower.new_zeros(len(todo), 1, new_lo.numel())
    for k, (_, i, sign) in enumerate(todo):
        C[k, 0, i] = float(sign)
    stop = False

    def proved(cases: list[int]) -> bool:
        nonlocal stop
        for k in cases:
            _, i, sign = todo[k]
            if sign < 0:
                new_up[i] = 0.0
            else:
                new_lo[i] = 0.0
        stats.proved += len(cases)
        publish()
        stop = check(out)
        return stop

    root_cut = {k: v for k, v in out.items() if k == cut.input_name or k in cut.infos}
    # hopeless cases stop early: under 10 % of the tree verified after an eighth of the
    # cap (at least 8 domains), under half after half of it
    probes = ((max(8, cap // 8), 0.1), (cap // 2, 0.5)) if cap >= 16 and not tighten_only else ()
    config = dataclasses.replace(inner, max_domains=cap)
    search = RowSearch(
        cut,
        lower,
        upper,
        C,
        lower.new_zeros(1),
        root_cut,
        config,
        proved,
        probes,
        progress=lambda st: tick(st.domains_bounded),
        refute=not tighten_only,
    )
    res = search.run(deadline)
    stats.domains += search.stats.domains_bounded
    if TIGHTEN:
        stats.tightened += _tighten(todo, res.floor, new_lo, new_up)
    publish()
    log.debug(
        "stabilize %s: %d of %d proved in %.2f s (%d domains, cap %d)",
        name,
        stats.proved - proved0,
        len(todo),
        time.perf_counter() - t0,
        search.stats.domains_bounded,
        cap,
    )
    gave_up = (res.status == CaseStatus.GAVE_UP).tolist()
    return stop, [c for c, g in zip(todo, gave_up) if g]


#: Domains per side in the narrowing searches of each node's neurons left unstable (the
#: sides a point in the box showed, and the far candidates), before the next node.
WIDE_DOMAINS = 8

#: Relative slack taken off every floor (at least a thousand rounding units of the dtype).
FLOOR_SLACK = 1e-9

#: Candidates that gave up still tighten their end: ``sign * z_i`` is at least the least
#: margin of their open leaves.
TIGHTEN = True


def _tighten(todo: list[_Candidate], floor: Tensor, new_lo: Tensor, new_up: Tensor) -> int:
    """Move the ends of the candidates with a known floor (``sign * z_i >= floor``) in,
    less a relative slack (a floor can be the exact extreme, which the network's own
    evaluation may pass by a rounding error: 6e-15 seen on mnist_fc 256x4); the number of
    ends moved."""
    rel = max(FLOOR_SLACK, 1e3 * torch.finfo(new_lo.dtype).eps)
    moved = 0
    for (_, i, sign), f in zip(todo, floor.tolist()):
        if not math.isfinite(f):
            continue
        f -= rel * (1.0 + abs(f))
        if sign > 0 and f > float(new_lo[i]):
            new_lo[i] = f
            moved += 1
        elif sign < 0 and -f < float(new_up[i]):
            new_up[i] = -f
            moved += 1
    return moved


def _attack(
    cut: BoundGraph,
    start: Tensor,
    idx: Tensor,
    sgn: Tensor,
    lower: Tensor,
    upper: Tensor,
    steps: int = PGD_STEPS,
) -> Tensor:
    """``[K]``: whether signed PGD from ``start`` (``[K, *input]``) in the box reached
    ``sgn_k * z[idx_k] <= 0`` for each candidate ``k`` (one batched run for all)."""
    x = start.detach().clone()
    rows = torch.arange(len(idx))
    step = 0.25 * (upper - lower)
    hit = torch.zeros(len(idx), dtype=torch.bool)
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            v = sgn * evaluate(cut.source, x).reshape(len(idx), -1)[rows, idx]
            (grad,) = torch.autograd.grad(v.sum(), x)
        hit |= (v <= 0).detach()
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - step * grad.sign(), lower), upper)
        step = 0.8 * step
    with torch.no_grad():
        v = sgn * evaluate(cut.source, x).reshape(len(idx), -1)[rows, idx]
    return hit | (v <= 0)
