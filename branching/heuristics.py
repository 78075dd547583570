"""Which neuron to split: BBPS and a BaBSR-like baseline, in a registry (REFERENCE §1.b).

Both estimate, for every candidate neuron ``j`` of every split node ``z`` and both branches
``k`` (``[l, p]`` and ``[p, u]``), how the domain's bound would change if the consumers of
``z`` were relaxed on the branch instead of the whole interval. With ``A`` the objective's
coefficients w.r.t. a consumer's output (``lA``, saved by the last bound computation) and the
consumer's default lines ``(a_L, b_L, a_U, b_U)``, back-substitution through the consumer
gives ``λ = A⁺a_L + A⁻a_U`` and ``μ = A⁺b_L + A⁻b_U`` per neuron.

* **BBPS** goes one step further with the *shortcut*: the root's linear bounds of ``z`` in
  the input (``W_L x + c_L <= z <= W_U x + c_U``), so the estimated bound is a concrete
  minimum over the input box and the ``x``-dependent part of the change is counted.
* **BaBSR-like** keeps only intercepts: ``μ`` and ``λ`` times the bias of the affine node
  producing ``z``.

Scores are ``min_k max_s(m_s + Δ_{s,j,k}) − max_s m_s`` with ``m = lb − threshold`` (a domain
is verified when any row's margin is positive); non-candidates get ``−inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bounds.crown import linear_bounds
from bounds.network import BoundGraph
from bounds.ops.backward import sum_to
from bounds.relax.bilinear import relax_mul
from bounds.types import Bounds, LinearBounds, mul_guarded

from .splits import SplitNode

# Elements of the [S, B, chunk, d] tensors BBPS builds per chunk of neurons.
_CHUNK_ELEMENTS = 1 << 22
#: Largest ``S·B·n·d`` for which BBPS concretises every neuron's change exactly.
EXACT_ELEMENTS = 1 << 20
#: Above it, the corner estimate ranks every neuron and this many of the best per domain
#: and split node are concretised exactly.
REFINE = 16

__all__ = [
    "HEURISTICS",
    "INPUT_HEURISTICS",
    "HeuristicInput",
    "Shortcut",
    "babsr_scores",
    "bbps_scores",
    "shortcuts",
]


@dataclass(frozen=True)
class Shortcut:
    """Root linear bounds of a split node in the flattened input: ``[n, d]`` and ``[n]``."""

    WL: Tensor
    cL: Tensor
    WU: Tensor
    cU: Tensor


@dataclass(frozen=True)
class HeuristicInput:
    """Everything a heuristic reads for ``B`` domains.

    Attributes:
        bg: prepared graph.
        nodes: split nodes.
        intervals: node -> ``[B, *shape]`` current intervals.
        lA: consumer -> ``[S, B, *shape]`` objective coefficients w.r.t. its output.
        margins: ``[S, B]`` lower bound minus threshold per row.
        box: input box ``[B or 1, *input_shape]``.
        masks: split node -> ``[B, n]`` candidate neurons.
        points: split node -> ``[B, n]`` split points.
        shortcuts: split node -> root linear bounds (BBPS; nodes without one fall back to
            the intercept estimate).
        cache: ``(λ, μ)`` per (split node, interval: 0 whole, 1 and 2 the branches), shared
            by the heuristics scoring the same domains.
    """

    bg: BoundGraph
    nodes: tuple[SplitNode, ...]
    intervals: Mapping[str, Bounds]
    lA: Mapping[str, Tensor]
    margins: Tensor
    box: Bounds
    masks: Mapping[str, Tensor]
    points: Mapping[str, Tensor]
    shortcuts: Mapping[str, Shortcut]
    cache: dict[tuple[str, int], tuple[Tensor, Tensor] | None] = field(default_factory=dict)


def shortcuts(
    bg: BoundGraph,
    nodes: tuple[SplitNode, ...],
    root: Mapping[str, Bounds],
    budget_bytes: int,
) -> dict[str, Shortcut]:
    """Root linear bounds of split nodes w.r.t. the input, as many as fit in the budget."""
    d = math.prod(bg.input_shape)
    like = root[bg.input_name].lower
    out: dict[str, Shortcut] = {}
    used = 0
    for node in nodes:
        cost = 2 * node.size * d * like.element_size()
        if used + cost > budget_bytes:
            continue
        with torch.no_grad():
            lb: LinearBounds = linear_bounds(bg, node.name, root)
        out[node.name] = Shortcut(
            lb.lA[:, 0].reshape(node.size, d),
            lb.lbias[:, 0],
            lb.uA[:, 0].reshape(node.size, d),
            lb.ubias[:, 0],
        )
        used += cost
    return out


def lam_mu(
    bg: BoundGraph,
    node: SplitNode,
    lA: Mapping[str, Tensor],
    lower: Tensor,
    upper: Tensor,
    intervals: Mapping[str, Bounds],
) -> tuple[Tensor, Tensor] | None:
    """``(λ, μ)``, ``[S, B, n]``: the consumers' default lines on ``[lower, upper]``
    (``[B, *shape]``) weighted by their ``lA``, summed over consumers. None without lA."""
    lam = mu = None
    for c in node.consumers:
        A = lA.get(c.name)
        if A is None:
            continue
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        if c.kind == "unary":
            relax = bg.infos[c.name].relaxation
            assert relax is not None
            lines = relax.relax(lower, upper, None)
            l_c = pos * lines.lw + neg * lines.uw
            m_c = mul_guarded(pos, lines.lb) + mul_guarded(neg, lines.ub)
        else:
            other = intervals[c.other]
            if c.slot == 0:
                p = relax_mul(lower, upper, other.lower, other.upper, None)
                l_c = sum_to(pos * p.lx + neg * p.ux, node.shape)
            else:
                p = relax_mul(other.lower, other.upper, lower, upper, None)
                l_c = sum_to(pos * p.ly + neg * p.uy, node.shape)
            m_c = sum_to(mul_guarded(pos, p.lc) + mul_guarded(neg, p.uc), node.shape)
        l_c, m_c = l_c.flatten(2), m_c.flatten(2)
        lam = l_c if lam is None else lam + l_c
        mu = m_c if mu is None else mu + m_c
    if lam is None or mu is None:
        return None
    return lam, torch.nan_to_num(mu, nan=0.0, posinf=0.0, neginf=-1e30)


def _lam_mu_of(inp: HeuristicInput, node: SplitNode, which: int) -> tuple[Tensor, Tensor] | None:
    """:func:`lam_mu` on the node's interval (``which=0``) or branch ``which-1``, cached."""
    key = (node.name, which)
    if key not in inp.cache:
        b = inp.intervals[node.name]
        lo, up = (
            (b.lower, b.upper)
            if which == 0
            else _branches(node, b, inp.points[node.name])[which - 1]
        )
        inp.cache[key] = lam_mu(inp.bg, node, inp.lA, lo, up, inp.intervals)
    return inp.cache[key]


def _branches(node: SplitNode, b: Bounds, p: Tensor) -> tuple[tuple[Tensor, Tensor], ...]:
    shape = b.lower.shape
    pt = p.reshape(shape)
    return ((b.lower, pt), (pt, b.upper))


def _score(margins: Tensor, deltas: list[Tensor], mask: Tensor) -> Tensor:
    """``min_k max_s(m + Δ_k) − max_s m`` per ``[B, n]``; ``−inf`` off the mask."""
    m = margins.unsqueeze(-1)
    best = margins.max(0).values.unsqueeze(-1)
    worst_branch = torch.stack([(m + d).max(0).values for d in deltas]).min(0).values
    score = torch.nan_to_num(worst_branch - best, nan=-math.inf)
    return torch.where(mask, score, torch.full_like(score, -math.inf))


def _bias_of(bg: BoundGraph, node: SplitNode, like: Tensor) -> Tensor | None:
    """The constant bias of the affine node producing ``node`` (flattened), if any."""
    info = bg.infos.get(node.name)
    if info is None or info.node.op != "Linear" or len(info.node.inputs) < 3:
        return None
    name = info.node.inputs[2]
    if not name:
        return None
    b = bg.const(name, like)
    return b.expand(node.shape).reshape(-1) if b.numel() in (1, node.size) else None


def babsr_scores(inp: HeuristicInput) -> dict[str, Tensor]:
    """BaBSR-like intercept estimate per candidate neuron (see the module docstring)."""
    out: dict[str, Tensor] = {}
    for node in inp.nodes:
        out[node.name] = _intercept_scores(inp, node)
    return out


def _intercept_scores(inp: HeuristicInput, node: SplitNode) -> Tensor:
    b = inp.intervals[node.name]
    mask = inp.masks[node.name]
    base = _lam_mu_of(inp, node, 0)
    if base is None:
        return torch.full(mask.shape, -math.inf, dtype=b.lower.dtype)
    lam, mu = base
    bias = _bias_of(inp.bg, node, b.lower)
    deltas = []
    for k in (1, 2):
        lam_k, mu_k = _lam_mu_of(inp, node, k)  # type: ignore[misc]
        d = mu_k - mu
        if bias is not None:
            d = d + (lam_k - lam) * bias
        deltas.append(d)
    return _score(inp.margins, deltas, mask)


def bbps_scores(inp: HeuristicInput) -> dict[str, Tensor]:
    """BBPS estimate with shortcuts (intercept estimate for nodes without a shortcut).

    ``min_x (R − row_j + row'_j)·x`` is computed exactly (``[S, B, chunk, d]`` at a time)
    while ``S·B·n·d`` stays under :data:`EXACT_ELEMENTS`; beyond that it is evaluated at the
    corner ``x*`` minimising the layer-wide shortcut ``R·x`` (one matrix product per branch),
    which is exact whenever one neuron's change does not flip the sign of an input
    coefficient of ``R`` and otherwise overestimates the change.
    """
    out: dict[str, Tensor] = {}
    box = inp.box
    mid = (0.5 * (box.lower + box.upper)).flatten(1)  # [B or 1, d]
    rad = (0.5 * (box.upper - box.lower)).flatten(1)
    for node in inp.nodes:
        sc = inp.shortcuts.get(node.name)
        if sc is None:
            out[node.name] = _intercept_scores(inp, node)
            continue
        b = inp.intervals[node.name]
        mask = inp.masks[node.name]
        base = _lam_mu_of(inp, node, 0)
        if base is None:
            out[node.name] = torch.full(mask.shape, -math.inf, dtype=b.lower.dtype)
            continue
        lam, mu = base  # [S, B, n]
        lp, ln = lam.clamp(min=0), lam.clamp(max=0)
        R = lp @ sc.WL + ln @ sc.WU  # [S, B, d]
        exact = lam.numel() * R.shape[-1] <= EXACT_ELEMENTS
        r_mid = (R * mid).sum(-1, keepdim=True)
        r_base = r_mid - (R.abs() * rad).sum(-1, keepdim=True)  # [S, B, 1]
        if exact:
            wl_x, wu_x = mid @ sc.WL.T, mid @ sc.WU.T  # [B or 1, n]
        else:
            corner = mid - torch.sign(R) * rad  # argmin_x R·x, [S, B, d]
            wl_x, wu_x = corner @ sc.WL.T, corner @ sc.WU.T  # [S, B, n]
        cst = mu + lp * sc.cL + ln * sc.cU
        deltas, steps = [], []
        for k in (1, 2):
            lam_k, mu_k = _lam_mu_of(inp, node, k)  # type: ignore[misc]
            kp, kn = lam_k.clamp(min=0), lam_k.clamp(max=0)
            dp, dn = kp - lp, kn - ln
            cst_k = mu_k + kp * sc.cL + kn * sc.cU
            change = dp * wl_x + dn * wu_x
            if exact:
                change = change + r_mid - _abs_sum(R, dp, dn, sc, rad) - r_base
            deltas.append(change + cst_k - cst)
            steps.append((dp, dn, cst_k - cst))
        score = _score(inp.margins, deltas, mask)
        if not exact:
            score = _refine(inp.margins, score, steps, R, sc, mid, rad, r_mid, r_base)
        out[node.name] = score
    return out


def _refine(
    margins: Tensor,
    score: Tensor,
    steps: list[tuple[Tensor, Tensor, Tensor]],
    R: Tensor,
    sc: Shortcut,
    mid: Tensor,
    rad: Tensor,
    r_mid: Tensor,
    r_base: Tensor,
) -> Tensor:
    """Exact BBPS scores for the ``REFINE`` best corner-estimated neurons of each domain.

    The corner estimate never underestimates a change (it evaluates the new bound at one
    point instead of minimising it), so the others keep their estimate capped at the worst
    refined score: a refined neuron is preferred to an unrefined one.
    """
    B, n = score.shape
    k = min(REFINE, n)
    top, idx = score.topk(k, dim=1)  # [B, k]
    # A ranking, not a bound: the [S, B, k, d] work runs in float32 (half the time).
    f32 = torch.float32
    WLk, WUk = sc.WL.to(f32)[idx], sc.WU.to(f32)[idx]  # [B, k, d]
    mid_b = mid.to(f32).expand(B, -1).unsqueeze(-1)  # [B, d, 1]
    wl_x, wu_x = (WLk @ mid_b).squeeze(-1), (WUk @ mid_b).squeeze(-1)  # [B, k]
    rr = rad.to(f32).expand(B, -1).unsqueeze(-1)  # [B, d, 1]
    R32 = R.to(f32).unsqueeze(2)  # [S, B, 1, d]
    deltas = []
    for dp, dn, dc in steps:
        dpk, dnk, dck = (t.gather(2, idx.expand(t.shape[0], -1, -1)).to(f32) for t in (dp, dn, dc))
        v = WLk * dpk.unsqueeze(-1)  # [S, B, k, d]
        v.addcmul_(WUk, dnk.unsqueeze(-1)).add_(R32).abs_()
        abs_sum = (v @ rr).squeeze(-1)
        change = dpk * wl_x + dnk * wu_x - abs_sum + dck
        deltas.append(change.to(R.dtype) + (r_mid - r_base))
    exact = _score(margins, deltas, torch.isfinite(top))
    floor = torch.where(torch.isfinite(exact), exact, math.inf).min(1, keepdim=True).values
    capped = torch.where(torch.isfinite(score), torch.minimum(score, floor), score)
    return capped.scatter(1, idx, exact)


def _abs_sum(R: Tensor, dp: Tensor, dn: Tensor, sc: Shortcut, rad: Tensor) -> Tensor:
    """``Σ_i |R + dp_j W_L,j + dn_j W_U,j|_i · rad_i`` for every neuron ``j``: ``[S, B, n]``."""
    S, B, n = dp.shape
    d = R.shape[-1]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, S * B * d))
    parts = []
    r = R.unsqueeze(2)  # [S, B, 1, d]
    rr = rad.unsqueeze(1)  # [B or 1, 1, d]
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        v = r + dp[..., s:e, None] * sc.WL[s:e] + dn[..., s:e, None] * sc.WU[s:e]
        parts.append((v.abs() * rr).sum(-1))
    return torch.cat(parts, dim=-1)


Heuristic = Callable[[HeuristicInput], dict[str, Tensor]]

#: name -> scoring function (``"bbps"``, ``"babsr"``).
HEURISTICS: dict[str, Heuristic] = {"bbps": bbps_scores, "babsr": babsr_scores}


def sensitivity_scores(A: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Input splitting: ``Σ_s |A_s,i| · width_i`` per box and input dimension (``[N, d]``).

    ``A`` (``[S, N, *input_shape]``) holds the input coefficients of each box's lower
    bounds; halving dimension ``i`` shrinks its contribution ``|A_i|·width_i`` the most.
    """
    width = (upper - lower).flatten(1)
    return A.abs().flatten(2).sum(0) * width


def widest_scores(A: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Input splitting baseline: the widest dimension."""
    return (upper - lower).flatten(1).clone()


def mixed_scores(A: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """Input splitting: gradient × width and width, each scaled to 1 at the box's best.

    Gradient × width alone follows the final bound's linear coefficients and can starve a
    dimension whose coefficient is small but whose width keeps intermediate neurons
    unstable; width alone ignores the objective."""
    sens = sensitivity_scores(A, lower, upper)
    tiny = torch.finfo(sens.dtype).tiny

    def unit(t: Tensor) -> Tensor:  # 1 at the box's best (0/0 -> 0)
        return t / t.amax(1, keepdim=True).clamp(min=tiny)

    return unit(sens) + unit(widest_scores(A, lower, upper))


InputHeuristic = Callable[[Tensor, Tensor, Tensor], Tensor]

#: name -> input-splitting score (``"sensitivity"``: gradient × width, ``"widest"``).
INPUT_HEURISTICS: dict[str, InputHeuristic] = {
    "mixed": mixed_scores,
    "sensitivity": sensitivity_scores,
    "widest": widest_scores,
}
