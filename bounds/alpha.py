"""alpha-CROWN: optimise relaxation parameters of the output bound by gradient.

Parameters exist per node, per objective row and per domain (``[n, S, B,
*shape]``), so every row gets its own relaxation. Every relaxation is sound for
any parameter value (``bounds.relax`` contract), so the projection after each
Adam step only keeps parameters in their useful range; the returned bound is
the element-wise best seen, which is sound because every iterate is.
Intermediate bounds are fixed (computed by CROWN beforehand).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .crown import backward_lower
from .network import BoundGraph
from .relax.bilinear import MUL_N_ALPHA, mul_alpha_init
from .types import Bounds

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlphaConfig:
    """Optimiser settings (defaults follow the incomplete-verification stage)."""

    iterations: int = 30
    lr: float = 0.1
    lr_decay: float = 0.98
    patience: int = 8
    time_limit: float | None = None


def init_alphas(bg: BoundGraph, bounds: Mapping[str, Bounds], S: int) -> dict[str, Tensor]:
    """Default-relaxation parameters for every optimisable node: ``[n, S, B, *shape]``."""
    out: dict[str, Tensor] = {}
    for name, info in bg.infos.items():
        if info.kind == "unary":
            relax = info.relaxation
            if relax is None or relax.n_alpha == 0 or relax.alpha_init is None:
                continue
            b = bounds[info.node.inputs[0]]
            init = relax.alpha_init(b.lower, b.upper)
        elif info.kind == "product":
            x, y = (bounds[n] for n in info.node.inputs)
            init = mul_alpha_init(x.lower, x.upper, y.lower, y.upper)
            assert init.shape[0] == MUL_N_ALPHA
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
) -> Tensor:
    """Best lower bound of ``A0 · output`` over the iterations, ``[S, B]``.

    Args:
        bg: prepared graph.
        A0: ``[S, B, *output_shape]`` objective rows.
        bounds: fixed intermediate bounds.
        thresholds: ``[S, B]``; rows whose bound exceeds them stop contributing.
        config: optimiser settings.
        initial: a known sound bound (e.g. CROWN's) to start "best" from.
    """
    config = config or AlphaConfig()
    t0 = time.monotonic()
    S = A0.shape[0]
    alphas = init_alphas(bg, bounds, S)
    with torch.no_grad():
        best = backward_lower(bg, bg.output_name, A0, bounds, alphas=alphas).lower
    if initial is not None:
        best = torch.maximum(best, initial)
    if not alphas or config.iterations <= 0:
        return best
    opt = torch.optim.Adam(list(alphas.values()), lr=config.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, config.lr_decay)
    stale = 0
    for it in range(config.iterations):
        active = torch.ones_like(best, dtype=torch.bool)
        if thresholds is not None:
            active = best <= thresholds
            if not bool(active.any()):
                break
        lb = backward_lower(bg, bg.output_name, A0, bounds, alphas=alphas).lower
        with torch.no_grad():
            improved = bool((lb > best + 1e-7).any())
            best = torch.maximum(best, lb.detach())
        stale = 0 if improved else stale + 1
        if stale >= config.patience:
            break
        if config.time_limit is not None and time.monotonic() - t0 > config.time_limit:
            break
        loss = -(lb * active).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.debug("alpha iteration %d: mean bound %.5g", it, float(best.mean()))
    return best
