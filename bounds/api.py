"""Entry point of the bounds engine: :func:`compute_bounds`."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from models.graph import Graph

from .alpha import AlphaConfig, optimize_bounds
from .crown import (
    BackwardResult,
    RelaxationCache,
    backward_lower,
    concretize_box,
    crown_bounds,
)
from .deadline import Deadline
from .ibp import ibp
from .network import BoundGraph, bound_graph
from .types import CROWN_MAX_ELEMENTS, BallBounds, Bounds, BoundsError, LinearBounds


class Method(str, enum.Enum):
    """Bound methods, weakest first."""

    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"


@dataclass(frozen=True)
class SpecBounds:
    """Bounds of the objectives ``C·y`` per domain.

    Attributes:
        lower: ``[B, S]`` sound lower bounds of each row of ``C·y``.
        upper: ``[B, S]`` sound upper bounds (None when not requested).
        intermediate: name -> :class:`Bounds` of nodes feeding relaxations.
        method: the method that produced ``lower``.
        linear: with ``return_A``: CROWN linear bounds of the rows w.r.t. the
            input (``[S, B, *input_shape]``; upper part only with ``bound_upper``).
        node_A: with ``return_A``: name -> ``[S, B, *shape]`` coefficients of the
            lower-bound rows w.r.t. the output of every nonlinear node (CROWN).
    """

    lower: Tensor
    upper: Tensor | None
    intermediate: Mapping[str, Bounds] = field(repr=False)
    method: Method
    linear: LinearBounds | None = field(default=None, repr=False)
    node_A: Mapping[str, Tensor] | None = field(default=None, repr=False)


def _spec_rows(bg: BoundGraph, C: Tensor | None, B: int, like: Tensor) -> Tensor:
    """Objective rows as ``[S, B, *output_shape]``."""
    out_shape = bg.shape(bg.output_name)
    n_out = math.prod(out_shape)
    if C is None:
        C = torch.eye(n_out, dtype=like.dtype, device=like.device).expand(B, n_out, n_out)
    C = C.to(dtype=like.dtype, device=like.device)
    if C.dim() != 3 or C.shape[0] != B or C.shape[2] != n_out:
        raise BoundsError(f"C must be [B={B}, S, {n_out}], got {tuple(C.shape)}")
    return C.transpose(0, 1).reshape((C.shape[1], B) + out_shape)


def compute_bounds(
    graph: Graph | BoundGraph,
    lower: Tensor,
    upper: Tensor,
    C: Tensor | None = None,
    *,
    method: Method | str = Method.CROWN,
    thresholds: Tensor | None = None,
    bound_upper: bool = True,
    alpha: AlphaConfig | None = None,
    known: Mapping[str, Bounds] | None = None,
    return_A: bool = False,
    crown_max_elements: int = CROWN_MAX_ELEMENTS,
    deadline: Deadline | None = None,
    _input_set: Bounds | None = None,
) -> SpecBounds:
    """Sound bounds of ``C·y`` for ``y = graph(x)``, ``x`` in ``[lower, upper]``.

    Args:
        graph: the network (a prepared :class:`BoundGraph` avoids re-preparation).
        lower, upper: input box ``[B, *input_shape]`` (``B`` domains).
        C: ``[B, S, n_out]`` objective rows (identity over outputs when None).
        method: "ibp", "crown" or "alpha-crown".
        thresholds: ``[B, S]``; alpha-CROWN stops optimising rows above them.
        bound_upper: also compute upper bounds.
        alpha: optimiser settings for alpha-CROWN.
        known: fixed intermediate bounds (branch-and-bound).
        return_A: also return CROWN linear coefficients (see :class:`SpecBounds`).
        crown_max_elements: intermediate nodes larger than this keep IBP bounds.
        deadline: the time budget of the whole call (None: no limit). Intermediate
            nodes reached after it expires keep IBP bounds and alpha-CROWN stops
            iterating; the result stays sound.

    Returns:
        :class:`SpecBounds` with ``[B, S]`` tensors.
    """
    method = Method(method)
    bg = bound_graph(graph)
    if tuple(lower.shape[1:]) != bg.input_shape or lower.shape != upper.shape:
        raise BoundsError(
            f"input box must be [B, {', '.join(map(str, bg.input_shape))}], "
            f"got {tuple(lower.shape)} and {tuple(upper.shape)}"
        )
    if bool((lower > upper).any()):
        raise BoundsError("input box has lower > upper")
    box = Bounds(lower, upper) if _input_set is None else _input_set
    B = lower.shape[0]
    rows = _spec_rows(bg, C, B, lower)
    S = rows.shape[0]
    A0 = torch.cat([rows, -rows]) if bound_upper else rows
    cache = RelaxationCache()
    with torch.no_grad():
        if method is Method.IBP:
            inter = ibp(bg, box, known=known)
        else:
            inter = crown_bounds(
                bg,
                box,
                known=known,
                max_elements=crown_max_elements,
                deadline=deadline,
                relax_cache=cache,
            )
        out_ibp = concretize_box(A0, inter[bg.output_name])
        linear, node_A = None, None
        if method is Method.IBP:
            lb = out_ibp
        else:
            record = frozenset(n for n, i in bg.infos.items() if i.kind != "affine")
            res = backward_lower(
                bg,
                bg.output_name,
                A0,
                inter,
                return_input_A=return_A,
                record=record if return_A else frozenset(),
                relax_cache=cache,
            )
            lb = torch.maximum(res.lower, out_ibp)
            if return_A:
                linear, node_A = _linear_parts(res, S, bound_upper, bg, B, lower)
    if method is Method.ALPHA_CROWN:
        thr = None
        if thresholds is not None:
            thr = thresholds.T.to(lb)
            if bound_upper:
                thr = torch.cat([thr, torch.full_like(thr, float("inf"))])
        res_alpha = optimize_bounds(
            bg,
            A0,
            inter,
            thresholds=thr,
            config=alpha or AlphaConfig(),
            deadline=deadline,
            initial=lb,
            max_elements=crown_max_elements,
        )
        lb, inter = res_alpha.lower, res_alpha.bounds
    lower_rows = lb[:S].T.contiguous()
    upper_rows = (-lb[S:]).T.contiguous() if bound_upper else None
    return SpecBounds(lower_rows, upper_rows, inter, method, linear, node_A)


def _linear_parts(
    res: BackwardResult, S: int, bound_upper: bool, bg: BoundGraph, B: int, like: Tensor
) -> tuple[LinearBounds, dict[str, Tensor]]:
    assert res.bias is not None
    a_in = res.input_A
    if a_in is None:
        a_in = like.new_zeros((res.bias.shape[0], B) + bg.input_shape)
    upper_A = -a_in[S:] if bound_upper else a_in[:0]
    upper_b = -res.bias[S:] if bound_upper else res.bias[:0]
    linear = LinearBounds(a_in[:S], res.bias[:S], upper_A, upper_b)
    node_A = {k: v[:S] for k, v in (res.node_A or {}).items()}
    return linear, node_A


def compute_bounds_ball(
    graph: Graph | BoundGraph,
    center: Tensor,
    eps: Tensor | float,
    C: Tensor | None = None,
    *,
    norm: float = math.inf,
    domain: tuple[Tensor | float, Tensor | float] | None = None,
    **kwargs: Any,
) -> SpecBounds:
    """Sound bounds of ``C·y`` for ``x`` in the ball ``||x - center||_norm <= eps``.

    Args:
        graph: the network.
        center: ``[B, *input_shape]`` ball centres (one domain each).
        eps: radius, a number or ``[B]``.
        C: as for :func:`compute_bounds`.
        norm: ``p >= 1`` (``math.inf``, 2 and 1 are the usual ones).
        domain: optional valid-input box ``(lo, hi)`` (e.g. pixels in ``[0, 1]``)
            intersected with the ball.
        kwargs: the keyword arguments of :func:`compute_bounds`.

    Intervals inside the network start from the box enclosing the ball; every linear
    bound is concretised over the ball itself (Hölder), and over its enclosing box,
    keeping the better of the two. For ``norm = inf`` the set is a box.
    """
    if not (norm >= 1.0):
        raise BoundsError(f"norm must be >= 1, got {norm}")
    B = center.shape[0]
    eps_t = torch.as_tensor(eps, dtype=center.dtype, device=center.device).reshape(-1)
    eps_t = eps_t.expand(B) if eps_t.numel() == 1 else eps_t
    if eps_t.shape != (B,) or bool((eps_t < 0).any()) or not bool(torch.isfinite(eps_t).all()):
        raise BoundsError(f"eps must be a finite number >= 0 or [B={B}] of them")
    radius = eps_t.reshape((B,) + (1,) * (center.dim() - 1))
    lower, upper = center - radius, center + radius
    if domain is not None:
        lower = torch.maximum(lower, torch.as_tensor(domain[0]).to(lower))
        upper = torch.minimum(upper, torch.as_tensor(domain[1]).to(upper))
        if bool((lower > upper).any()):
            raise BoundsError("the ball does not meet the domain box")
    input_set = BallBounds(lower, upper, center, eps_t, float(norm))
    return compute_bounds(graph, lower, upper, C, _input_set=input_set, **kwargs)
