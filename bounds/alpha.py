"""alpha-CROWN: optimise relaxation parameters by gradient.

Parameters exist per node, per objective row and per domain (``[n, S, B,
*shape]``), so every row gets its own relaxation. Every relaxation is sound for
any parameter value (``bounds.relax`` contract), so the projection after each
Adam step (:func:`project_`) only keeps parameters in their useful range; the returned bound is
the element-wise best seen, which is sound because every iterate is.

:func:`optimize_output_bound` keeps the intermediate bounds fixed (the
branch-and-bound setting). :func:`optimize_bounds` also gives every CROWN-refined
intermediate node its own parameters (one set per bounded element and side, as
in alpha-CROWN): each iteration recomputes those nodes' bounds from the current
parameters, the output bound is differentiated through them, and every node
keeps the tightest sound interval seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .crown import (
    _accumulate,
    _affine_step,
    backward_lower,
    consumer_mask,
    is_crown_refined,
    selector_rows,
)
from .deadline import Deadline
from .ibp import node_interval
from .network import BoundGraph
from .products import matmul_shapes, product_alpha_init
from .relax.bilinear import MUL_N_ALPHA
from .types import CROWN_MAX_ELEMENTS, Bounds

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlphaConfig:
    """Optimiser settings (defaults follow the incomplete-verification stage)."""

    iterations: int = 30
    lr: float = 0.1
    lr_decay: float = 0.98
    patience: int = 8
    intermediate: bool = True
    intermediate_budget: int = 1 << 22


@dataclass
class AlphaResult:
    """Best output bound ``[S, B]`` and the (possibly tightened) intervals of every node."""

    lower: Tensor
    bounds: dict[str, Bounds]


def _alpha_range(bg: BoundGraph, name: str) -> tuple[float, float] | None:
    """The box alpha-CROWN projects node ``name``'s parameters onto (None: none)."""
    info = bg.infos[name]
    if info.kind == "product":
        return (0.0, 1.0)
    return info.relaxation.alpha_range if info.relaxation is not None else None


def project_(bg: BoundGraph, alphas: Mapping[str, Tensor]) -> None:
    """Clamp every parameter tensor into its relaxation's useful box, in place."""
    with torch.no_grad():
        for name, t in alphas.items():
            box = _alpha_range(bg, name)
            if box is not None:
                t.clamp_(*box)


def _param_groups(bg: BoundGraph, alphas: Mapping[str, Tensor], lr: float) -> list[dict]:
    """Adam parameter groups: each relaxation's ``alpha_lr_scale`` times ``lr``."""
    groups: dict[float, list[Tensor]] = {}
    for name, t in alphas.items():
        relax = bg.infos[name].relaxation
        scale = relax.alpha_lr_scale if relax is not None else 1.0
        groups.setdefault(scale, []).append(t)
    return [{"params": ps, "lr": lr * s} for s, ps in groups.items()]


class Adam:
    """Adam with a per-step exponential learning-rate decay (the arithmetic of
    ``torch.optim.Adam`` + ``ExponentialLR``, betas ``(0.9, 0.999)``, eps ``1e-8``).

    Hand-written because ``torch.optim``'s first step imports ``torch._dynamo``: about
    2 s and 80 MB of resident memory per process, more than a whole CROWN bound on the
    vit benchmark models. ``groups``: ``[{"params": [Tensor, ...], "lr": float}, ...]``.
    """

    def __init__(
        self, groups: list[dict], *, lr_decay: float = 1.0, betas=(0.9, 0.999), eps=1e-8
    ) -> None:
        self.groups = [(list(g["params"]), float(g["lr"])) for g in groups]
        self.lr_decay, self.betas, self.eps = lr_decay, betas, eps
        self.steps = 0
        self.moments = [
            [(torch.zeros_like(p), torch.zeros_like(p)) for p in ps] for ps, _ in self.groups
        ]

    def select(self, new: Mapping[int, Tensor], rows: Callable[[Tensor], Tensor]) -> None:
        """Swap each parameter ``p`` for ``new[id(p)]`` and its moments for ``rows(m)``
        (when a batch of problems shrinks mid-optimisation)."""
        self.groups = [([new[id(p)] for p in ps], lr) for ps, lr in self.groups]
        self.moments = [[(rows(m), rows(v)) for m, v in ms] for ms in self.moments]

    def param_groups(self) -> list[dict]:
        """The groups in the constructor's format."""
        return [{"params": ps, "lr": lr} for ps, lr in self.groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for ps, _ in self.groups:
            for p in ps:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter with a gradient, then the decay of the rate."""
        self.steps += 1
        b1, b2 = self.betas
        corr1 = 1 - b1**self.steps
        corr2_sqrt = math.sqrt(1 - b2**self.steps)
        scale = self.lr_decay ** (self.steps - 1)
        for (ps, lr), moments in zip(self.groups, self.moments):
            for p, (m, v) in zip(ps, moments):
                if p.grad is None:
                    continue
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = v.sqrt().div_(corr2_sqrt).add_(self.eps)
                p.addcdiv_(m, denom, value=-(lr * scale) / corr1)


def _n_alpha(bg: BoundGraph, name: str) -> int:
    """Parameters per element of node ``name`` (0: nothing to optimise)."""
    info = bg.infos[name]
    if info.kind == "unary":
        relax = info.relaxation
        ok = relax is not None and relax.alpha_init is not None
        return relax.n_alpha if ok and relax is not None else 0
    return MUL_N_ALPHA if info.kind == "product" else 0


def _alpha_elements(bg: BoundGraph, name: str) -> int:
    """Elements that carry parameters per row: a ``MatMul`` product has one pair per
    term (``[..., n, k, m]``), every other node one per element."""
    node = bg.infos[name].node
    if bg.infos[name].kind == "product" and node.op == "MatMul":
        return math.prod(matmul_shapes(*(bg.shape(i) for i in node.inputs))[1])
    return math.prod(bg.shape(name))


def init_alphas(
    bg: BoundGraph,
    bounds: Mapping[str, Bounds],
    S: int,
    nodes: set[str] | frozenset[str] | None = None,
) -> dict[str, Tensor]:
    """Default-relaxation parameters for every optimisable node: ``[n, S, B, *shape]``
    (a ``MatMul`` product: ``[2, S, B, *batch, n, k, m]``, one pair per term).

    ``nodes`` restricts the result to a subset (e.g. the ancestors of one node).
    """
    out: dict[str, Tensor] = {}
    for name, info in bg.infos.items():
        if nodes is not None and name not in nodes:
            continue
        if info.kind == "unary":
            relax = info.relaxation
            if relax is None or relax.n_alpha == 0 or relax.alpha_init is None:
                continue
            b = bounds[info.node.inputs[0]]
            init = relax.alpha_init(b.lower, b.upper)
        elif info.kind == "product":
            x, y = (bounds[n] for n in info.node.inputs)
            init = product_alpha_init(info.node.op, x, y)
        else:
            continue
        init = init.detach().unsqueeze(1)
        out[name] = init.expand(init.shape[0], S, *init.shape[2:]).clone().requires_grad_(True)
    return out


def optimize_output_bound(
    bg: BoundGraph,
    A0: Tensor,
    bounds: Mapping[str, Bounds],
    *,
    thresholds: Tensor | None = None,
    config: AlphaConfig | None = None,
    initial: Tensor | None = None,
    deadline: Deadline | None = None,
) -> Tensor:
    """Best lower bound of ``A0 · output`` over the iterations, ``[S, B]``.

    The intermediate ``bounds`` stay fixed (only the output bound's relaxations are
    optimised); arguments as for :func:`optimize_bounds`.
    """
    config = replace(config or AlphaConfig(), intermediate=False)
    res = optimize_bounds(
        bg, A0, bounds, thresholds=thresholds, config=config, initial=initial, deadline=deadline
    )
    return res.lower


def _ancestors(bg: BoundGraph, name: str) -> set[str]:
    """Nodes whose value ``name`` depends on through perturbed inputs."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        info = bg.infos[stack.pop()]
        for slot in info.perturbed_slots:
            parent = info.node.inputs[slot]
            if parent in bg.infos and parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _refined_elements(bg: BoundGraph, name: str, b: Bounds) -> Tensor:
    """Flat indices of ``name``'s elements whose interval still shapes a relaxation.

    Piecewise-linear consumers (ReLU, Clip, Floor, ...) stop caring once an element is
    stable (their ``split_mask`` is False); smooth ones care while ``l < u``. The union
    over domains and consumers is taken; bounds only tighten, so it stays valid.
    """
    lo, up = b.lower.flatten(1), b.upper.flatten(1)
    keep = torch.zeros_like(lo, dtype=torch.bool)
    for info in bg.infos.values():
        if name not in info.node.inputs or info.kind not in ("unary", "product"):
            continue
        mask = consumer_mask(info)
        keep |= (up > lo) if mask is None else mask(lo, up)
    return torch.nonzero(keep.any(0)).flatten()


def _intermediate_starts(
    bg: BoundGraph, bounds: Mapping[str, Bounds], budget: int, max_elements: int
) -> dict[str, tuple[Tensor, frozenset[str]]]:
    """CROWN-refined nodes that get their own parameters.

    Maps each to (flat indices of the elements it refines, optimisable ancestors).
    Nodes are taken in graph order while the parameter count (``2 k B`` rows times the
    ancestors' parameters) fits in ``budget``; the rest keep fixed bounds.
    """
    out: dict[str, tuple[Tensor, frozenset[str]]] = {}
    used = 0
    for name in bg.needs_bounds:
        if name not in bg.infos or not is_crown_refined(bg, name, max_elements):
            continue
        ups = frozenset(a for a in _ancestors(bg, name) if _n_alpha(bg, a) > 0)
        idx = _refined_elements(bg, name, bounds[name])
        if not ups or idx.numel() == 0:
            continue
        B = bounds[name].lower.shape[0]
        per_row = sum(_n_alpha(bg, a) * _alpha_elements(bg, a) for a in ups)
        cost = 2 * idx.numel() * B * per_row
        if used + cost > budget:
            continue
        out[name] = (idx, ups)
        used += cost
    return out


def _start_rows(bg: BoundGraph, name: str, idx: Tensor, like: Tensor) -> Tensor:
    """The ``2k`` objective rows of a start node (lower rows, then negated upper rows) for
    the elements ``idx``, ``[2k, B, *shape]``."""
    shape = bg.shape(name)
    rows = selector_rows(math.prod(shape), idx, like.shape[0], like)
    return torch.cat([rows, -rows]).reshape((2 * idx.numel(), like.shape[0]) + shape)


def _unique_rows(bg: BoundGraph, name: str, A0: Tensor) -> tuple[Tensor, Tensor] | None:
    """Rows of ``A0`` that are the same linear function before any nonlinearity.

    The rows are pushed back through the affine nodes below ``name`` (which depend on no
    interval) until every coefficient sits at a nonlinear node's output or the input;
    rows that agree there (coefficients and constant terms) get the same bound, so only
    one of them is bounded. E.g. a decomposed softmax's pairwise differences
    ``s_k - s_j``: the lower row of ``(j, k)`` is the negated upper row of ``(k, j)``.

    Returns ``(representatives [U], inverse [R])`` with ``row r == representatives[inverse[r]]``,
    or None when all rows differ. Computed on the first domain (affine steps are the same
    for every domain).
    """
    a0 = A0[:, :1]
    acc: dict[str, Tensor] = {name: a0}
    bias = a0.new_zeros(a0.shape[:2])
    parts: list[Tensor] = []
    for node in reversed(bg.order[: bg.order.index(name) + 1]):
        a = acc.pop(node, None)
        if a is None:
            continue
        info = bg.infos[node]
        if info.kind != "affine":
            parts.append(a.flatten(1))
            continue
        grads, b = _affine_step(bg, info, a)
        for slot, g in zip(info.perturbed_slots, grads):
            _accumulate(acc, info.node.inputs[slot], g)
        bias = bias + b
    parts += [a.flatten(1) for a in acc.values()] + [bias]
    key = torch.cat(parts, dim=1)
    uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
    if uniq.shape[0] == key.shape[0]:
        return None
    reps = torch.empty(uniq.shape[0], dtype=torch.long, device=key.device)
    reps.scatter_(0, inverse, torch.arange(key.shape[0], device=key.device))
    return reps, inverse


def _detached(bg: BoundGraph, bounds: Mapping[str, Bounds]) -> dict[str, Bounds]:
    """Intervals without autograd history; the input set is kept as given (a ball stays one)."""
    out = {k: Bounds(v.lower.detach(), v.upper.detach()) for k, v in bounds.items()}
    out[bg.input_name] = bounds[bg.input_name]
    return out


def _refresh(
    bg: BoundGraph,
    prev: Mapping[str, Bounds],
    starts: Mapping[str, tuple[Tensor, frozenset[str]]],
    alphas: Mapping[str, Mapping[str, Tensor]],
    unique: Mapping[str, tuple[Tensor, Tensor] | None] | None = None,
) -> dict[str, Bounds]:
    """Intervals of every node from the current parameters, intersected with ``prev``.

    Differentiable in the parameters; ``prev`` (detached, sound) keeps them monotone.
    ``unique``: per start, the representative rows (see :func:`_unique_rows`).
    """
    cur: dict[str, Bounds] = {bg.input_name: prev[bg.input_name]}
    for name in bg.order:
        b = node_interval(bg, bg.infos[name], cur).intersect(prev[name])
        if name in starts:
            idx = starts[name][0]
            k = idx.numel()
            A0 = _start_rows(bg, name, idx, b.lower)
            dedup = (unique or {}).get(name)
            if dedup is not None:
                A0 = A0[dedup[0]]
            lb = backward_lower(bg, name, A0, cur, alphas=alphas[name]).lower
            if dedup is not None:
                lb = lb[dedup[1]]
            lo = b.lower.flatten(1).index_copy(1, idx, lb[:k].T).reshape(b.lower.shape)
            up = b.upper.flatten(1).index_copy(1, idx, -lb[k:].T).reshape(b.upper.shape)
            # The value is the intersection (sound); the gradient always reaches the fresh
            # bound, so parameters that made it looser than ``prev`` can still recover.
            b = Bounds(
                lo + (torch.maximum(lo, b.lower) - lo).detach(),
                up + (torch.minimum(up, b.upper) - up).detach(),
            )
        cur[name] = b
    return cur


def optimize_bounds(
    bg: BoundGraph,
    A0: Tensor,
    bounds: Mapping[str, Bounds],
    *,
    thresholds: Tensor | None = None,
    config: AlphaConfig | None = None,
    initial: Tensor | None = None,
    max_elements: int = CROWN_MAX_ELEMENTS,
    deadline: Deadline | None = None,
) -> AlphaResult:
    """alpha-CROWN with intermediate-layer parameters (see the module docstring).

    Args:
        bg: prepared graph.
        A0: ``[S, B, *output_shape]`` objective rows.
        bounds: sound intervals of every node (CROWN's), the starting point.
        thresholds: ``[S, B]``; rows whose bound exceeds them stop contributing.
        config: optimiser settings; with ``intermediate=False`` (or an empty budget)
            only the output bound's relaxations are optimised and the intervals stay.
        initial: a known sound bound (e.g. CROWN's) to start "best" from.
        max_elements: nodes CROWN refined (see :func:`bounds.crown.crown_bounds`).
        deadline: the time budget (None: no limit); once it has expired no further Adam
            step is taken and the best bound so far is returned.

    Returns:
        :class:`AlphaResult`; its intervals are the element-wise tightest seen.
    """
    config = config or AlphaConfig()
    starts = {}
    if config.intermediate and config.iterations > 0:
        starts = _intermediate_starts(bg, bounds, config.intermediate_budget, max_elements)
    S = A0.shape[0]
    best_bounds = _detached(bg, bounds)
    out_alphas = init_alphas(bg, best_bounds, S)
    like = best_bounds[bg.input_name].lower
    unique = {
        name: _unique_rows(bg, name, _start_rows(bg, name, idx, like))
        for name, (idx, _) in starts.items()
    }
    inter_alphas = {
        name: init_alphas(
            bg, best_bounds, 2 * idx.numel() if unique[name] is None else len(unique[name][0]), ups
        )
        for name, (idx, ups) in starts.items()
    }
    with torch.no_grad():
        best = backward_lower(bg, bg.output_name, A0, best_bounds, alphas=out_alphas).lower
    if initial is not None:
        best = torch.maximum(best, initial)
    groups = _param_groups(bg, out_alphas, config.lr)
    for d in inter_alphas.values():
        groups += _param_groups(bg, d, config.lr)
    if not groups or config.iterations <= 0:
        return AlphaResult(best, best_bounds)
    params = [t for g in groups for t in g["params"]]
    opt = Adam(groups, lr_decay=config.lr_decay)
    stale = 0
    for it in range(config.iterations):
        active = torch.ones_like(best, dtype=torch.bool)
        if thresholds is not None:
            active = best <= thresholds
            if not bool(active.any()):
                break
        cur = _refresh(bg, best_bounds, starts, inter_alphas, unique) if starts else best_bounds
        lb = backward_lower(bg, bg.output_name, A0, cur, alphas=out_alphas).lower
        with torch.no_grad():
            improved = bool((lb > best + 1e-7).any())
            best = torch.maximum(best, lb.detach())
            best_bounds = _detached(bg, cur)
        stale = 0 if improved else stale + 1
        if stale >= config.patience:
            break
        if deadline is not None and deadline.expired():
            break
        loss = -(lb * active).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in params:  # a relaxation's kink can give 0 * inf in the chain rule
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        project_(bg, out_alphas)
        for d in inter_alphas.values():
            project_(bg, d)
        log.debug("alpha iteration %d: mean bound %.5g", it, float(best.mean()))
    return AlphaResult(best, best_bounds)
